"""Completion queues against a real broker: asyncio sends resolved in batches by the event
loop's reader, 10 000 results each exactly once, one queue shared by two producers, and queues
or producers closed with sends in flight."""

import asyncio
import collections

import pytest

import rmq

TIMEOUT = 120  # seconds; every wait here is bounded
#: Bursts of thousands of async sends on a busy 2-core machine: a failure must mean a bug, not
#: a broker that answered after the default 3 s.
PATIENT = {"producer.send-message-timeout": "30000"}


def test_asyncio_ten_thousand_sends_each_resolve_once(make_producer, topic):
    p = make_producer(PATIENT)
    p.send(rmq.Message(topic, b"warm-up"))  # the topic exists before the burst

    async def main():
        with rmq.CompletionQueue(capacity=1024) as q:
            msgs = [rmq.Message(topic, b"aio %d" % i) for i in range(200)]
            results = await asyncio.wait_for(
                asyncio.gather(*(q.send(p, msgs[i % 200]) for i in range(10_000))), TIMEOUT
            )
            assert q.counts() == (0, 0)
            return results

    results = asyncio.run(main())
    assert len(results) == 10_000
    assert all(r.ok and r.topic == topic and len(r.msg_id) == 32 for r in results)
    stored = {(r.broker_name, r.queue_id, r.queue_offset) for r in results}
    assert len(stored) == 10_000, "each result names its own stored position"
    assert len({r.msg_id for r in results}) == 10_000


def test_tagged_sends_from_two_producers_share_one_queue(make_producer, topic):
    a, b = make_producer(PATIENT), make_producer(PATIENT)
    a.send(rmq.Message(topic, b"warm-up"))
    m = rmq.Message(topic, b"shared")
    with rmq.CompletionQueue(capacity=300) as q:
        taken = []
        for i in range(500):
            for producer, tag in ((a, i), (b, 1000 + i)):
                while True:
                    try:
                        q.send_tagged(producer, m, tag)
                        break
                    except rmq.RmqError as e:
                        assert e.status == rmq.Status.RMQ_ERR_IN_FLIGHT_FULL
                        taken += q.poll(256, timeout=10)
        while len(taken) < 1000:
            got = q.poll(256, timeout=30)
            assert got, f"no result within 30 s; {len(taken)} of 1000"
            taken += got
    counts = collections.Counter(c.tag for c in taken)
    assert set(counts) == set(range(500)) | set(range(1000, 1500))
    assert set(counts.values()) == {1}
    assert all(c.error is None and c.result.ok for c in taken)


def test_fd_is_readable_while_results_wait(make_producer, topic):
    import select

    p = make_producer()
    p.send(rmq.Message(topic, b"warm-up"))
    with rmq.CompletionQueue(capacity=16) as q:
        assert select.select([q], [], [], 0)[0] == []
        for tag in range(5):
            q.send_tagged(p, rmq.Message(topic, b"fd"), tag)
        taken = []
        while len(taken) < 5:
            assert select.select([q], [], [], 30)[0] == [q]
            taken += q.poll(256, timeout=0)
        assert select.select([q], [], [], 0)[0] == [], "cleared once all is taken"
        assert sorted(c.tag for c in taken) == list(range(5))


def test_closing_the_queue_with_sends_in_flight(make_producer, topic):
    p = make_producer()
    p.send(rmq.Message(topic, b"warm-up"))

    async def main():
        q = rmq.CompletionQueue(capacity=500)
        futs = [q.send_nowait(p, rmq.Message(topic, b"x%d" % i)) for i in range(200)]
        q.close()
        q.close()  # idempotent
        with pytest.raises(rmq.InvalidHandleError):
            q.send_nowait(p, rmq.Message(topic, b"late"))
        return futs

    futs = asyncio.run(main())
    assert all(f.done() for f in futs), "every future settles at close"
    for f in futs:
        e = f.exception()
        assert e is None or isinstance(e, rmq.OperationCancelledError), e
    p.close()  # returns: the late results were dropped, not stuck


def test_closing_the_producer_with_sends_in_flight_delivers_each_once(make_producer, topic):
    p = make_producer()
    p.send(rmq.Message(topic, b"warm-up"))
    with rmq.CompletionQueue(capacity=1000) as q:
        for tag in range(300):
            q.send_tagged(p, rmq.Message(topic, b"s"), tag)
        p.close()
        assert q.counts() == (300, 300), "every result is in the queue once close returns"
        taken = q.poll(1000)
    assert sorted(c.tag for c in taken) == list(range(300))
    for c in taken:
        assert c.result is not None or isinstance(c.error, rmq.OperationCancelledError)


def test_misuse_is_a_clear_error(make_producer):
    with pytest.raises(ValueError):
        rmq.CompletionQueue(capacity=0)
    q = rmq.CompletionQueue(capacity=4)
    with pytest.raises(TypeError):
        q.send_tagged("not a producer", rmq.Message("T", b"x"), 1)
    assert q.poll(10, timeout=0.01) == []
    q.close()
    with pytest.raises(rmq.RmqError):
        q.poll(1)
