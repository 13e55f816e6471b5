"""Orderly consumption against a real broker: messages of a sharding key arrive in send order,
each once, while a second consumer joins and the group rebalances; one queue never runs two
listener calls at once; a suspended message comes again, in order, after the chosen time; an
exception suspends; the statuses equal the header's."""

import re
import threading
import time

import pytest

import rmq

from conftest import REPO, unique_name, wait_for

WITHIN = 120  # seconds; a failure bound, never a timing assumption
KEYS = [f"k{i}" for i in range(8)]


def orderly_consumer(namesrv, group, **extra):
    cfg = {
        "name-server": namesrv,
        "consumer.group": group,
        "instance-name": unique_name("pyo"),
        "consumer.consume-from-where": "first",
    }
    cfg.update(extra)
    return rmq.PushConsumer(cfg)


def send_round(producer, topic, i, keys=KEYS):
    """Sends "<key>:<i>" for each key through the hash selector. An ordered send makes one
    attempt, so a failed one (a busy broker, a topic being created) is repeated here, in place."""
    for k in keys:
        msg = rmq.Message(topic, f"{k}:{i}".encode())
        deadline = time.monotonic() + 30
        while True:
            try:
                producer.send(msg, selector=rmq.HashSelector(k))
                break
            except rmq.RmqError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.3)


def test_orderly_statuses_equal_the_header():
    header = (REPO / "include" / "rmq.h").read_text()
    for status in rmq.ConsumeOrderlyStatus:
        m = re.search(rf"#define RMQ_CONSUME_ORDERLY_{status.name} (\d+)", header)
        assert m and int(m.group(1)) == status.value, status


def test_keys_arrive_in_send_order_across_a_rebalance(namesrv, producer):
    topic = unique_name("PyOrderly")
    group = unique_name("PyOrderlyGroup")
    lock = threading.Lock()
    order = []  # (key, index) in listener order, over both consumers
    per_consumer = [0, 0]
    running = {}
    most = [0]

    def listener_of(who):
        def listener(batch):
            q = batch[0].queue_id
            with lock:
                running[q] = running.get(q, 0) + 1
                most[0] = max(most[0], running[q])
                for m in batch:
                    k, i = m.body.decode().split(":")
                    order.append((k, int(i)))
                per_consumer[who] += len(batch)
            time.sleep(0.005)  # slow enough that the second consumer joins mid-stream
            with lock:
                running[q] -= 1
            return rmq.ConsumeOrderlyStatus.SUCCESS

        return listener

    sent = 0
    for sent in range(30):
        send_round(producer, topic, sent)
    sent = 30
    extra = {"consumer.rebalance-interval": "2000", "consumer.consume-thread-number": "4"}
    first = orderly_consumer(namesrv, group, **extra)
    second = orderly_consumer(namesrv, group, **extra)
    try:
        first.subscribe(topic, "*")
        first.start(listener_of(0), orderly=True)
        assert wait_for(lambda: len(order) >= 20, WITHIN)
        second.subscribe(topic, "*")
        second.start(listener_of(1), orderly=True)
        # Messages keep coming until the second consumer has taken queues.
        deadline = time.monotonic() + WITHIN
        while per_consumer[1] == 0 and time.monotonic() < deadline:
            send_round(producer, topic, sent)
            sent += 1
            time.sleep(0.02)
        for _ in range(20):
            send_round(producer, topic, sent)
            sent += 1
        assert wait_for(lambda: len(order) >= sent * len(KEYS), WITHIN), f"{len(order)} of {sent * len(KEYS)}"
    finally:
        first.close()
        second.close()
    for k in KEYS:
        assert [i for key, i in order if key == k] == list(range(sent)), k
    assert len(order) == sent * len(KEYS), "nothing twice"
    assert most[0] == 1, "one listener call per queue at a time"
    assert per_consumer[0] > 0 and per_consumer[1] > 0, per_consumer


def test_suspend_then_success_redelivers_in_order(namesrv, producer):
    topic = unique_name("PyOrderlySuspend")
    for i in range(4):
        send_round(producer, topic, i, keys=["k0"])
    seen = []
    calls = {"k0:1": 0, "k0:2": 0}

    def listener(batch):
        m = batch[0]
        body = m.body.decode()
        seen.append((body, m.reconsume_times, time.monotonic()))
        if body in calls:
            calls[body] += 1
            if calls[body] == 1:
                if body == "k0:1":
                    return rmq.SuspendCurrentQueue(millis=300)
                raise RuntimeError("an exception suspends the queue as well")
        return None

    c = orderly_consumer(namesrv, unique_name("PyOrderlySuspendGroup"), **{
        "consumer.suspend-current-queue-time-millis": "50"})
    try:
        c.subscribe(topic, "*")
        c.start(listener, orderly=True)
        assert wait_for(lambda: len(seen) >= 6, WITHIN), seen
    finally:
        c.close()
    assert [(b, t) for b, t, _ in seen] == [
        ("k0:0", 0), ("k0:1", 0), ("k0:1", 1), ("k0:2", 0), ("k0:2", 1), ("k0:3", 0)
    ]
    assert seen[2][2] - seen[1][2] >= 0.3


def test_orderly_needs_a_listener(namesrv):
    c = orderly_consumer(namesrv, unique_name("PyOrderlyNone"))
    try:
        c.subscribe("T", "*")
        with pytest.raises(TypeError):
            c.start(orderly=True)
    finally:
        c.close()
