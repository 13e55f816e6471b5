#!/usr/bin/env bash
# Runs every test suite against real Apache RocketMQ clusters that this script starts on loopback
# and always stops: the main one (DefaultCluster, broker-a); a second one beside it for the tests
# with two clusters in one process (SecondCluster, broker-b); and a third one with two brokers on
# the IPv6 loopback for the IPv6 and latency-fault tests (V6Cluster, broker-a and broker-b on
# [::1]). Each run picks free ports for all three (override: RMQ_TEST_NAMESRV_PORT/
# RMQ_TEST_BROKER_PORT, RMQ_TEST_NAMESRV_2_PORT/RMQ_TEST_BROKER_2_PORT and
# RMQ_TEST_NAMESRV_V6_PORT/RMQ_TEST_BROKER_V6_PORT, the last one for broker-a, broker-b on +10)
# Three more test security, on free ports too: ACL 1.0 accounts (RMQ_ACL=1, on RocketMQ 4.9.7,
# whose broker runs the ACL 1.0 checker itself), ACL 2.0 users
# (RMQ_ACL=2) and TLS enforced with a test CA (RMQ_TLS_MODE=enforcing); the suites get
# RMQ_NAMESRV_ACL1, RMQ_NAMESRV_ACL2, RMQ_NAMESRV_TLS and RMQ_TLS_DIR (its certificates). All six
# start in parallel and keep their state in a private temporary directory, so two checkouts running `make test` at
# once never touch each other's clusters. The suites get RMQ_NAMESRV, RMQ_NAMESRV_2,
# RMQ_NAMESRV_V6 and RMQ_DATA_V6 (where the cluster script finds the third cluster's pids: the
# fault test pauses one of its brokers). Suites: Rust (unit, fake-peer, real broker), C (plain
# and ASan/UBSan), Python (pytest), Go (go test), packaging (scripts/test-packaging.sh), and a smoke run of the
# C benchmark tool (scripts/bench-smoke.sh: counts only, no timing), then, with those clusters
# stopped, the short fault table (make test-faults-short, clusters of its own) and a short run of
# every fuzz target (make fuzz-short, RMQ_TEST_FUZZ_SECONDS each, 20 by default). Each runs
# even if an earlier one failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# A free TCP port on 127.0.0.1; with "broker", one whose neighbours PORT-2 and PORT+1 (which the
# broker also binds) are free too. Free when chosen: another run choosing at the same moment is
# the remaining (small) risk, and its cluster would then fail to start, not stop ours.
free_port() {
  python3 - "$@" <<'PY'
import socket, sys
mode = sys.argv[1] if len(sys.argv) > 1 else ""
def free(port, host):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
def broker_free(port, host):
    # the broker binds PORT and PORT-2 on its host, and PORT+1 (HA) on every address
    return free(port, host) and free(port - 2, host) and free(port + 1, "0.0.0.0") and free(port + 1, "::")
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    if port < 1026 or port > 65000:
        continue
    ok = {
        "": lambda: True,
        "broker": lambda: broker_free(port, "127.0.0.1"),
        "v6": lambda: free(port, "::1"),
        "v6-brokers": lambda: broker_free(port, "::1") and broker_free(port + 10, "::1"),
    }[mode]()
    if ok:
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
v6_namesrv_port="${RMQ_TEST_NAMESRV_V6_PORT:-$(free_port v6)}"
v6_broker_port="${RMQ_TEST_BROKER_V6_PORT:-$(free_port v6-brokers)}" # and +10 for broker-b
export RMQ_NAMESRV_V6="[::1]:$v6_namesrv_port"
export RMQ_DATA_V6="$state/cluster-v6"
acl1_ports=("$(free_port)" "$(free_port broker)")
acl2_ports=("$(free_port)" "$(free_port broker)")
tls_ports=("$(free_port)" "$(free_port broker)")
export RMQ_NAMESRV_ACL1="127.0.0.1:${acl1_ports[0]}" RMQ_NAMESRV_ACL2="127.0.0.1:${acl2_ports[0]}"
export RMQ_NAMESRV_TLS="127.0.0.1:${tls_ports[0]}" RMQ_TLS_DIR="$state/cluster-tls/tls"
echo "run-tests: cluster 1 on $RMQ_NAMESRV_PORT/$RMQ_BROKER_PORT, cluster 2 on $second_namesrv_port/$second_broker_port, IPv6 cluster on $v6_namesrv_port/$v6_broker_port, state in $state"
cluster=scripts/rocketmq-local.sh

# Each cluster has its own ports and data directory (named after its name server port), so the
# two start and stop in parallel.
first_cluster() { RMQ_CLUSTER=DefaultCluster RMQ_BROKER_NAME=broker-a "$cluster" "$@"; }
second_cluster() {
  env RMQ_DATA="$state/cluster-2" RMQ_NAMESRV_PORT="$second_namesrv_port" RMQ_BROKER_PORT="$second_broker_port" \
    RMQ_CLUSTER=SecondCluster RMQ_BROKER_NAME=broker-b "$cluster" "$@"
}
v6_cluster() {
  RMQ_DATA="$RMQ_DATA_V6" RMQ_NAMESRV_PORT="$v6_namesrv_port" RMQ_BROKER_PORT="$v6_broker_port" \
    RMQ_HOST=::1 RMQ_BROKERS=2 RMQ_CLUSTER=V6Cluster "$cluster" "$@"
}
# the ACL 1.0, ACL 2.0 and TLS clusters
# ACL 1.0 runs on 4.9.7: its broker checks every request with PlainAccessValidator, whereas 5.3+
# would import plain_acl.yml into ACL 2.0 users and check those instead.
acl1_cluster() { env RMQ_DATA="$state/cluster-acl1" RMQ_NAMESRV_PORT="${acl1_ports[0]}" RMQ_BROKER_PORT="${acl1_ports[1]}" RMQ_VERSION=4.9.7 RMQ_ACL=1 "$cluster" "$@"; }
acl2_cluster() { env RMQ_DATA="$state/cluster-acl2" RMQ_NAMESRV_PORT="${acl2_ports[0]}" RMQ_BROKER_PORT="${acl2_ports[1]}" RMQ_ACL=2 "$cluster" "$@"; }
tls_cluster() { env RMQ_DATA="$state/cluster-tls" RMQ_NAMESRV_PORT="${tls_ports[0]}" RMQ_BROKER_PORT="${tls_ports[1]}" RMQ_TLS_MODE=enforcing "$cluster" "$@"; }
all_clusters_down() {
  first_cluster down & second_cluster down & v6_cluster down &
  acl1_cluster down & acl2_cluster down & tls_cluster down; wait
}

for tool in cargo cc python3 go java mvn; do
  command -v "$tool" >/dev/null || { echo "run-tests: '$tool' is required (see README)" >&2; exit 1; }
done
python3 -c 'import pytest' 2>/dev/null || { echo "run-tests: pytest is required: python3 -m pip install pytest" >&2; exit 1; }

# the state (cluster logs) stays for a look when something failed
trap 'all_clusters_down; if ((failed == 0)); then rm -rf "$state"; else echo "run-tests: cluster logs in $state"; fi' EXIT
failed=0
start=$(date +%s)
# the second cluster's output is prefixed so the two can be told apart
( second_cluster up 2>&1 | while IFS= read -r line; do echo "[second cluster] $line"; done ) &
second_up=$!
( v6_cluster up 2>&1 | while IFS= read -r line; do echo "[ipv6 cluster] $line"; done ) &
v6_up=$!
security_up=()
for c in acl1 acl2 tls; do
  ( "${c}_cluster" up 2>&1 | while IFS= read -r line; do echo "[$c cluster] $line"; done; exit "${PIPESTATUS[0]}" ) &
  security_up+=($!)
done
first_cluster up; first_rc=$?
wait "$second_up"; second_rc=$?
wait "$v6_up"; v6_rc=$?
((first_rc == 0)) || { failed=1; echo "run-tests: the local RocketMQ cluster did not start" >&2; exit 1; }
((second_rc == 0)) || { failed=1; echo "run-tests: the second local RocketMQ cluster did not start" >&2; exit 1; }
((v6_rc == 0)) || { failed=1; echo "run-tests: the IPv6 two-broker cluster did not start" >&2; exit 1; }
for pid in "${security_up[@]}"; do
  wait "$pid" || { failed=1; echo "run-tests: an ACL or TLS cluster did not start" >&2; exit 1; }
done
echo "run-tests: all six clusters up in $(( $(date +%s) - start )) s"

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
suite c-misuse make --no-print-directory test-misuse
suite python python3 -m pytest -q bindings/python/tests
suite go bash -c 'cd bindings/go && go test -count=1 ./...'
suite packaging scripts/test-packaging.sh
suite bench-smoke scripts/bench-smoke.sh
echo
echo "run-tests: $(( $(date +%s) - start )) s with the clusters up${failures:+; failed: ${failures[*]}}"

# The fault table kills and freezes brokers of clusters of its own; the six above are stopped
# first so that the two machines' worth of JVMs do not share the cores with them.
all_clusters_down
suite faults-short make --no-print-directory test-faults-short
# A short run of every fuzz target from the committed seeds (make fuzz runs the 10M executions).
suite fuzz-short make --no-print-directory fuzz-short FUZZ_SECONDS="${RMQ_TEST_FUZZ_SECONDS:-20}"

echo
echo "run-tests: $(( $(date +%s) - start )) s in all${failures:+; failed: ${failures[*]}}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
