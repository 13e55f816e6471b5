#!/usr/bin/env python3
"""Transactional messages: three orders are sent in transactions; the first commits, the second
rolls back, the third answers UNKNOWN and is committed later by the checker, when the broker asks
about it. A consumer then receives exactly the two committed orders.

    python3 examples/python/transaction.py [NAMESRV [TOPIC]]

NAMESRV defaults to $RMQ_NAMESRV, else 127.0.0.1:9876. The broker asks the checker once a half
message is older than its transactionTimeOut (6 s by default) at its next check, every
transactionCheckInterval (30 s by default), so the third order arrives that much later.
"""

import collections
import os
import sys
import threading
from pathlib import Path

try:
    import rmq
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import rmq

COMMIT, ROLLBACK, UNKNOWN = (rmq.TransactionState.COMMIT, rmq.TransactionState.ROLLBACK,
                             rmq.TransactionState.UNKNOWN)

# key: (what the application's state will say, what the local transaction answers now)
ORDERS = {
    "order-1": (COMMIT, COMMIT),
    "order-2": (ROLLBACK, ROLLBACK),
    "order-3": (COMMIT, UNKNOWN),
}


class Records:
    """The application's own state, standing in for its database: the outcome of each local
    transaction by transaction id. The checker reads it on its own thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._states = {}

    def save(self, transaction_id, state):
        with self._lock:
            self._states[transaction_id] = state

    def get(self, transaction_id):
        with self._lock:
            return self._states.get(transaction_id)


def main():
    namesrv = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876")
    topic = sys.argv[2] if len(sys.argv) > 2 else "RmqTransactionTopic"
    tag = f"run{os.getpid()}"  # only what this run sent is subscribed
    records = Records()

    def execute(message, result, key):  # the local transaction, on this thread
        outcome, answer = ORDERS[key]
        records.save(result.transaction_id, outcome)  # "write the order to the database"
        print(f"local transaction of {key} (transaction id {result.transaction_id}): {answer.name}")
        return answer

    def check(message):  # on "rmq-txn-check-1", when the broker asks; msg_id is the transaction id
        state = records.get(message.msg_id)
        if state is None:
            # Not in this run's records: a transaction of another run of the group, which this
            # in-memory stand-in cannot judge; the broker asks again later.
            state = UNKNOWN
        print(f"checker asked about {message.msg_id}: {state.name}")
        return state

    config = {"name-server": namesrv, "producer.group": "python_example_transaction"}
    with rmq.TransactionProducer(config, check) as producer:
        for key in ORDERS:
            msg = rmq.Message(topic, f"{key} of {tag}".encode(), tags=tag, keys=[key])
            r = producer.send_in_transaction(msg, execute, key)
            print(f"sent {key} in a transaction: {r.state.name}")

        # The producer stays open meanwhile: the broker asks its checker about order-3.
        seen = collections.Counter()
        lock = threading.Lock()
        both = threading.Event()

        def on_messages(messages):  # on the consumer's own threads
            with lock:
                for m in messages:
                    print(f"received {m.body.decode()}  msg id {m.msg_id}")
                    seen[" ".join(m.keys)] += 1
                if seen["order-1"] and seen["order-3"]:
                    both.set()
            return rmq.ConsumeStatus.SUCCESS

        consumer_config = {
            "name-server": namesrv,
            "consumer.group": "python_example_transaction_consumer",
            "consumer.consume-from-where": "first",
        }
        with rmq.PushConsumer(consumer_config) as consumer:
            consumer.subscribe(topic, tag)
            consumer.start(on_messages)
            print("waiting for order-1, and for order-3 once the broker asks the checker")
            both.wait(timeout=90)

    with lock:
        ok = seen == collections.Counter({"order-1": 1, "order-3": 1})
        counts = f"order-1 {seen['order-1']} time(s), order-2 {seen['order-2']}, order-3 {seen['order-3']}"
    print(f"received {counts}: {'the two committed orders, once each' if ok else 'NOT what was committed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rmq.RmqError as e:
        sys.exit(f"error: {e}")
