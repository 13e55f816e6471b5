#!/usr/bin/env bash
# 10 000 sync sends of 1 KiB from C (target/c/sync_send) against a local cluster on 127.0.0.1:9876
# (started and stopped here unless already running). Prints throughput, p50/p99, client CPU and
# context switches per send, then the syscall profile of a second run (strace -c -f) if strace
# is installed, then heap allocations per sync send through the Rust API and the C ABI
# (benches/sync_send_allocs.rs). Numbers, not pass/fail: benchmarks never gate the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export RMQ_NAMESRV_PORT="${RMQ_NAMESRV_PORT:-9876}"
export RMQ_BROKER_PORT="${RMQ_BROKER_PORT:-10911}"
ns="127.0.0.1:$RMQ_NAMESRV_PORT"
cluster=scripts/rocketmq-local.sh
if ! "$cluster" status >/dev/null 2>&1; then
  trap '"$cluster" down' EXIT
  "$cluster" up
fi
"$cluster" create-topic RmqBenchSync 4 >/dev/null
count="${BENCH_COUNT:-10000}"
target/c/sync_send "$ns" RmqBenchSync "$count" 1024
if command -v strace >/dev/null; then
  echo; echo "syscalls of a second run ($count sends + warm-up + setup), all threads:"
  strace -c -f -o /tmp/rmq-bench-strace.txt target/c/sync_send "$ns" RmqBenchSync "$count" 1024 >/dev/null
  head -25 /tmp/rmq-bench-strace.txt
fi
echo; echo "heap allocations per sync send (cargo bench --bench sync_send_allocs):"
RMQ_NAMESRV="$ns" BENCH_TOPIC=RmqBenchSync "${CARGO:-cargo}" bench -q --bench sync_send_allocs
