"""Poll mode against a real broker: every message produced is polled (sets compared, fields
checked); per-message acknowledgement brings the refused ones back with reconsume_times >= 1;
batches not acknowledged at close go to the next consumer of the group; an empty poll returns
None; close wakes a waiting poll; misuse raises clear errors; the iterators take whole batches
from the library."""

import asyncio
import threading
import time

import pytest

import rmq
from rmq import consumer as consumer_module

from conftest import unique_name

WITHIN = 90  # seconds; a failure bound, never a timing assumption


def config(namesrv, group=None):
    return {
        "name-server": namesrv,
        "consumer.group": group or unique_name("pypollg"),
        "instance-name": unique_name("pypolli"),
        "consumer.consume-from-where": "first",
    }


def started(namesrv, topic, group=None):
    c = rmq.PushConsumer(config(namesrv, group))
    c.subscribe(topic, "*")
    c.start()
    return c


def send_all(producer, topic, prefix, n):
    bodies = set()
    for i in range(n):
        body = f"{prefix}-{i}"
        producer.send(rmq.Message(topic, body.encode(), keys=[body], properties={"n": str(i)}))
        bodies.add(body)
    return bodies


def test_every_message_is_polled_with_its_fields(producer, topic, namesrv):
    sent = send_all(producer, topic, "pa", 50)
    with started(namesrv, topic) as c:
        got, largest = set(), 0
        deadline = time.monotonic() + WITHIN
        while got != sent and time.monotonic() < deadline:
            batch = c.poll(16, timeout=0.5)
            if batch is None:
                continue
            assert 1 <= len(batch) <= 16
            largest = max(largest, len(batch))
            for m in batch:
                body = m.body.decode()
                assert m.topic == topic and m.keys == [body]
                assert m.property("n") == body.split("-")[1]
                assert m.msg_id and m.offset_msg_id and m.broker_name and m.born_timestamp > 0
                got.add(body)
            batch.ack()
        assert got == sent
        assert largest > 1


def test_refused_messages_come_back_with_reconsume_times(producer, topic, namesrv):
    sent = send_all(producer, topic, "pp", 10)
    odd = {b for b in sent if int(b.split("-")[1]) % 2}
    with started(namesrv, topic) as c:
        consumed, came_back = set(), set()
        deadline = time.monotonic() + WITHIN
        while consumed != sent and time.monotonic() < deadline:
            batch = c.poll(32, timeout=0.5)
            if batch is None:
                continue
            results = []
            for m in batch:
                body = m.body.decode()
                if body in odd and m.reconsume_times == 0:
                    results.append(rmq.ReconsumeLater(1))
                else:
                    if m.reconsume_times >= 1:
                        came_back.add(body)
                    consumed.add(body)
                    results.append(None)
            batch.ack_each(results)
            with pytest.raises(rmq.InvalidStateError):
                batch.ack()  # answered once only
        assert consumed == sent
        assert came_back == odd


def test_batches_unanswered_at_close_go_to_the_next_consumer(producer, topic, namesrv):
    sent = send_all(producer, topic, "pu", 6)
    group = unique_name("pypollheld")
    first = started(namesrv, topic, group)
    held, got = [], set()
    deadline = time.monotonic() + WITHIN
    while got != sent and time.monotonic() < deadline:
        batch = first.poll(32, timeout=0.5)
        if batch is not None:
            held.append(batch)
            got.update(m.body.decode() for m in batch)
    assert got == sent
    first.close()
    with pytest.raises(rmq.InvalidStateError):
        held[0].ack()  # too late: not committed
    for b in held[1:]:
        b.release()
    with started(namesrv, topic, group) as second:
        again = set()
        deadline = time.monotonic() + WITHIN
        while again != sent and time.monotonic() < deadline:
            batch = second.poll(32, timeout=0.5)
            if batch is not None:
                with batch:  # acknowledged when the block ends normally
                    again.update(m.body.decode() for m in batch)
        assert again == sent


def test_a_batch_whose_block_raises_comes_back(producer, topic, namesrv):
    sent = send_all(producer, topic, "pw", 1)
    with started(namesrv, topic) as c:
        batch = None
        deadline = time.monotonic() + WITHIN
        while batch is None and time.monotonic() < deadline:
            batch = c.poll(8, timeout=0.5)
        with pytest.raises(RuntimeError):
            with batch:
                raise RuntimeError("not consumed")
        again = None
        deadline = time.monotonic() + WITHIN
        while again is None and time.monotonic() < deadline:
            again = c.poll(8, timeout=0.5)
        assert {m.body.decode() for m in again} == sent
        assert again[0].reconsume_times >= 1
        again.ack()


def test_an_empty_poll_returns_none_and_close_wakes_a_waiting_poll(producer, topic, namesrv):
    send_all(producer, topic, "pe", 1)
    c = started(namesrv, topic)
    first = None
    deadline = time.monotonic() + WITHIN
    while first is None and time.monotonic() < deadline:
        first = c.poll(8, timeout=0.5)
    first.ack()
    t0 = time.monotonic()
    assert c.poll(8, timeout=0.2) is None
    assert c.poll(8, timeout=0) is None
    assert time.monotonic() - t0 < 10  # failure bound only
    outcome = []

    def wait():
        try:
            outcome.append(c.poll(8))
        except rmq.InvalidStateError as e:
            outcome.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.3)
    c.close()
    t.join(WITHIN)
    assert not t.is_alive()
    assert isinstance(outcome[0], rmq.InvalidStateError)
    with pytest.raises(rmq.InvalidStateError):
        c.poll(8, timeout=0)
    assert list(c.messages(timeout=1)) == []  # a closed consumer's iterator just ends


def test_poll_misuse_raises_clear_errors(namesrv, topic):
    c = rmq.PushConsumer(config(namesrv))
    with pytest.raises(rmq.InvalidStateError):
        c.poll(1, timeout=0)  # not started
    c.subscribe(topic, "*")
    c.start(lambda batch: None)
    with pytest.raises(rmq.InvalidStateError):
        c.poll(1, timeout=0)  # started with a listener
    c.close()
    c2 = rmq.PushConsumer(config(namesrv))
    c2.subscribe(topic, "*")
    c2.start()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            c2.poll(bad, timeout=0)
    c2.close()


def test_the_iterator_takes_whole_batches_from_the_library(producer, topic, namesrv, monkeypatch):
    sent = send_all(producer, topic, "pi", 30)
    batches = []
    real = consumer_module._lib.rmq_received_batch_views

    def counting(*args):
        batches.append(1)
        return real(*args)

    def per_message(*args):
        raise AssertionError("a per-message call into the library")

    with started(namesrv, topic) as c:
        proxy = _Proxy(
            consumer_module._lib,
            rmq_received_batch_views=counting,
            rmq_received_message_body=per_message,
            rmq_received_message_topic=per_message,
            rmq_received_message_property_at=per_message,
        )
        monkeypatch.setattr(consumer_module, "_lib", proxy)
        got = set()
        for m in c.messages(timeout=WITHIN, batch_size=32):
            got.add(m.body.decode())
            if got >= sent:
                break
        assert got == sent
        # One call reads a whole batch; the broker hands out several messages per pull.
        assert len(batches) < len(sent)


def test_async_for_polls_batches(producer, topic, namesrv):
    sent = send_all(producer, topic, "pz", 20)
    with started(namesrv, topic) as c:

        async def receive():
            got = set()
            async for m in c.messages_async(batch_size=8):
                got.add(m.body.decode())
                if got >= sent:
                    break
            return got

        assert asyncio.run(asyncio.wait_for(receive(), WITHIN)) == sent


class _Proxy:
    """The library object with some functions replaced."""

    def __init__(self, lib, **replaced):
        self._lib = lib
        self._replaced = replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._lib, name)
