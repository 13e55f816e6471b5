#!/usr/bin/env bash
# Runs every test suite against a real Apache RocketMQ name server and broker that this script
# starts on loopback (ports 19876/20911 unless RMQ_TEST_NAMESRV_PORT/RMQ_TEST_BROKER_PORT say
# otherwise) and always stops. Suites: Rust (unit, fake-peer, real broker), C (plain and
# ASan/UBSan), Python (pytest), Go (go test). Each runs even if an earlier one failed.
set -uo pipefail
cd "$(dirname "$0")/.."

export RMQ_NAMESRV_PORT="${RMQ_TEST_NAMESRV_PORT:-19876}"
export RMQ_BROKER_PORT="${RMQ_TEST_BROKER_PORT:-20911}"
export RMQ_NAMESRV="127.0.0.1:$RMQ_NAMESRV_PORT"
cluster=scripts/rocketmq-local.sh

for tool in cargo cc python3 go java mvn; do
  command -v "$tool" >/dev/null || { echo "run-tests: '$tool' is required (see README)" >&2; exit 1; }
done
python3 -c 'import pytest' 2>/dev/null || { echo "run-tests: pytest is required: python3 -m pip install pytest" >&2; exit 1; }

"$cluster" down >/dev/null 2>&1 || true   # leftovers of an interrupted run
trap '"$cluster" down' EXIT
start=$(date +%s)
"$cluster" up || { echo "run-tests: the local RocketMQ cluster did not start" >&2; exit 1; }

passed=0 failed=0 failures=()
suite() {
  local name=$1; shift
  echo
  echo "=== $name: $*"
  local t0=$(date +%s)
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok ($(( $(date +%s) - t0 )) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($(( $(date +%s) - t0 )) s)"
  fi
}

suite rust cargo test --release
suite c make --no-print-directory c-test
suite c-asan make --no-print-directory c-test-asan
suite python python3 -m pytest -q bindings/python/tests
suite go bash -c 'cd bindings/go && go test -count=1 ./...'

echo
echo "run-tests: $(( $(date +%s) - start )) s with the cluster up${failures:+; failed: ${failures[*]}}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
