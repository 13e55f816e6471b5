"""Sends against a real broker; every message is read back and compared field by field."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import rmq

from conftest import PYTHON_DIR, wait_for

MiB = 1 << 20
FUTURE_TIMEOUT = 30  # seconds; every wait in these tests is bounded

BODIES = {
    "text": b"hello rmq",
    "binary": b"\x00\x00lead\x00ing NULs\x00\xff\xfe\xfd\x80\x81 not utf-8 \xc3\x28\xa0\xa1\x00",
    "all-bytes": bytes(range(256)) * 3,
    "1MiB": os.urandom(MiB - 7) + b"\x00\xff\x00tail",
}


def spec(label, i=0):
    """What one test message carries; every key is unique to this run."""
    uniq = uuid.uuid4().hex
    return {
        "body": BODIES[label],
        "tags": f"tag-{label}",
        "keys": [f"key-{uniq}", f"second-{i}"],
        "properties": {"case": label, "index": str(i), "unicode": "zoë ✓"},
    }


def message(topic, s):
    return rmq.Message(topic, s["body"], tags=s["tags"], keys=s["keys"], properties=s["properties"])


def assert_stored(stored: rmq.Message, topic: str, s: dict, result: rmq.SendResult = None):
    assert stored.topic == topic
    assert stored.body == s["body"]
    assert stored.tags == s["tags"]
    assert stored.keys == s["keys"]
    props = stored.properties
    for k, v in s["properties"].items():
        assert props.get(k) == v, k
    assert stored.offset_msg_id and stored.msg_id
    assert stored.queue_id is not None and stored.queue_offset is not None
    assert stored.born_timestamp > 0 and stored.store_timestamp >= stored.born_timestamp - 60_000
    if result is not None:
        assert stored.msg_id == result.msg_id
        assert stored.offset_msg_id == result.offset_msg_id
        assert stored.queue_id == result.queue_id
        assert stored.queue_offset == result.queue_offset


def assert_result(r: rmq.SendResult, topic: str):
    assert isinstance(r, rmq.SendResult)
    assert r.status == rmq.SendStatus.SEND_OK and r.status_name == "SEND_OK" and r.ok
    assert r.topic == topic
    assert r.msg_id and r.offset_msg_id and r.broker_name
    assert r.queue_id >= 0 and r.queue_offset >= 0


def test_send_sync_and_view_back(producer, topic):
    for i, label in enumerate(BODIES):
        s = spec(label, i)
        with message(topic, s) as m:
            r = producer.send(m)
        assert_result(r, topic)
        with producer.view_message(r.offset_msg_id) as stored:
            assert_stored(stored, topic, s, r)


def test_send_async_and_view_back(producer, topic):
    sent = []
    for i, label in enumerate(BODIES):
        s = spec(label, i)
        m = message(topic, s)
        fut = producer.send_async(m)
        m.close()  # the library copied what it needs
        assert isinstance(fut, concurrent.futures.Future)
        assert not fut.cancel()  # an accepted send cannot be cancelled
        sent.append((s, fut))
    for s, fut in sent:
        r = fut.result(timeout=FUTURE_TIMEOUT)
        assert_result(r, topic)
        with producer.view_message(r.offset_msg_id) as stored:
            assert_stored(stored, topic, s, r)


def test_send_oneway_and_query_back(producer, topic):
    sent = []
    for i, label in enumerate(BODIES):
        s = spec(label, i)
        with message(topic, s) as m:
            assert producer.send_oneway(m) is None
        sent.append(s)
    for s in sent:
        key = s["keys"][0]
        # the broker indexes keys asynchronously: retry for a while
        found = wait_for(lambda: producer.query_message(topic, key), timeout=20)
        assert len(found) == 1, f"oneway message with key {key} not found"
        assert_stored(found[0], topic, s)
        found[0].close()


def test_query_message_by_second_key_and_time_window(producer, topic):
    s = spec("text")
    before = int(time.time() * 1000) - 5_000
    r = producer.send(message(topic, s))
    found = wait_for(lambda: producer.query_message(topic, s["keys"][0], max_num=4, begin_ms=before), timeout=20)
    assert [m.offset_msg_id for m in found] == [r.offset_msg_id]
    # a window entirely in the past finds nothing
    assert producer.query_message(topic, s["keys"][0], begin_ms=0, end_ms=before - 60_000) == []
    assert producer.query_message(topic, "no-such-key-" + uuid.uuid4().hex) == []


def test_query_message_returns_all_matches(producer, topic, monkeypatch):
    """More matches than the wrapper's first buffer: the C call drops the rest and reports the
    full count, so the wrapper asks again with room for all. (Brokers cap one query at 64
    messages, so the first buffer is shrunk to reach that path.)"""
    monkeypatch.setattr(rmq.producer, "_QUERY_FIRST_CAPACITY", 8)
    key = "shared-" + uuid.uuid4().hex
    futures = [producer.send_async(rmq.Message(topic, b"q%d" % i, keys=[key, f"own-{i}"])) for i in range(30)]
    ids = {f.result(timeout=FUTURE_TIMEOUT).offset_msg_id for f in futures}
    assert wait_for(lambda: len(producer.query_message(topic, key, max_num=30)) == 30, timeout=20)
    found = producer.query_message(topic, key, max_num=30)
    assert {m.offset_msg_id for m in found} == ids
    assert sorted(m.body for m in found) == sorted(b"q%d" % i for i in range(30))
    for m in found:
        m.close()
    assert len(producer.query_message(topic, key, max_num=5)) == 5
    with pytest.raises(ValueError):
        producer.query_message(topic, key, max_num=2**31)
    with pytest.raises(TypeError):
        producer.query_message(topic, key, max_num="10")


def test_many_concurrent_async_sends(producer, topic):
    n = 200
    bodies = [f"msg {i} ".encode() + os.urandom(32) for i in range(n)]
    futures = []
    for b in bodies:
        with rmq.Message(topic, b, tags="bulk") as m:
            futures.append(producer.send_async(m))
    done, not_done = concurrent.futures.wait(futures, timeout=60)
    assert not not_done, f"{len(not_done)} of {n} async sends did not resolve"
    results = [f.result() for f in futures]
    for r in results:
        assert_result(r, topic)
    assert len({r.msg_id for r in results}) == n
    assert len({r.offset_msg_id for r in results}) == n
    assert len({(r.queue_id, r.queue_offset) for r in results}) == n
    for i in range(0, n, 40):
        with producer.view_message(results[i].offset_msg_id) as stored:
            assert stored.body == bodies[i]


def _thread_name(native_id):
    try:
        return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()
    except OSError:  # pragma: no cover - not Linux
        return "?"


def test_async_callbacks_run_on_the_callback_thread(producer, topic):
    names = []
    lock = threading.Lock()

    def record(fut):
        with lock:
            names.append((threading.get_native_id(), _thread_name(threading.get_native_id())))

    futures = []
    for i in range(20):
        with rmq.Message(topic, b"cb %d" % i) as m:
            f = producer.send_async(m)
        f.add_done_callback(record)
        futures.append(f)
    concurrent.futures.wait(futures, timeout=FUTURE_TIMEOUT)
    assert wait_for(lambda: len(names) == 20, timeout=5)
    me = threading.get_native_id()
    off_main = [name for tid, name in names if tid != me]
    assert off_main, "every send finished before its callback was added"
    if sys.platform.startswith("linux"):
        assert set(off_main) == {"rmq-callback-1"}


def test_sync_sends_from_many_threads(producer, topic):
    def work(t):
        out = []
        for i in range(15):
            with rmq.Message(topic, b"thread %d msg %d" % (t, i)) as m:
                out.append(producer.send(m))
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = [r for rs in ex.map(work, range(8), timeout=120) for r in rs]
    assert len({r.msg_id for r in results}) == 8 * 15
    for r in results:
        assert_result(r, topic)


def test_close_waits_for_pending_async_callbacks(make_producer, topic):
    p = make_producer()
    p.send(rmq.Message(topic, b"warm up route"))
    futures = [p.send_async(rmq.Message(topic, b"pending %d" % i)) for i in range(100)]
    p.close()
    # rmq_producer_destroy returns only after every accepted send's callback has run
    assert all(f.done() for f in futures)
    for f in futures:
        exc = f.exception(timeout=0)
        assert exc is None or isinstance(exc, rmq.RmqError)


def test_dropped_producer_still_resolves_its_futures(namesrv, topic):
    p = rmq.Producer({"name-server": namesrv, "producer.group": "pyg_drop_" + uuid.uuid4().hex[:8]})
    p.start()
    futures = [p.send_async(rmq.Message(topic, b"orphan %d" % i)) for i in range(20)]
    del p  # the pending sends keep it alive until their callbacks ran
    for f in futures:
        assert_result(f.result(timeout=FUTURE_TIMEOUT), topic)


def test_context_manager_starts_and_closes(config, topic):
    with rmq.Producer(config) as p:
        assert_result(p.send(rmq.Message(topic, b"with")), topic)
    assert p.handle is None
    with pytest.raises(rmq.InvalidHandleError):
        p.send(rmq.Message(topic, b"after"))
    # an already started producer is not started twice
    q = rmq.Producer(dict(config, **{"producer.group": config["producer.group"] + "_2"}))
    q.start()
    with q:
        assert_result(q.send(rmq.Message(topic, b"with2")), topic)
    assert q.handle is None


def test_interpreter_exit_with_sends_in_flight(namesrv, topic):
    code = f"""
import rmq
p = rmq.Producer({{"name-server": {namesrv!r}, "producer.group": "pyg_exit_{uuid.uuid4().hex[:8]}"}})
p.start()
futures = [p.send_async(rmq.Message({topic!r}, b"exit %d" % i)) for i in range(50)]
print("queued", len(futures), flush=True)
"""
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=str(PYTHON_DIR), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "queued 50" in r.stdout
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr, r.stderr
