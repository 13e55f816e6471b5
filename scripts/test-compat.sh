#!/usr/bin/env bash
# test-compat.sh - the real-broker suites against several Apache RocketMQ versions (`make
# test-compat`; not part of `make test`: it runs the suites once per version).
#
# One single-broker cluster per version starts in parallel (scripts/rocketmq-local.sh, on ports
# from RMQ_COMPAT_PORT_BASE: version i gets name server BASE+100*i+76 and broker BASE+100*i+11,
# which also binds that -2 and +1), then the suites run against each in turn with
# RMQ_NAMESRV=<its name server> and RMQ_BROKER_VERSION=<its version>. The end prints one line
# per version x suite with pass/fail counts.
#
# What is not run, and why, is printed, never hidden:
#   * "not supported by this broker": a feature the version lacks (table FEATURES below, with
#     the first version that has it and the reason). Its tests are left out on that version only.
#   * "needs another cluster": suites that need a second cluster, the two-broker IPv6 cluster or
#     an ACL/TLS cluster (`make test` runs those, on its default version and ACL 1.0 on 4.9.7).
#
# Environment (all optional):
#   RMQ_COMPAT_VERSIONS   versions to test                          (4.9.7 5.3.3 5.5.0)
#   RMQ_COMPAT_SUITES     surfaces: any of rust c python go           (rust c python go)
#   RMQ_COMPAT_RUST       Rust test targets                           (every single-cluster suite)
#   RMQ_COMPAT_C          C test programs (target/c/NAME)             (every single-cluster one)
#   RMQ_COMPAT_PYTHON     Python test files (bindings/python/tests)   (every single-cluster one)
#   RMQ_COMPAT_GO         Go test names, a regexp for go test -run    (every single-cluster one)
#   RMQ_COMPAT_PORT_BASE  first port                                  (47000)
#   RMQ_START_TIMEOUT     per cluster start, seconds                  (300)
# Exit status 0 iff every suite that ran passed and every cluster started.
set -uo pipefail
cd "$(dirname "$0")/.."

read -ra VERSIONS <<<"${RMQ_COMPAT_VERSIONS:-4.9.7 5.3.3 5.5.0}"
read -ra SURFACES <<<"${RMQ_COMPAT_SUITES:-rust c python go}"
PORT_BASE="${RMQ_COMPAT_PORT_BASE:-47000}"
export RMQ_START_TIMEOUT="${RMQ_START_TIMEOUT:-300}"

# The suites that need only RMQ_NAMESRV (one cluster, one broker).
read -ra RUST <<<"${RMQ_COMPAT_RUST:-broker_producer broker_consumer broker_poll broker_pop broker_order \
broker_orderly broker_payload broker_broadcast broker_lite_pull broker_request_reply broker_trace \
broker_transaction broker_admin async_batch consumer_max_span consumer_send_back_fallback \
consumer_sigkill namespace nsaddr}"
read -ra C <<<"${RMQ_COMPAT_C:-test_faults test_consumer test_consumer_group test_consumer_sigkill \
test_poll test_transaction test_request test_orderly test_lite_pull test_consumer_broadcast \
test_pop test_metrics}"
read -ra PYTHON <<<"${RMQ_COMPAT_PYTHON:-$(cd bindings/python/tests && ls test_*.py |
  grep -vxE 'test_security.py|test_two_clusters.py' | tr '\n' ' ')}"
# Go runs as one `go test` of the package; single tests are left out by name (selector go:TestName).
GO_RUN="${RMQ_COMPAT_GO:-.}"

# Tests that need a cluster of another shape, left out everywhere (SURFACE:SELECTOR|why).
# Selectors: rust:TARGET or rust:TARGET::TEST, c:PROGRAM, python:FILE or python:FILE::TEST.
OTHER_CLUSTER=(
  "rust:broker_admin::reset_request_from_the_broker_moves_the_consumer|needs the second cluster (RMQ_NAMESRV_2)"
  "python:test_routing.py::test_ipv6_cluster_with_latency_fault_tolerance|needs the two-broker IPv6 cluster"
  "python:test_async_batch_retry.py::test_async_send_is_retried_on_the_other_broker|needs the two-broker IPv6 cluster"
  "go:TestSameNamedProducersOnTwoClustersSendToTheirOwnBroker|needs the second cluster (RMQ_NAMESRV_2)"
  "go:TestIPv6ClusterWithLatencyFaultTolerance|needs the two-broker IPv6 cluster"
  "go:TestAsyncSendIsRetriedOnTheOtherBroker|needs the two-broker IPv6 cluster"
  "go:TestACLSignedClientSendsAndConsumes|needs an ACL cluster"
  "go:TestACLWrongSecretAndMissingPermissionNameTheCause|needs an ACL cluster"
  "go:TestTLSVerifiedClientSendsAndConsumes|needs a TLS cluster"
  "go:TestTLSBadCertificatesAreRefused|needs a TLS cluster"
)
OTHER_SUITES="rust: broker_acl broker_tls two_clusters ipv6 latency_fault, java_interop (Java client); c: test_rmq (IPv6 cluster), test_security; python: test_security.py test_two_clusters.py (make test runs them)"

# Broker features some versions lack: FEATURE|FIRST VERSION WITH IT|reason|selectors.
FEATURES=(
  "POP|5.0.0|POP consumption (POP_MESSAGE/ACK_MESSAGE/CHANGE_INVISIBLE_TIME) came with RocketMQ 5.0; a 4.x broker answers REQUEST_CODE_NOT_SUPPORTED|rust:broker_pop c:test_pop python:test_pop.py go:TestTwoPopConsumersConsumeEveryMessage go:TestPopMessageNotAckedComesAgainAfterItsInvisibleTime go:TestOrderlyPopKeepsEachKeysSendOrder go:TestOrderlyPopRepeatsASuspendedBatchAsItWas"
  "TIMER|5.0.0|messages with any delivery time (TIMER_DELIVER_MS, the broker's timer wheel) came with RocketMQ 5.0; 4.x has only the fixed delay levels|rust:broker_payload::timer_messages_deliver_no_earlier_than_asked python:test_payload.py::test_timer_delivers_no_earlier_than_asked go:TestDelayedMessagesArriveNoEarlierThanAsked"
)

# selected SURFACE SELECTOR : the selector's suite (the part before ::) is in this run
selected() {
  [[ $1 == go ]] && return 0 # one package: every Go test is in the run
  local -n list=${1^^}
  [[ " ${list[*]} " == *" ${2%%::*} "* ]]
}

# ver_lt A B : A < B as versions
ver_lt() { [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

# excluded VERSION SURFACE : "SELECTOR|why" lines for everything left out of SURFACE on VERSION
excluded() {
  local v=$1 s=$2 f name min why sels sel
  for f in "${OTHER_CLUSTER[@]}"; do
    [[ "${f%%|*}" == "$s:"* ]] && selected "$s" "${f#"$s:"}" && echo "${f#"$s:"}"
  done
  for f in "${FEATURES[@]}"; do
    IFS='|' read -r name min why sels <<<"$f"
    ver_lt "$v" "$min" || continue
    for sel in $sels; do
      [[ "$sel" == "$s:"* ]] && selected "$s" "${sel#"$s:"}" &&
        echo "${sel#"$s:"}|not supported by this broker: $name needs $min+ ($why)"
    done
  done
}

state=$(mktemp -d "${TMPDIR:-/tmp}/rmq-compat.XXXXXX")
cluster() { # cluster INDEX VERSION ARGS...
  local i=$1 v=$2
  shift 2
  env RMQ_VERSION="$v" RMQ_NAMESRV_PORT=$((PORT_BASE + 100 * i + 76)) RMQ_BROKER_PORT=$((PORT_BASE + 100 * i + 11)) \
    RMQ_DATA="$state/rmq-$v" scripts/rocketmq-local.sh "$@"
}
all_down() {
  local i
  for i in "${!VERSIONS[@]}"; do cluster "$i" "${VERSIONS[$i]}" down >/dev/null 2>&1 & done
  wait
}
failed_any=0
# the logs stay for a look when something failed
trap 'all_down; if ((failed_any)); then echo "test-compat: logs in $state"; else rm -rf "$state"; fi' EXIT

start=$(date +%s)
# fetch one version at a time (mvn), then start every cluster at once
for v in "${VERSIONS[@]}"; do RMQ_VERSION="$v" scripts/rocketmq-local.sh fetch || exit 1; done
ups=()
for i in "${!VERSIONS[@]}"; do
  ( cluster "$i" "${VERSIONS[$i]}" up 2>&1 | while IFS= read -r l; do echo "[${VERSIONS[$i]}] $l"; done
    exit "${PIPESTATUS[0]}" ) &
  ups+=($!)
done
declare -A up_ok
for i in "${!VERSIONS[@]}"; do
  if wait "${ups[$i]}"; then up_ok[$i]=1; else up_ok[$i]=0; fi
done
echo "test-compat: clusters started in $(($(date +%s) - start)) s"

# build everything once, before any suite runs
build_rc=0
for s in "${SURFACES[@]}"; do
  case $s in
    rust) cargo test --release --no-run $(printf -- '--test %s ' "${RUST[@]}") >"$state/build-rust.log" 2>&1 || build_rc=1 ;;
    c) make --no-print-directory build $(printf 'target/c/%s ' "${C[@]}") >"$state/build-c.log" 2>&1 || build_rc=1 ;;
    python) cargo build --release >"$state/build-python.log" 2>&1 || build_rc=1 ;;
    go) make --no-print-directory go-lib >"$state/build-go.log" 2>&1 &&
      (cd bindings/go && go test -count=1 -run XXX ./rmq) >>"$state/build-go.log" 2>&1 || build_rc=1 ;;
    *) echo "test-compat: unknown suite '$s' (rust, c, python, go)" >&2; exit 2 ;;
  esac
done
((build_rc == 0)) || { failed_any=1; echo "test-compat: build failed, see $state/build-*.log" >&2; tail -n 30 "$state"/build-*.log >&2; exit 1; }

summary=()
record() { # record VERSION SUITE PASSED FAILED NOTE
  summary+=("$(printf '%-7s %-7s passed %4d  failed %3d%s' "$1" "$2" "$3" "$4" "${5:+  $5}")")
  (($4 == 0)) || failed_any=1
}

# run_rust VERSION LOGDIR : each target, minus the excluded ones; counts from "test result:" lines
run_rust() {
  local v=$1 log=$2 p=0 f=0 t skip sel name out ex=() bad=()
  mapfile -t ex < <(excluded "$v" rust)
  for t in "${RUST[@]}"; do
    skip=()
    for sel in "${ex[@]}"; do
      name=${sel%%|*}
      [[ "$name" == "$t" ]] && continue 2
      if [[ "$name" == "$t::"* ]]; then skip+=(--skip "${name#"$t::"}"); fi
    done
    out="$(cargo test --release --test "$t" -- "${skip[@]}" --exact 2>&1)"
    echo "$out" >"$log/rust-$t.log"
    if [[ "$out" =~ test\ result:\ [a-zA-Z]+\.\ ([0-9]+)\ passed\;\ ([0-9]+)\ failed ]]; then
      p=$((p + BASH_REMATCH[1])) f=$((f + BASH_REMATCH[2]))
      ((BASH_REMATCH[2] == 0)) || bad+=("$t")
    else
      f=$((f + 1)) bad+=("$t(no result)")
    fi
  done
  record "$v" rust "$p" "$f" "${bad[*]:+failed in: ${bad[*]}}"
}

# run_c VERSION LOGDIR : each program ends with "[<prog>: ]N passed, M failed"
run_c() {
  local v=$1 log=$2 p=0 f=0 t sel out ex=() bad=()
  mapfile -t ex < <(excluded "$v" c)
  for t in "${C[@]}"; do
    for sel in "${ex[@]}"; do [[ "${sel%%|*}" == "$t" ]] && continue 2; done
    out="$(timeout 900 "target/c/$t" 2>&1)"; rc=$?
    echo "$out" >"$log/c-$t.log"
    # the last count line is the program's own (forked children print theirs earlier)
    if [[ "$(grep -E "^($t: )?[0-9]+ passed, [0-9]+ failed\$" <<<"$out" | tail -n1)" =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      p=$((p + BASH_REMATCH[1])) f=$((f + BASH_REMATCH[2]))
      ((BASH_REMATCH[2] == 0 && rc == 0)) || { bad+=("$t"); ((BASH_REMATCH[2] > 0)) || f=$((f + 1)); }
    else
      f=$((f + 1)) bad+=("$t(exit $rc, no count)")
    fi
  done
  record "$v" c "$p" "$f" "${bad[*]:+failed in: ${bad[*]}}"
}

# run_python VERSION LOGDIR : one pytest run; counts from its summary line
run_python() {
  local v=$1 log=$2 p=0 f=0 t sel out files=() deselect=() ex=()
  mapfile -t ex < <(excluded "$v" python)
  for t in "${PYTHON[@]}"; do
    for sel in "${ex[@]}"; do [[ "${sel%%|*}" == "$t" ]] && continue 2; done
    files+=("bindings/python/tests/$t")
  done
  # single tests by name (-k): --deselect wants node ids relative to pytest's rootdir
  local names=
  for sel in "${ex[@]}"; do
    sel=${sel%%|*}
    [[ "$sel" == *::* ]] && names+="${names:+ or }${sel##*::}"
  done
  [[ -z "$names" ]] || deselect=(-k "not ($names)")
  out="$(python3 -m pytest -q -p no:cacheprovider "${files[@]}" "${deselect[@]}" 2>&1)"
  echo "$out" >"$log/python.log"
  local last
  last="$(grep -E '^(=+ )?[0-9]+ (passed|failed)' <<<"$out" | tail -n1)"
  [[ "$last" =~ ([0-9]+)\ passed ]] && p=${BASH_REMATCH[1]}
  [[ "$last" =~ ([0-9]+)\ failed ]] && f=${BASH_REMATCH[1]}
  [[ "$last" =~ ([0-9]+)\ error ]] && f=$((f + BASH_REMATCH[1]))
  [[ -n "$last" ]] || f=$((f + 1))
  record "$v" python "$p" "$f" "$(grep -E '^(FAILED|ERROR) ' <<<"$out" | sed 's/ - .*//' | tr '\n' ' ')"
}

# run_go VERSION LOGDIR : one `go test -v` of the package; counts top-level --- PASS/--- FAIL lines
run_go() {
  local v=$1 log=$2 p f sel out skip= ex=()
  mapfile -t ex < <(excluded "$v" go)
  for sel in "${ex[@]}"; do skip+="${skip:+|}${sel%%|*}"; done
  out="$(cd bindings/go && go test -count=1 -v -timeout 30m ./rmq -run "$GO_RUN" ${skip:+-skip "^($skip)\$"} 2>&1)"
  echo "$out" >"$log/go.log"
  p=$(grep -c '^--- PASS' <<<"$out")
  f=$(grep -c '^--- FAIL' <<<"$out")
  grep -qE '^(ok|FAIL)[[:space:]]' <<<"$out" || f=$((f + 1)) # no verdict: a crash or build failure
  grep -q '^FAIL' <<<"$out" && ((f == 0)) && f=1
  record "$v" go "$p" "$f" "$(grep '^--- FAIL' <<<"$out" | awk '{print $3}' | tr '\n' ' ')"
}

for i in "${!VERSIONS[@]}"; do
  v=${VERSIONS[$i]}
  if ((up_ok[$i] == 0)); then
    summary+=("$(printf '%-7s cluster did not start: nothing ran (logs in %s)' "$v" "$state/rmq-$v")")
    failed_any=1
    continue
  fi
  log="$state/logs-$v"
  mkdir -p "$log"
  for s in "${SURFACES[@]}"; do
    t0=$(date +%s)
    echo "=== $v $s"
    # RMQ_VERSION: tests that call `scripts/rocketmq-local.sh mqadmin` get the broker's own mqadmin
    # (5.3.3's consumerProgress sends request code 351, which 4.9.7 does not know)
    RMQ_NAMESRV="127.0.0.1:$((PORT_BASE + 100 * i + 76))" RMQ_BROKER_VERSION="$v" RMQ_VERSION="$v" \
      "run_$s" "$v" "$log"
    echo "${summary[-1]} ($(($(date +%s) - t0)) s)"
    summary[-1]+="  ($(($(date +%s) - t0)) s)"
    while IFS='|' read -r sel why; do
      [[ "$why" == "not supported by this broker"* ]] && summary+=("$(printf '%-7s %-7s %s: %s' "$v" "$s" "$sel" "$why")")
    done < <(excluded "$v" "$s")
  done
done

echo
echo "test-compat: $(($(date +%s) - start)) s"
echo "needs another cluster, not run here: $OTHER_SUITES;"
printf '  %s\n' "${OTHER_CLUSTER[@]}" | sed 's/|/: /'
echo "results:"
printf '%s\n' "${summary[@]}"
exit "$failed_any"
