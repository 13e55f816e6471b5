#!/usr/bin/env bash
# The C ABI misuse suite (tests/c/misuse): every case of the program in a process of its own,
# so one case's crash, hang or leak cannot hide behind another's state.
#
#   scripts/test-misuse.sh asan     PROGRAM [CASE...]   built with ASan + UBSan (make test-misuse)
#   scripts/test-misuse.sh valgrind PROGRAM [CASE...]   under valgrind (make test-misuse-valgrind)
#
# Needs RMQ_NAMESRV (a running name server). A case passes when the program exits 0: every
# check passed and, under valgrind, with 0 errors. What valgrind counts as an error:
#   - invalid reads and writes, uses of uninitialised values, bad frees: always;
#   - leaks: "definitely lost" and "indirectly lost" blocks only. The library keeps process-wide
#     state for the life of the process on purpose (the Rust runtime's thread-locals, the
#     handle registries and the metrics table, the lazily built tokio runtime and its worker
#     threads, which are never joined at exit), and that memory is still pointed to at exit:
#     "still reachable" and "possibly lost" (interior pointers of those tables) are reported
#     but are not errors. No suppression file is needed.
set -euo pipefail

mode=${1:?usage: $0 asan|valgrind PROGRAM [CASE...]}
prog=${2:?usage: $0 asan|valgrind PROGRAM [CASE...]}
shift 2
: "${RMQ_NAMESRV:?set RMQ_NAMESRV to a running name server (host:port)}"

case "$mode" in
  asan)
    # detect_leaks: a leak fails the case like any other ASan report.
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    wrap=()
    ;;
  valgrind)
    wrap=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
          --errors-for-leak-kinds=definite,indirect --track-fds=no --child-silent-after-fork=no)
    ;;
  *)
    echo "$0: mode must be asan or valgrind" >&2
    exit 2
    ;;
esac

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || mapfile -t cases < <("$prog" list)

failed=() t_all=$(date +%s.%N)
for c in "${cases[@]}"; do
  t0=$(date +%s.%N)
  if "${wrap[@]}" "$prog" "$c"; then status=ok; else status=FAILED; failed+=("$c"); fi
  printf '=== misuse %-8s %-14s %s (%s s)\n' "$mode" "$c" "$status" "$(elapsed "$t0")"
done
printf '=== misuse %s: %d cases, %d failed%s (%s s)\n' "$mode" "${#cases[@]}" "${#failed[@]}" \
  "${failed[*]:+: ${failed[*]}}" "$(elapsed "$t_all")"
[[ ${#failed[@]} -eq 0 ]]
