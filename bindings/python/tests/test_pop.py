"""The push consumer in POP mode (consumer.consume-mode=pop) against a real 5.x broker: two
consumers of one group consume every message, and a message given twice is only a
re-delivery (with a higher reconsume count); poll mode is refused in POP mode."""

import collections
import threading

import pytest

import rmq

from conftest import unique_name, wait_for

WITHIN = 90  # seconds; a failure bound, never a timing assumption


def pop_consumer(namesrv, group, topic, listener):
    c = rmq.PushConsumer(
        {
            "name-server": namesrv,
            "consumer.group": group,
            "instance-name": unique_name("pypop"),
            "consumer.consume-from-where": "first",
            "consumer.consume-mode": "pop",
        }
    )
    c.subscribe(topic, "*")
    c.start(listener)
    return c


def test_two_pop_consumers_consume_every_message(namesrv, producer, topic):
    sent = set()
    for i in range(50):
        body = f"pop-{i}"
        producer.send(rmq.Message(topic, body.encode()))
        sent.add(body)
    lock = threading.Lock()
    deliveries = collections.Counter()

    def listener(batch):
        with lock:
            for m in batch:
                deliveries[(m.body.decode(), m.reconsume_times)] += 1
        return rmq.ConsumeStatus.SUCCESS

    group = unique_name("pypopg")
    consumers = [pop_consumer(namesrv, group, topic, listener) for _ in range(2)]
    try:

        def bodies():
            with lock:
                return {b for b, _ in deliveries}

        assert wait_for(lambda: bodies() == sent, WITHIN), len(bodies())
    finally:
        for c in consumers:
            c.close()
    with lock:
        assert not [d for d, n in deliveries.items() if n > 1], deliveries


def test_pop_mode_refuses_poll_mode_and_unknown_modes(namesrv):
    with pytest.raises(rmq.ConfigError):
        rmq.PushConsumer({"name-server": namesrv, "consumer.group": "G", "consumer.consume-mode": "push"})
    c = rmq.PushConsumer(
        {"name-server": namesrv, "consumer.group": unique_name("pypoll"), "consumer.consume-mode": "pop"}
    )
    try:
        c.subscribe("PyPopPollTopic", "*")
        with pytest.raises(rmq.InvalidStateError):
            c.start()  # no listener: poll mode
    finally:
        c.close()
