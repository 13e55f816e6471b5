#!/usr/bin/env bash
# Runs every test suite against real Apache RocketMQ clusters that this script starts on loopback
# and always stops: the main one (DefaultCluster, broker-a; ports 19876/20911 unless
# RMQ_TEST_NAMESRV_PORT/RMQ_TEST_BROKER_PORT say otherwise) and a second one beside it for the
# tests with two clusters in one process (SecondCluster, broker-b; ports 19877/21911 unless
# RMQ_TEST_NAMESRV_2_PORT/RMQ_TEST_BROKER_2_PORT say otherwise), and a third one with two brokers
# on the IPv6 loopback for the IPv6 and latency-fault tests (V6Cluster, broker-a and broker-b on
# [::1]; ports 19878/22911 and 22921 unless RMQ_TEST_NAMESRV_V6_PORT/RMQ_TEST_BROKER_V6_PORT say
# otherwise). The suites get RMQ_NAMESRV, RMQ_NAMESRV_2, RMQ_NAMESRV_V6 and RMQ_DATA_V6 (where the
# cluster script finds the third cluster's pids: the fault test pauses one of its brokers). Suites: Rust (unit, fake-peer, real broker), C (plain and ASan/UBSan), Python
# (pytest), Go (go test). Each runs even if an earlier one failed.
set -uo pipefail
cd "$(dirname "$0")/.."

export RMQ_NAMESRV_PORT="${RMQ_TEST_NAMESRV_PORT:-19876}"
export RMQ_BROKER_PORT="${RMQ_TEST_BROKER_PORT:-20911}"
export RMQ_NAMESRV="127.0.0.1:$RMQ_NAMESRV_PORT"
second_namesrv_port="${RMQ_TEST_NAMESRV_2_PORT:-19877}"
second_broker_port="${RMQ_TEST_BROKER_2_PORT:-21911}" # also binds 21909 and 21912
export RMQ_NAMESRV_2="127.0.0.1:$second_namesrv_port"
v6_namesrv_port="${RMQ_TEST_NAMESRV_V6_PORT:-19878}"
v6_broker_port="${RMQ_TEST_BROKER_V6_PORT:-22911}" # and 22921; also binds each -2 and +1
export RMQ_NAMESRV_V6="[::1]:$v6_namesrv_port"
export RMQ_DATA_V6="${TMPDIR:-/tmp}/rmq-local-$v6_namesrv_port"
cluster=scripts/rocketmq-local.sh

# Each cluster has its own ports and data directory (named after its name server port), so the
# two start and stop in parallel.
first_cluster() { RMQ_CLUSTER=DefaultCluster RMQ_BROKER_NAME=broker-a "$cluster" "$@"; }
second_cluster() {
  env -u RMQ_DATA RMQ_NAMESRV_PORT="$second_namesrv_port" RMQ_BROKER_PORT="$second_broker_port" \
    RMQ_CLUSTER=SecondCluster RMQ_BROKER_NAME=broker-b "$cluster" "$@"
}
v6_cluster() {
  RMQ_DATA="$RMQ_DATA_V6" RMQ_NAMESRV_PORT="$v6_namesrv_port" RMQ_BROKER_PORT="$v6_broker_port" \
    RMQ_HOST=::1 RMQ_BROKERS=2 RMQ_CLUSTER=V6Cluster "$cluster" "$@"
}
all_clusters_down() { first_cluster down & second_cluster down & v6_cluster down; wait; }

for tool in cargo cc python3 go java mvn; do
  command -v "$tool" >/dev/null || { echo "run-tests: '$tool' is required (see README)" >&2; exit 1; }
done
python3 -c 'import pytest' 2>/dev/null || { echo "run-tests: pytest is required: python3 -m pip install pytest" >&2; exit 1; }

all_clusters_down >/dev/null 2>&1 || true   # leftovers of an interrupted run
trap all_clusters_down EXIT
start=$(date +%s)
# the second cluster's output is prefixed so the two can be told apart
( second_cluster up 2>&1 | while IFS= read -r line; do echo "[second cluster] $line"; done ) &
second_up=$!
( v6_cluster up 2>&1 | while IFS= read -r line; do echo "[ipv6 cluster] $line"; done ) &
v6_up=$!
first_cluster up; first_rc=$?
wait "$second_up"; second_rc=$?
wait "$v6_up"; v6_rc=$?
((first_rc == 0)) || { echo "run-tests: the local RocketMQ cluster did not start" >&2; exit 1; }
((second_rc == 0)) || { echo "run-tests: the second local RocketMQ cluster did not start" >&2; exit 1; }
((v6_rc == 0)) || { echo "run-tests: the IPv6 two-broker cluster did not start" >&2; exit 1; }
echo "run-tests: all three clusters up in $(( $(date +%s) - start )) s"

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
echo "run-tests: $(( $(date +%s) - start )) s with the clusters up${failures:+; failed: ${failures[*]}}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
