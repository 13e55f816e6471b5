"""The push consumer in POP mode (consumer.consume-mode=pop) against a real 5.x broker: two
consumers of one group consume every message, and a message given twice is only a
re-delivery (with a higher reconsume count); a message not acked within its invisible time
comes again with the same message id; an orderly listener (orderly POP) gets each key's
messages in send order, and a suspended batch again as it was; unknown modes are refused."""

import collections
import threading
import time

import pytest

import rmq

from conftest import unique_name, wait_for

WITHIN = 90  # seconds; a failure bound, never a timing assumption


def pop_consumer(namesrv, group, topic, listener, orderly=False, **extra):
    cfg = {
        "name-server": namesrv,
        "consumer.group": group,
        "instance-name": unique_name("pypop"),
        "consumer.consume-from-where": "first",
        "consumer.consume-mode": "pop",
    }
    cfg.update(extra)
    c = rmq.PushConsumer(cfg)
    c.subscribe(topic, "*")
    c.start(listener, orderly=orderly)
    return c


def send_keyed(producer, topic, keys, n):
    """Sends "<key>:<i>" for i < n and each key, interleaved, through the hash selector; a
    failed ordered send is repeated in place, so the order stays."""
    for i in range(n):
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


def test_unknown_consume_modes_are_refused(namesrv):
    with pytest.raises(rmq.ConfigError):
        rmq.PushConsumer({"name-server": namesrv, "consumer.group": "G", "consumer.consume-mode": "push"})


def test_a_message_not_acked_comes_again_after_its_invisible_time(namesrv, producer, topic):
    producer.send(rmq.Message(topic, b"warmup"))
    cv = threading.Condition()
    seen = []  # (msg id, reconsume times, monotonic time) of "slow-0"

    def listener(batch):
        for m in batch:
            if m.body != b"slow-0":
                continue
            with cv:
                seen.append((m.msg_id, m.reconsume_times, time.monotonic()))
                cv.notify_all()
                if len(seen) == 1:
                    # Not answered until it comes again: its invisible time passes first.
                    cv.wait_for(lambda: len(seen) >= 2, WITHIN)
        return rmq.ConsumeStatus.SUCCESS

    c = pop_consumer(
        namesrv, unique_name("pypopinv"), topic, listener, **{"consumer.pop-invisible-time-millis": "2000"}
    )
    try:
        producer.send(rmq.Message(topic, b"slow-0"))
        with cv:
            assert cv.wait_for(lambda: len(seen) >= 2, WITHIN), seen
    finally:
        c.close()
    (id0, times0, at0), (id1, times1, at1) = seen[:2]
    assert id0 == id1
    assert (times0, times1) == (0, 1)
    assert at1 - at0 >= 1.5, "came again before its invisible time"


def test_orderly_pop_keeps_each_keys_send_order(namesrv, producer, topic):
    keys = [f"k{i}" for i in range(4)]
    n = 20
    send_keyed(producer, topic, keys, n)
    lock = threading.Lock()
    order = []
    running = collections.Counter()
    most = [0]

    def listener(batch):
        q = batch[0].queue_id
        with lock:
            running[q] += 1
            most[0] = max(most[0], running[q])
            order.extend(m.body.decode() for m in batch)
        time.sleep(0.002)
        with lock:
            running[q] -= 1
        return rmq.ConsumeOrderlyStatus.SUCCESS

    c = pop_consumer(
        namesrv, unique_name("pypopo"), topic, listener, orderly=True,
        **{"consumer.consume-message-batch-max-size": "3"},
    )
    try:
        def count():
            with lock:
                return len(order)

        assert wait_for(lambda: count() >= len(keys) * n, WITHIN), count()
    finally:
        c.close()
    per_key = collections.defaultdict(list)
    for b in order:
        k, i = b.split(":")
        per_key[k].append(int(i))
    assert dict(per_key) == {k: list(range(n)) for k in keys}
    assert most[0] == 1, "one queue ran two listener calls at once"


def test_orderly_pop_repeats_a_suspended_batch_as_it_was(namesrv, producer, topic):
    send_keyed(producer, topic, ["k"], 12)
    lock = threading.Lock()
    calls = []  # [(bodies, reconsume times)] per listener call

    def listener(batch):
        bodies = [m.body.decode() for m in batch]
        times = [m.reconsume_times for m in batch]
        with lock:
            calls.append((bodies, times))
        if "k:5" in bodies and all(t == 0 for t in times):
            return rmq.SuspendCurrentQueue(millis=300)
        return rmq.ConsumeOrderlyStatus.SUCCESS

    c = pop_consumer(
        namesrv, unique_name("pypops"), topic, listener, orderly=True,
        **{"consumer.consume-message-batch-max-size": "4"},
    )
    try:
        def done():
            with lock:
                return any("k:11" in b for b, _ in calls)

        assert wait_for(done, WITHIN), calls
    finally:
        c.close()
    at = next(i for i, (b, _) in enumerate(calls) if "k:5" in b)
    (suspended, t0), (again, t1) = calls[at], calls[at + 1]
    assert again == suspended, calls
    assert set(t0) == {0} and set(t1) == {1}, calls
    consumed = [int(b.split(":")[1]) for i, (bs, _) in enumerate(calls) if i != at for b in bs]
    assert consumed == list(range(12)), calls
