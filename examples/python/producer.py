#!/usr/bin/env python3
"""Sends a few messages sync, async and oneway and prints the send results.

    python3 examples/python/producer.py [NAMESRV [TOPIC]]

NAMESRV defaults to $RMQ_NAMESRV, else 127.0.0.1:9876. The rmq package is the installed one
(pip install ./bindings/python), else bindings/python of this repository with the library from
$RMQ_LIBRARY or target/release.
"""

import concurrent.futures
import os
import sys
import time
from pathlib import Path

try:
    import rmq
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import rmq


def show(how, r):
    print(
        f"{how:6} {r.status_name} msgId={r.msg_id} offsetMsgId={r.offset_msg_id} "
        f"queue={r.broker_name}/{r.topic}/{r.queue_id} offset={r.queue_offset}"
    )


def main():
    namesrv = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876")
    topic = sys.argv[2] if len(sys.argv) > 2 else "RmqExampleTopic"
    config = {
        "name-server": namesrv,
        "producer.group": "rmq_example_python_group",
        "producer.send-message-timeout": 3000,
    }
    print(f"rmq {rmq.library_version} ({rmq.library_path}); name server {namesrv}, topic {topic}")

    with rmq.Producer(config) as producer:
        for i in range(3):
            msg = rmq.Message(topic, b"sync message %d" % i, tags="sync", keys=[f"sync-{i}"])
            show("sync", producer.send(msg))

        futures = []
        for i in range(3):
            msg = rmq.Message(topic, b"async message %d" % i, tags="async", keys=[f"async-{i}"],
                              properties={"sent-at": str(time.time())})
            futures.append(producer.send_async(msg))
        # wait with a timeout so Ctrl-C and a dead broker cannot hang the example
        for f in concurrent.futures.as_completed(futures, timeout=30):
            try:
                show("async", f.result())
            except rmq.RmqError as e:
                print(f"async  failed: {e}")

        for i in range(3):
            msg = rmq.Message(topic, b"oneway message %d" % i, tags="oneway", keys=[f"oneway-{i}"])
            producer.send_oneway(msg)
            print(f"oneway sent (no result) keys=oneway-{i}")

        # read one back by its offset message id
        r = producer.send(rmq.Message(topic, b"read me back", tags="view"))
        stored = producer.view_message(r.offset_msg_id)
        print(f"view   body={stored.body!r} tags={stored.tags} stored at {stored.store_timestamp} "
              f"queue={stored.queue_id} offset={stored.queue_offset}")


if __name__ == "__main__":
    try:
        main()
    except rmq.RmqError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
