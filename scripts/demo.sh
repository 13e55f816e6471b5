#!/usr/bin/env bash
# make demo: a real local RocketMQ cluster (127.0.0.1:9876), then the C, Python and Go examples
# send messages through rmq and print the send results, receive what they sent, send
# transactions and make requests; each example exits non-zero when it did not get what it
# expects. Stops the cluster unless it was already running before the demo.
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
# Each transaction example waits for the broker to ask its checker about the third order:
# after the broker's transactionTimeOut, at its next check (3 s and every 1 s on the cluster
# this script starts).
echo; echo "=== C transaction example (commit, rollback, unknown settled by the checker)"
target/c/transaction "$ns" RmqDemoTransactionTopic
echo; echo "=== Python transaction example"
PYTHONPATH=bindings/python python3 examples/python/transaction.py "$ns" RmqDemoTransactionTopic
echo; echo "=== Go transaction example"
(cd examples/go && go run ./transaction -namesrv "$ns" -topic RmqDemoTransactionTopic)
echo; echo "=== C request-reply example"
target/c/request "$ns" RmqDemoRequestTopic
echo; echo "=== Python request-reply example"
PYTHONPATH=bindings/python python3 examples/python/request.py "$ns" RmqDemoRequestTopic
echo; echo "=== Go request-reply example"
(cd examples/go && go run ./request -namesrv "$ns" -topic RmqDemoRequestTopic)
echo; echo "demo: done"
