#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer), FUZZ_JOBS at a time, and prints the
# executions of each; fails if any target crashed, whose input libFuzzer leaves under
# fuzz/artifacts/<target>/ (turn it into a regression test that calls rmq::fuzzing).
#
#   scripts/fuzz.sh runs N [TARGET...]     each target for N executions   (make fuzz)
#   scripts/fuzz.sh time SECONDS [TARGET...] each target for SECONDS       (make fuzz-short)
#
# FUZZ_JOBS targets run at once (one per CPU by default).
#
# Inputs: the committed seeds (fuzz/seeds/<target>/, captured from a real cluster by
# examples/capture_fuzz_seeds.rs) and the corpus earlier runs grew (fuzz/corpus/<target>/, not
# committed), where new inputs go. Needs a nightly toolchain and cargo-fuzz; a fresh machine gets
# both here (rustup, crates.io). Extra libFuzzer flags go in FUZZ_FLAGS.
#
# Sanitizer: none by default (FUZZ_SANITIZER=address for ASan). The code under fuzz is safe Rust
# (the few unsafe blocks of the crate are in the FFI layer, the reactor and the counters, none
# on a decoding path), so an out-of-bounds read is already a panic that libFuzzer reports;
# ASan would add nothing there but cost 2-5x the executions. Debug assertions stay on (-a), so
# an integer overflow is a crash too.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
amount="${2:-}"
case "$mode" in
  runs) limit="-runs=$amount" ;;
  time) limit="-max_total_time=$amount" ;;
  *) echo "usage: $0 runs N|time SECONDS [TARGET...]" >&2; exit 2 ;;
esac
[[ "$amount" =~ ^[0-9]+$ ]] || { echo "$0: '$amount' is not a number" >&2; exit 2; }
shift 2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(frame json_header binary_header route stored_message broker_request)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (rustup)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

cd fuzz
mkdir -p target
fuzz_flags=(-O -a -s "${FUZZ_SANITIZER:-none}")
# one build first, so the parallel runs below do not wait on each other's cargo lock
cargo +nightly fuzz build "${fuzz_flags[@]}" >target/fuzz-build.log 2>&1 ||
  { tail -40 target/fuzz-build.log >&2; echo "fuzz: build failed" >&2; exit 1; }

# fuzz_one TARGET : runs it; writes its summary line to target/fuzz-TARGET.result
fuzz_one() {
  local t=$1 log="target/fuzz-$1.log" start runs
  mkdir -p "corpus/$t"
  rm -f "target/fuzz-$t.result"
  start=$(date +%s)
  # -max_len: room for several frames or stored records per input; -timeout: a hang is a bug
  # (no single input needs more than a fraction of a second); -rss_limit_mb: a decoder that
  # allocates from an unchecked length fails the run.
  # shellcheck disable=SC2086
  if ! cargo +nightly fuzz run "${fuzz_flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
      "$limit" -max_len=16384 -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=512 \
      -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $t FAILED; the input is under fuzz/artifacts/$t/, the log in fuzz/$log" >&2
    return 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "$log")
  printf '%-16s %12s executions in %5ss, corpus %s inputs, 0 crashes\n' \
    "$t" "$runs" "$(($(date +%s) - start))" "$(find "corpus/$t" -type f | wc -l)" \
    | tee "target/fuzz-$t.result" | sed 's/^/fuzz: /'
}

# FUZZ_JOBS targets at a time (default: one per CPU); each target is one libFuzzer process
jobs=${FUZZ_JOBS:-$(nproc)}
failed=0
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
echo "fuzz: summary"
for t in "${targets[@]}"; do
  if [ -f "target/fuzz-$t.result" ]; then sed 's/^/  /' "target/fuzz-$t.result"; else echo "  $t FAILED"; fi
done
exit "$failed"
