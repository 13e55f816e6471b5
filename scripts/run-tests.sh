#!/usr/bin/env bash
# Runs every test suite against real Apache RocketMQ clusters that this script starts on loopback
# and always stops: the main one (DefaultCluster, broker-a) and a second one beside it for the
# tests with two clusters in one process (SecondCluster, broker-b). Each run picks free ports for
# both (override: RMQ_TEST_NAMESRV_PORT/RMQ_TEST_BROKER_PORT and RMQ_TEST_NAMESRV_2_PORT/
# RMQ_TEST_BROKER_2_PORT) and keeps their state in a private temporary directory, so two checkouts
# running `make test` at once never touch each other's clusters. The suites get RMQ_NAMESRV and
# RMQ_NAMESRV_2. Suites: Rust (unit, fake-peer, real broker), C (plain and ASan/UBSan), Python
# (pytest), Go (go test), packaging (scripts/test-packaging.sh). Each runs even if an earlier one
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# A free TCP port on 127.0.0.1; with "broker", one whose neighbours PORT-2 and PORT+1 (which the
# broker also binds) are free too. Free when chosen: another run choosing at the same moment is
# the remaining (small) risk, and its cluster would then fail to start, not stop ours.
free_port() {
  python3 - "$@" <<'PY'
import socket, sys
broker = sys.argv[1:] == ["broker"]
def free(port, host):
    s = socket.socket()
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    if port < 1026 or port > 65000:
        continue
    if not broker or (free(port - 2, "127.0.0.1") and free(port + 1, "0.0.0.0") and free(port, "0.0.0.0")):
        print(port); sys.exit(0)
sys.exit("run-tests: no free port found")
PY
}

state=$(mktemp -d "${TMPDIR:-/tmp}/rmq-test-run.XXXXXX")
export RMQ_NAMESRV_PORT="${RMQ_TEST_NAMESRV_PORT:-$(free_port)}"
export RMQ_BROKER_PORT="${RMQ_TEST_BROKER_PORT:-$(free_port broker)}"
export RMQ_DATA="$state/cluster-1"
export RMQ_NAMESRV="127.0.0.1:$RMQ_NAMESRV_PORT"
second_namesrv_port="${RMQ_TEST_NAMESRV_2_PORT:-$(free_port)}"
second_broker_port="${RMQ_TEST_BROKER_2_PORT:-$(free_port broker)}"
export RMQ_NAMESRV_2="127.0.0.1:$second_namesrv_port"
echo "run-tests: cluster 1 on $RMQ_NAMESRV_PORT/$RMQ_BROKER_PORT, cluster 2 on $second_namesrv_port/$second_broker_port, state in $state"
cluster=scripts/rocketmq-local.sh

# Each cluster has its own ports and data directory (named after its name server port), so the
# two start and stop in parallel.
first_cluster() { RMQ_CLUSTER=DefaultCluster RMQ_BROKER_NAME=broker-a "$cluster" "$@"; }
second_cluster() {
  env RMQ_DATA="$state/cluster-2" RMQ_NAMESRV_PORT="$second_namesrv_port" RMQ_BROKER_PORT="$second_broker_port" \
    RMQ_CLUSTER=SecondCluster RMQ_BROKER_NAME=broker-b "$cluster" "$@"
}
both_clusters_down() { first_cluster down & second_cluster down; wait; }

for tool in cargo cc python3 go java mvn; do
  command -v "$tool" >/dev/null || { echo "run-tests: '$tool' is required (see README)" >&2; exit 1; }
done
python3 -c 'import pytest' 2>/dev/null || { echo "run-tests: pytest is required: python3 -m pip install pytest" >&2; exit 1; }

# the state (cluster logs) stays for a look when something failed
trap 'both_clusters_down; if ((failed == 0)); then rm -rf "$state"; else echo "run-tests: cluster logs in $state"; fi' EXIT
failed=0
start=$(date +%s)
# the second cluster's output is prefixed so the two can be told apart
( second_cluster up 2>&1 | while IFS= read -r line; do echo "[second cluster] $line"; done ) &
second_up=$!
first_cluster up; first_rc=$?
wait "$second_up"; second_rc=$?
((first_rc == 0)) || { failed=1; echo "run-tests: the local RocketMQ cluster did not start" >&2; exit 1; }
((second_rc == 0)) || { failed=1; echo "run-tests: the second local RocketMQ cluster did not start" >&2; exit 1; }
echo "run-tests: both clusters up in $(( $(date +%s) - start )) s"

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
suite packaging scripts/test-packaging.sh

echo
echo "run-tests: $(( $(date +%s) - start )) s with the clusters up${failures:+; failed: ${failures[*]}}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
