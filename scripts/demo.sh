#!/usr/bin/env bash
# make demo: a real local RocketMQ cluster (127.0.0.1:9876), then the C, Python and Go examples
# send messages through rmq and print the send results. Stops the cluster unless it was already
# running before the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export RMQ_NAMESRV_PORT="${RMQ_NAMESRV_PORT:-9876}"
export RMQ_BROKER_PORT="${RMQ_BROKER_PORT:-10911}"
ns="127.0.0.1:$RMQ_NAMESRV_PORT"
cluster=scripts/rocketmq-local.sh

if "$cluster" status >/dev/null 2>&1; then
  echo "demo: using the cluster already running at $ns"
else
  trap '"$cluster" down' EXIT
  "$cluster" up
fi

echo; echo "=== C example"
target/c/producer "$ns" RmqExampleTopic
echo; echo "=== Python example"
PYTHONPATH=bindings/python python3 examples/python/producer.py "$ns" RmqExampleTopic
echo; echo "=== Go example"
(cd examples/go && go run ./producer -namesrv "$ns" -topic RmqExampleTopic)
(cd examples/go && go run ./producer -namesrv "$ns")
echo; echo "=== C consumer example (receives what it sent)"
target/c/consumer "$ns" RmqDemoTopic
echo; echo "=== Python consumer example"
PYTHONPATH=bindings/python python3 examples/python/consumer.py "$ns" RmqDemoTopic
echo; echo "=== Go consumer example"
(cd examples/go && go run ./consumer -namesrv "$ns" -topic RmqDemoTopic)
echo; echo "demo: done"
