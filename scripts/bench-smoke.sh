#!/usr/bin/env bash
# Smoke run of the C benchmark tool (target/c/rmq_bench) against the cluster RMQ_NAMESRV names:
# sync, async, batch and oneway sends of a small count to a new topic, then a push consumer that
# drains them; then the Python and Go tools, a run each way (the Go tool links the Go module's
# static library: `make go-lib` first).
# Asserts only that each run succeeds, counts exactly what it was asked to, and that the
# library's metrics of the topic equal the run's own counts (the tool compares them and fails
# when they differ; no timing), so it adds a few seconds to `make test`. Numbers come from `make bench-compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RMQ_NAMESRV:?RMQ_NAMESRV must name a running cluster}"
bench=target/c/rmq_bench
topic="RmqBenchSmoke_$$_$(date +%s)"

# field NAME LINE: the value of NAME=... in a RESULT line
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

check() { # check WHAT EXPECTED_MSGS OUTPUT
  local line
  line=$(grep '^RESULT ' <<<"$3" | tail -1)
  [[ -n "$line" ]] || { echo "bench-smoke: $1 printed no RESULT line:"; echo "$3"; return 1; }
  if [[ "$(field msgs "$line")" != "$2" || "$(field errors "$line")" != 0 ]]; then
    echo "bench-smoke: $1 expected msgs=$2 errors=0, got: $line"; return 1
  fi
  # The tool compared the metrics with its counts (it exits 1 when they differ).
  if ! grep -Eq '^  messages (sent|consumed) +run [0-9]+ +metrics [0-9]+ +equal$' <<<"$3"; then
    echo "bench-smoke: $1 printed no metrics comparison:"; echo "$3"; return 1
  fi
  echo "bench-smoke: $1 ok ($line)"
}

out=$("$bench" produce -t "$topic" -m sync -w 2 -c 200 -W 0) || { echo "$out"; exit 1; }
check "sync produce" 200 "$out"
out=$("$bench" produce -t "$topic" -m async -i 32 -b 1 -c 200 -W 0) || { echo "$out"; exit 1; }
check "async produce" 200 "$out"
out=$("$bench" produce -t "$topic" -m sync -b 10 -c 100 -W 0) || { echo "$out"; exit 1; }
check "batch produce" 100 "$out"
out=$("$bench" produce -t "$topic" -m oneway -c 100 -W 0) || { echo "$out"; exit 1; }
check "oneway produce" 100 "$out"
out=$("$bench" consume -t "$topic" -c 600 -T 120) || { echo "$out"; exit 1; }
check "consume" 600 "$out"

# The Python and Go tools compare the metrics with their counts the same way (a topic each).
py_topic="${topic}_py"
out=$(python3 benches/python/rmq_bench.py produce -t "$py_topic" -m async -c 100 -W 0) || { echo "$out"; exit 1; }
check "python produce" 100 "$out"
out=$(python3 benches/python/rmq_bench.py consume -t "$py_topic" -c 100 -T 120) || { echo "$out"; exit 1; }
check "python consume" 100 "$out"
(cd benches/go && go build -o ../../target/go/rmq_bench_go .)
go_topic="${topic}_go"
out=$(target/go/rmq_bench_go produce -t "$go_topic" -m sync -b 10 -c 100 -W 0) || { echo "$out"; exit 1; }
check "go produce" 100 "$out"
out=$(target/go/rmq_bench_go consume -t "$go_topic" -c 100 -T 120) || { echo "$out"; exit 1; }
check "go consume" 100 "$out"
echo "bench-smoke: 9 passed, 0 failed"
