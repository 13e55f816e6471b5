#!/usr/bin/env bash
# The client's cost alone: target/c/rmq_bench against the do-nothing loopback responder
# (examples/responder.rs: name server and broker on one port, canned answers, nothing stored).
# Workloads: sync 1 thread, async 256 in flight, sync batches of 16 and 64, async batches of 16
# and 64, all with 1 KiB bodies. Prints msg/s and client CPU us/msg per workload, then the
# RESULT lines. Knobs: BENCH_SECONDS (default 5), RESPONDER_ADDR (default 127.0.0.1:19876).
# Numbers, not pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."
addr="${RESPONDER_ADDR:-127.0.0.1:19876}"
secs="${BENCH_SECONDS:-5}"
responder=target/release/examples/responder
bench=target/c/rmq_bench
"$responder" "$addr" >/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
# Wait until it listens (at most 5 s).
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then break; fi
  sleep 0.1
done
results=()
run() {
  local label=$1; shift
  local out
  out=$("$bench" produce -n "$addr" -t RmqBenchTopic -d "$secs" -W 5000 -l "$label" "$@")
  local line
  line=$(grep '^RESULT' <<<"$out")
  results+=("$line")
  local tps cpu errs
  tps=$(sed -E 's/.* tps=([0-9.]+).*/\1/' <<<"$line")
  cpu=$(sed -E 's/.* cpu_us_per_msg=([0-9.]+).*/\1/' <<<"$line")
  errs=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
  printf '%-22s %12.0f msg/s  %8.3f us CPU/msg  errors %s\n' "$label" "$tps" "$cpu" "$errs"
}
echo "rmq_bench against the loopback responder at $addr, 1 KiB bodies, ${secs} s per workload"
run sync-1-thread -m sync
run async-256-in-flight -m async -i 256
run sync-batch-16 -m sync -b 16
run sync-batch-64 -m sync -b 64
run async-batch-16 -m async -i 64 -b 16
run async-batch-64 -m async -i 16 -b 64
echo
printf '%s\n' "${results[@]}"
