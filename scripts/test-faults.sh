#!/usr/bin/env bash
# test-faults.sh - the fault table (examples/fault_table.rs) against real RocketMQ clusters that
# this script starts on loopback and always stops:
#   * FaultCluster: two name servers (namesrv, namesrv-2) and two masters (broker-a, broker-b)
#     registered with both;
#   * PairCluster: one name server and a master/slave pair (broker-m, broker-m-slave).
# Each row kills, freezes or restarts processes of them by name (scripts/rocketmq-local.sh
# kill|stop|cont|restart NAME), counts what the brokers hold (or what was consumed) and prints
# one table line; the script exits non-zero if a row lost a message or broke its promise.
#
# Usage: scripts/test-faults.sh [ROW...]   rows: broker-kill broker-stop namesrv-both
#                                          namesrv-one broker-restart consumer-kill master-kill
#        scripts/test-faults.sh --soak     the soak (examples/soak.rs) on FaultCluster alone:
#                                          SOAK_SECONDS (600), SOAK_RESTART_SECONDS (120)
# Environment:
#   FAULTS_SCALE             multiplies the message counts: 1 = the full table (100 000 sends in
#                            the broker-kill row), 0.1 = the short CI form        (1)
#   FAULTS_NAMESRV_PORT      FaultCluster's name servers: PORT and PORT+1       (47376)
#   FAULTS_BROKER_PORT       broker-a; broker-b on PORT+10 (each also binds -2, +1)  (47411)
#   FAULTS_PAIR_NAMESRV_PORT PairCluster's name server                          (47576)
#   FAULTS_PAIR_BROKER_PORT  broker-m; its slave on PORT+5                      (47611)
#   RMQ_START_TIMEOUT        seconds for each cluster's `up` (a loaded 2-core box took 5 min)  (600)
# The clusters' state (logs, stores) stays in a temporary directory when a row failed.
set -uo pipefail
cd "$(dirname "$0")/.."

ns_port="${FAULTS_NAMESRV_PORT:-47376}"
broker_port="${FAULTS_BROKER_PORT:-47411}"
pair_ns_port="${FAULTS_PAIR_NAMESRV_PORT:-47576}"
pair_broker_port="${FAULTS_PAIR_BROKER_PORT:-47611}"
export RMQ_START_TIMEOUT="${RMQ_START_TIMEOUT:-600}"
state=$(mktemp -d "${TMPDIR:-/tmp}/rmq-faults.XXXXXX")
cluster=scripts/rocketmq-local.sh

fault_cluster() {
  env RMQ_DATA="$state/faults" RMQ_NAMESRV_PORT="$ns_port" RMQ_BROKER_PORT="$broker_port" \
    RMQ_BROKERS=2 RMQ_NAMESRVS=2 RMQ_CLUSTER=FaultCluster "$cluster" "$@"
}
pair_cluster() {
  env RMQ_DATA="$state/pair" RMQ_NAMESRV_PORT="$pair_ns_port" RMQ_BROKER_PORT="$pair_broker_port" \
    RMQ_SLAVES=1 RMQ_BROKER_NAME=broker-m RMQ_CLUSTER=PairCluster "$cluster" "$@"
}

program=fault_table
if [[ "${1:-}" == --soak ]]; then program=soak; shift; fi
failed=1
trap 'fault_cluster down & pair_cluster down; wait
      if ((failed == 0)); then rm -rf "$state"; else echo "test-faults: cluster logs in $state" >&2; fi' EXIT

start=$SECONDS
# the two clusters and the build, in parallel
( fault_cluster up 2>&1 | sed 's/^/[faults cluster] /'; exit "${PIPESTATUS[0]}" ) & fault_up=$!
if [[ $program == fault_table ]]; then
  ( pair_cluster up 2>&1 | sed 's/^/[pair cluster] /'; exit "${PIPESTATUS[0]}" ) & pair_up=$!
fi
cargo build --release --example "$program" || exit 1
wait "$fault_up" || { echo "test-faults: the two-broker cluster did not start" >&2; exit 1; }
if [[ $program == fault_table ]]; then
  wait "$pair_up" || { echo "test-faults: the master/slave cluster did not start" >&2; exit 1; }
fi
echo "test-faults: clusters up after $((SECONDS - start)) s"

export FAULTS_NAMESRV="127.0.0.1:$ns_port;127.0.0.1:$((ns_port + 1))"
export FAULTS_DATA="$state/faults"
export FAULTS_BROKERS="broker-a=127.0.0.1:$broker_port,broker-b=127.0.0.1:$((broker_port + 10))"
export FAULTS_PAIR_NAMESRV="127.0.0.1:$pair_ns_port"
export FAULTS_PAIR_DATA="$state/pair"
export FAULTS_PAIR_BROKERS="broker-m=127.0.0.1:$pair_broker_port,broker-m-slave=127.0.0.1:$((pair_broker_port + 5))"
rows_start=$SECONDS
target/release/examples/"$program" "$@"
failed=$?
echo "test-faults: $program took $((SECONDS - rows_start)) s, $((SECONDS - start)) s in all (FAULTS_SCALE=${FAULTS_SCALE:-1})"
exit $failed
