#!/usr/bin/env python3
"""Sends a few messages, then receives them with a push consumer (callback), and prints them.

    python3 examples/python/consumer.py [NAMESRV [TOPIC]]

NAMESRV defaults to $RMQ_NAMESRV, else 127.0.0.1:9876.
"""

import os
import sys
import threading
from pathlib import Path

try:
    import rmq
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import rmq

N = 5


def main():
    namesrv = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876")
    topic = sys.argv[2] if len(sys.argv) > 2 else "RmqExampleTopic"
    tag = f"run{os.getpid()}"  # only what this run sent is subscribed

    with rmq.Producer({"name-server": namesrv, "producer.group": "ExampleProducerGroup"}) as producer:
        for i in range(N):
            producer.send(rmq.Message(topic, f"hello {i}".encode(), tags=tag))
    print(f"sent {N} messages tagged {tag}")

    seen = []
    all_in = threading.Event()

    def on_messages(messages):  # runs on the consumer's own threads
        for m in messages:
            print(f"received {m.body.decode()}  msg id {m.msg_id}  queue {m.queue_id} offset {m.queue_offset}")
            seen.append(m)
        if len(seen) >= N:
            all_in.set()
        return rmq.ConsumeStatus.SUCCESS  # raising instead would mean: deliver again later

    config = {
        "name-server": namesrv,
        "consumer.group": "ExampleConsumerGroup",
        "consumer.consume-from-where": "first",
    }
    with rmq.PushConsumer(config) as consumer:
        consumer.subscribe(topic, tag)
        consumer.start(on_messages)
        all_in.wait(timeout=60)
    print(f"received {len(seen)} of {N}")
    return 0 if len(seen) >= N else 1


if __name__ == "__main__":
    sys.exit(main())
