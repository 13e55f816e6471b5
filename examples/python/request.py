#!/usr/bin/env python3
"""Request-reply (RPC over RocketMQ): a responder, a push consumer that answers every request it
receives, and a requester that sends N requests and waits for each reply, in one program (in
practice they are two).

    python3 examples/python/request.py [NAMESRV [TOPIC [N]]]

NAMESRV defaults to $RMQ_NAMESRV, else 127.0.0.1:9876.
"""

import os
import sys
from pathlib import Path

try:
    import rmq
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import rmq

# Seconds a request waits for its reply. The first one may also wait for the responder to start
# (rebalance, first pull).
REPLY_TIMEOUT = 30


def main():
    namesrv = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RMQ_NAMESRV", "127.0.0.1:9876")
    topic = sys.argv[2] if len(sys.argv) > 2 else "RmqRequestTopic"
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    tag = f"run{os.getpid()}"  # the responder answers only this run's requests

    with rmq.Producer({"name-server": namesrv, "producer.group": "python_example_requester"}) as requester, \
            rmq.Producer({"name-server": namesrv, "producer.group": "python_example_reply"}) as replier:
        # With topics auto-created by the broker (autoCreateTopicEnable), send once so the topic
        # exists before the responder looks up its route; a topic made by mqadmin needs no such
        # step. The responder does not subscribe this tag.
        requester.send(rmq.Message(topic, b"hello", tags="hello"))

        def answer(messages):  # the responder, on the consumer's own threads
            for m in messages:
                replier.reply(m, b"re: " + m.body)  # raising here means: deliver again later
            return rmq.ConsumeStatus.SUCCESS

        consumer_config = {
            "name-server": namesrv,
            "consumer.group": "python_example_responder",
            "consumer.consume-from-where": "first",
        }
        matched = 0
        with rmq.PushConsumer(consumer_config) as responder:
            responder.subscribe(topic, tag)
            responder.start(answer)

            for i in range(n):
                question = f"question {i}"
                request = rmq.Message(topic, question.encode(), tags=tag)
                try:
                    with requester.request(request, REPLY_TIMEOUT) as reply:
                        ok = reply.body == f"re: {question}".encode()
                        print(f"{question} -> {reply.body.decode()}{'' if ok else '  (NOT the answer)'}")
                        matched += ok
                except rmq.RmqTimeoutError as e:  # sent, but no reply came in time
                    print(f"{question}: {e}")

    print(f"{matched} of {n} replies came back and matched")
    return 0 if matched == n else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rmq.RmqError as e:
        sys.exit(f"error: {e}")
