"""Async batches, and async sends retried on another broker, against real brokers.

The retry test pauses broker-b of the two-broker IPv6 cluster (SIGSTOP through the pid the
cluster script reports for $RMQ_DATA_V6) and always resumes it (finally, and atexit)."""

import asyncio
import atexit
import os
import signal
import subprocess
import threading

import pytest

import rmq
from conftest import REPO, unique_name


def test_send_batch_async_resolves_with_each_message_id(make_producer, topic):
    p = make_producer()
    msgs = [rmq.Message(topic, f"py async batch {i}".encode(), keys=[f"ab{i}"], properties={"n": str(i)}) for i in range(3)]
    future = p.send_batch_async(msgs)
    assert isinstance(future, rmq.SendFuture)
    r = future.result(timeout=10)
    assert r.ok and len(r.msg_ids) == len(r.offset_msg_ids) == 3
    for i, m in enumerate(msgs):
        stored = p.view_message(r.offset_msg_ids[i])
        assert stored.body == m.body and stored.keys == m.keys
        assert stored.get_property("n") == str(i)
        assert stored.msg_id == r.msg_ids[i]


def test_send_batch_async_is_awaitable(make_producer, topic):
    p = make_producer()

    async def main():
        return await p.send_batch_async([rmq.Message(topic, b"a"), rmq.Message(topic, b"b")])

    r = asyncio.run(main())
    assert r.ok and len(r.msg_ids) == 2


def test_send_batch_async_rules_raise_before_sending(make_producer, topic):
    p = make_producer()
    with pytest.raises(rmq.InvalidArgumentError, match="at least one"):
        p.send_batch_async([])
    with pytest.raises(rmq.InvalidArgumentError, match="one topic"):
        p.send_batch_async([rmq.Message(topic, b"a"), rmq.Message(topic + "x", b"b")])
    with pytest.raises(TypeError):
        p.send_batch_async(rmq.Message(topic, b"a"))


def test_send_batch_async_window_and_shutdown_complete_each_future_once(make_producer, topic):
    p = make_producer({"producer.max-in-flight-async-sends": "1", "producer.block-when-in-flight-full": "false"})
    batch = [rmq.Message(topic, b"a"), rmq.Message(topic, b"b")]
    futures, full = [], 0
    for _ in range(8):
        try:
            futures.append(p.send_batch_async(batch))
        except rmq.RmqError as e:
            assert e.status == rmq.Status.RMQ_ERR_IN_FLIGHT_FULL, e
            full += 1
    assert futures and len(futures) + full == 8
    calls = []
    lock = threading.Lock()
    for f in futures:
        f.add_done_callback(lambda f: (lock.acquire(), calls.append(f), lock.release()))
    p.close()  # waits for every callback
    assert len(calls) == len(futures)
    for f in futures:
        e = f.exception(timeout=0)
        assert e is None or isinstance(e, rmq.OperationCancelledError)


# ------------------------------------------------------------------ retry on another broker
def _broker_pid(name):
    data = os.environ.get("RMQ_DATA_V6", "").strip()
    if not data:
        pytest.fail("RMQ_DATA_V6 is not set: where the cluster script finds the IPv6 cluster's brokers", pytrace=False)
    out = subprocess.run(
        [str(REPO / "scripts" / "rocketmq-local.sh"), "pids"],
        env={**os.environ, "RMQ_DATA": data},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = dict(line.split() for line in out.splitlines() if line.strip())
    assert name in pids, out
    return int(pids[name])


def _send_async_n(p, topic, n):
    """Outcomes of n async sends: (brokers of the OK ones, number failed)."""
    futures = [p.send_async(rmq.Message(topic, b"retry")) for _ in range(n)]
    brokers, failed = [], 0
    for f in futures:
        e = f.exception(timeout=30)
        if e is None:
            brokers.append(f.result().broker_name)
        else:
            assert isinstance(e, rmq.RmqTimeoutError), e
            failed += 1
    return brokers, failed


def test_async_send_is_retried_on_the_other_broker(make_producer, v6_namesrv, topic):
    broker_b = _broker_pid("broker-b")
    base = {"name-server": v6_namesrv, "producer.send-message-timeout": "1500"}
    retry = make_producer({**base, "producer.retry-times-when-send-async-failed": "1"})
    once = make_producer({**base, "producer.retry-times-when-send-async-failed": "0"})
    # the topic on both brokers (4 queues each), known to both producers; 8 sends in a row
    # pick each of the 8 queues once
    brokers, failed = _send_async_n(retry, topic, 8)
    assert failed == 0 and sorted(brokers).count("broker-b") == 4
    assert _send_async_n(once, topic, 8)[1] == 0

    resume = lambda: os.kill(broker_b, signal.SIGCONT)  # noqa: E731
    atexit.register(resume)
    os.kill(broker_b, signal.SIGSTOP)
    try:
        # broker-b is silent: an attempt there times out after its share of the send timeout
        # (750 ms) and the retry goes to broker-a within the same timeout
        with_retry = _send_async_n(retry, topic, 8)
        # one attempt only: the sends that pick broker-b time out
        without = _send_async_n(once, topic, 8)
    finally:
        resume()
        atexit.unregister(resume)
    assert with_retry == (["broker-a"] * 8, 0)
    assert without == (["broker-a"] * 4, 4)
