#!/usr/bin/env bash
# The client's cost alone: target/c/rmq_bench against the do-nothing loopback responder
# (examples/responder.rs: name server and broker on one port, canned answers, nothing stored).
# Workloads: sync 1 thread, async 256 in flight, sync batches of 16 and 64, async batches of 16
# and 64, all with 1 KiB bodies. Then the same sync and async workloads from Python
# (benches/python/rmq_bench.py; async also through rmq.CompletionQueue, benches/python/cq_bench.py)
# and Go (target/go/rmq_bench_go, `make bench-go`), when those are there, so the cost each binding
# adds over C shows. Prints msg/s and client CPU us/msg per workload, then the RESULT lines.
# Knobs: BENCH_SECONDS (default 5), RESPONDER_ADDR (default 127.0.0.1:19876).
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
# show LABEL RESULT-LINE : prints the line's rate and CPU per message, keeps the line
show() {
  local label=$1 line=$2
  results+=("$line")
  local tps cpu errs
  tps=$(sed -E 's/.* tps=([0-9.]+).*/\1/' <<<"$line")
  cpu=$(sed -E 's/.* cpu_us_per_msg=([0-9.]+).*/\1/' <<<"$line")
  errs=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
  printf '%-30s %12.0f msg/s  %8.3f us CPU/msg  errors %s\n' "$label" "$tps" "$cpu" "$errs"
}
# run LABEL RMQ_BENCH-ARGS... : target/c/rmq_bench
run() {
  local label=$1; shift
  show "$label" "$("$bench" produce -n "$addr" -t RmqBenchTopic -d "$secs" -W 5000 -l "$label" "$@" | grep '^RESULT')"
}
echo "rmq_bench against the loopback responder at $addr, 1 KiB bodies, ${secs} s per workload"
run sync-1-thread -m sync
run async-256-in-flight -m async -i 256
run sync-batch-16 -m sync -b 16
run sync-batch-64 -m sync -b 64
run async-batch-16 -m async -i 64 -b 16
run async-batch-64 -m async -i 16 -b 64
if python3 -c 'import sys; sys.path.insert(0, "bindings/python"); import rmq' 2>/dev/null; then
  py=(python3 benches/python/rmq_bench.py produce -n "$addr" -t RmqBenchTopic -d "$secs" -W 5000)
  show python-sync-1-thread "$("${py[@]}" -m sync -l python-sync-1-thread | grep '^RESULT')"
  show python-async-256-callbacks "$("${py[@]}" -m async -i 256 -l python-async-256-callbacks | grep '^RESULT')"
  # asyncio, 256 awaited at once: one line per path (queue, callback); 40k sends per path per second asked
  while IFS= read -r line; do
    show "python-asyncio-256-$(sed -E 's/.* path=([a-z]+).*/\1/' <<<"$line")" "$line"
  done < <(RMQ_NAMESRV="$addr" python3 benches/python/cq_bench.py --count $((secs * 40000)) --inflight 256 --topic RmqBenchTopic | grep '^RESULT')
fi
if [ -x target/go/rmq_bench_go ]; then
  go=(target/go/rmq_bench_go produce -n "$addr" -t RmqBenchTopic -d "$secs" -W 5000)
  show go-sync-1-thread "$("${go[@]}" -m sync -l go-sync-1-thread | grep '^RESULT')"
  show go-async-256-in-flight "$("${go[@]}" -m async -i 256 -l go-async-256-in-flight | grep '^RESULT')"
fi
echo
printf '%s\n' "${results[@]}"
