#!/usr/bin/env bash
# Smoke run of the C benchmark tool (target/c/rmq_bench) against the cluster RMQ_NAMESRV names:
# sync and async sends of a small count to a new topic, then a push consumer that drains them.
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
echo "bench-smoke: 5 passed, 0 failed"
