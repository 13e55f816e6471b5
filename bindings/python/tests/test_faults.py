"""Faults through the Python package, against a real broker: shutdown with many sends in
flight, fork(), and close() called from Future done-callbacks. Every wait is bounded; no
assertion depends on how fast anything is."""

import asyncio
import collections
import concurrent.futures
import os
import signal
import socket
import threading
import time

import pytest

import rmq
from rmq import producer as producer_module

from conftest import unique_name

FUTURE_TIMEOUT = 30  # seconds; a bound for failures only


def _pending_of(p):
    """Entries of the package's pending-send table that belong to producer p."""
    with producer_module._pending_lock:
        return [uid for uid, (_, owner) in producer_module._pending.items() if owner is p]


def _outcome(future):
    """The SendResult or the exception of a resolved future."""
    exc = future.exception(timeout=0)
    return exc if exc is not None else future.result(timeout=0)


# ------------------------------------------------------------------------ error classes
def test_fault_statuses_have_their_own_classes():
    for name, cls, base in [
        ("RMQ_ERR_FORKED", rmq.ForkedError, rmq.InvalidArgumentError),
        ("RMQ_ERR_RESOURCE", rmq.ResourceError, rmq.TransportError),
        ("RMQ_ERR_CANCELLED", rmq.OperationCancelledError, rmq.TransportError),
    ]:
        err = rmq.error_for(rmq.Status[name], "why")
        assert type(err) is cls and isinstance(err, base) and isinstance(err, rmq.RmqError)
        assert err.name == name and err.message == "why"
        assert cls.__doc__ and name in cls.__doc__
        assert cls.__name__ in rmq.__all__ and getattr(rmq, cls.__name__) is cls
        assert not err.is_retriable
    # not the standard library's cancellation: a cancelled send is a failed Future, not a
    # cancelled one, and catching CancelledError must not swallow it (or the reverse)
    for std in (asyncio.CancelledError, concurrent.futures.CancelledError):
        assert not issubclass(rmq.OperationCancelledError, std)
        assert not issubclass(std, rmq.OperationCancelledError)


# ------------------------------------------------------------- shutdown with sends in flight
N_IN_FLIGHT = 3000


@pytest.mark.parametrize("how", ["close", "shutdown-then-close"])
def test_shutdown_resolves_every_in_flight_future_once(make_producer, topic, how):
    p = make_producer()
    p.send(rmq.Message(topic, b"warm up the route and the connection"))
    msg = rmq.Message(topic, b"in flight at shutdown")
    calls = [0] * N_IN_FLIGHT
    lock = threading.Lock()

    def counter(i):
        def on_done(_future):
            with lock:
                calls[i] += 1

        return on_done

    futures = []
    for i in range(N_IN_FLIGHT):
        f = p.send_async(msg)
        f.add_done_callback(counter(i))
        futures.append(f)
    if how == "shutdown-then-close":
        p.shutdown()
        with pytest.raises(rmq.InvalidStateError):
            p.send_async(msg)
    p.close()

    # close() returned: every Future is resolved, each once, none is left in the package
    pending = [i for i, f in enumerate(futures) if not f.done()]
    assert not pending, f"{len(pending)} futures still pending after close()"
    assert not _pending_of(p)
    with lock:
        assert calls == [1] * N_IN_FLIGHT
    outcomes = [_outcome(f) for f in futures]
    ok = [o for o in outcomes if isinstance(o, rmq.SendResult)]
    cancelled = [o for o in outcomes if isinstance(o, rmq.OperationCancelledError)]
    other = [o for o in outcomes if not isinstance(o, (rmq.SendResult, rmq.OperationCancelledError))]
    print(f"{how}: {len(ok)} sent, {len(cancelled)} cancelled of {N_IN_FLIGHT}")
    assert not other, other[:3]
    assert all(r.ok and r.topic == topic for r in ok)
    assert all(e.status == rmq.Status.RMQ_ERR_CANCELLED and e.message for e in cancelled)
    assert not any(f.cancelled() for f in futures)  # failed with an error, not cancelled
    with pytest.raises(rmq.InvalidHandleError):
        p.send_async(msg)


def test_shutdown_cancels_sends_waiting_on_a_silent_name_server(topic):
    """Deterministic: a name server that accepts connections and never answers holds every send
    at its route lookup, so all are in flight when the producer shuts down, and every one fails
    at once with OperationCancelledError, long before its timeout. Several rounds: a send woken
    by the cancel and the closed connection together used to end with either."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    timeout_ms = 20_000
    try:
        for _ in range(10):
            p = rmq.Producer(
                {
                    "name-server": "127.0.0.1:%d" % silent.getsockname()[1],
                    "producer.group": unique_name("pyg", "silent"),
                    "producer.send-message-timeout": timeout_ms,
                    "client.api-timeout": timeout_ms,
                }
            )
            try:
                p.start()
                futures = [p.send_async(rmq.Message(topic, b"never routed %d" % i)) for i in range(200)]
                t0 = time.monotonic()
                p.shutdown()
                _, not_done = concurrent.futures.wait(futures, timeout=FUTURE_TIMEOUT)
                elapsed = time.monotonic() - t0
                assert not not_done
                assert elapsed < timeout_ms / 1000 / 2, f"took {elapsed:.1f}s: waited for the timeout"
                kinds = collections.Counter(type(f.exception(timeout=0)).__name__ for f in futures)
                assert kinds == {"OperationCancelledError": len(futures)}
                for f in futures:
                    exc = f.exception(timeout=0)
                    assert exc.status == rmq.Status.RMQ_ERR_CANCELLED and "shut down" in exc.message
            finally:
                p.close()
    finally:
        silent.close()


# ---------------------------------------------------------------------------------- fork
def _child_checks(old, config, topic):
    """Runs in the child; returns "ok" or what went wrong (the child cannot use pytest)."""
    msg = rmq.Message(topic, b"from the child")
    for name, call in [
        ("send", lambda: old.send(msg)),
        ("send_async", lambda: old.send_async(msg)),
        ("send_oneway", lambda: old.send_oneway(msg)),
        ("start", old.start),
        ("shutdown", old.shutdown),
    ]:
        try:
            call()
        except rmq.ForkedError as e:
            if e.status != rmq.Status.RMQ_ERR_FORKED:
                return f"{name}: {e!r}"
        except BaseException as e:
            return f"{name} with the parent's producer raised {e!r}, not ForkedError"
        else:
            return f"{name} with the parent's producer did not raise"
    if _pending_of(old):
        return "a refused send_async left an entry behind"
    old.close()  # frees the handle only; the parent's connections are untouched
    if old.handle is not None:
        return "close() of the parent's producer did not free it"
    new = rmq.Producer(config)  # the same configuration as the parent's
    try:
        new.start()
        r = new.send(msg)
        if not (r.ok and r.topic == topic):
            return f"new producer: {r}"
        r = new.send_async(msg).result(timeout=FUTURE_TIMEOUT)
        if not (r.ok and r.topic == topic):
            return f"new producer, async: {r}"
    finally:
        new.close()
    return "ok"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_fork_old_producer_refuses_in_child_new_one_works(namesrv, make_producer, topic):
    config = {"name-server": namesrv, "producer.group": unique_name("pyg", "fork")}
    p = make_producer(config)
    msg = rmq.Message(topic, b"from the parent")
    assert p.send(msg).ok
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            signal.alarm(FUTURE_TIMEOUT)  # a hang kills the child; the parent reports it
            report = _child_checks(p, config, topic)
            code = 0 if report == "ok" else 1
        except BaseException as e:
            report = f"child raised {e!r}"
        try:
            os.write(write_end, report.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        report = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert report == "ok", report
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's producer still works: the child neither closed nor read its connection
    for i in range(5):
        r = p.send(rmq.Message(topic, b"parent after fork %d" % i))
        assert r.ok and r.topic == topic
    assert p.send_async(msg).result(timeout=FUTURE_TIMEOUT).ok


# ------------------------------------------------------------ close() from done-callbacks
def _run_in_callback(p, msg, action, before=None):
    """Sends with p, then calls before() (if given), and runs action() in the Future's
    done-callback on the library's callback thread; returns (action's value or exception, the
    value of before()).

    A Future already resolved when add_done_callback is called runs the callback on the calling
    thread instead, which would test nothing: then it is tried again."""
    for _ in range(5):
        box = {}
        ran = threading.Event()

        def on_done(_future):
            try:
                if threading.current_thread() is threading.main_thread():
                    box["main"] = True
                    return
                try:
                    box["value"] = action()
                except BaseException as e:
                    box["value"] = e
            finally:
                ran.set()

        f = p.send_async(msg)
        f.add_done_callback(on_done)
        if box.get("main"):  # ran just now, on this thread
            continue
        extra = before() if before else None
        assert ran.wait(FUTURE_TIMEOUT), "the done-callback did not run"
        return box["value"], extra
    pytest.fail("every done-callback ran on the main thread")


def test_close_from_own_future_callback_is_refused(make_producer, topic):
    p = make_producer()
    msg = rmq.Message(topic, b"close from own callback")
    p.send(msg)

    def close_then_send():
        try:
            p.close()
        except rmq.InvalidStateError as e:
            return e, p.send(msg)  # still usable, from inside the callback too
        return None, None

    (refused, sent), _ = _run_in_callback(p, msg, close_then_send)
    assert isinstance(refused, rmq.InvalidStateError), refused
    assert "own callback" in refused.message
    assert sent.ok
    assert p.handle is not None
    assert p.send(msg).ok  # and from here
    p.close()  # from another thread it closes
    assert p.handle is None


@pytest.mark.parametrize("shared", [True, False], ids=["one-instance", "two-instances"])
def test_close_other_producer_from_future_callback(make_producer, topic, shared):
    inst_a, inst_b = unique_name("inst"), unique_name("inst")
    a = make_producer({"instance-name": inst_a})
    b = make_producer({"instance-name": inst_a if shared else inst_b})
    msg = rmq.Message(topic, b"close another producer from a callback")
    a.send(msg)
    b.send(msg)
    rounds = []

    def issue_b():
        """b's sends, issued after a's; a's callback closes b once they are all in flight."""
        r = {"futures": [], "calls": [], "late": [], "issued": threading.Event(), "closed": threading.Event()}
        rounds.append(r)
        for i in range(500):
            f = b.send_async(msg)

            def on_done(_future, i=i):
                r["calls"].append(i)
                if r["closed"].is_set():
                    r["late"].append(i)

            f.add_done_callback(on_done)
            r["futures"].append(f)
        r["issued"].set()

    def close_b():
        for _ in range(FUTURE_TIMEOUT * 1000):  # until b has its sends in flight
            if rounds and rounds[-1]["issued"].is_set():
                break
            threading.Event().wait(0.001)
        r = rounds[-1]
        undone_before = sum(not f.done() for f in r["futures"])
        b.close()
        undone_after = sum(not f.done() for f in r["futures"])
        r["closed"].set()
        return undone_before, undone_after

    value, _ = _run_in_callback(a, msg, close_b, before=issue_b)
    assert not isinstance(value, BaseException), value
    undone_before, undone_after = value
    r = rounds[-1]
    print(f"shared={shared}: {undone_before} of {len(r['futures'])} of b's futures pending at close")
    assert undone_after == 0  # close(b) returned after every callback of b
    assert not r["late"]
    assert sorted(r["calls"]) == list(range(len(r["futures"])))  # each exactly once
    for f in r["futures"]:
        o = _outcome(f)
        assert isinstance(o, (rmq.SendResult, rmq.OperationCancelledError)), o
    assert b.handle is None
    assert a.send(msg).ok  # a is unaffected
