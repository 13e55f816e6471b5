"""Bad input and bad lifecycle give a clear exception, never a crash."""

import concurrent.futures
import os
import socket
import threading
import time

import pytest

import rmq

SEND_TIMEOUT_MS = 1000
FUTURE_TIMEOUT = 30


def all_sends(p, m):
    """send, send_async and send_oneway, each as a callable that raises on failure."""
    return {
        "sync": lambda: p.send(m),
        "async": lambda: p.send_async(m).result(timeout=FUTURE_TIMEOUT),
        "oneway": lambda: p.send_oneway(m),
    }


# ------------------------------------------------------------------------------ lifecycle
def test_closed_producer_raises_not_crashes(make_producer, topic):
    p = make_producer()
    m = rmq.Message(topic, b"x")
    p.send(m)
    p.close()
    p.close()  # idempotent
    assert p.handle is None
    for name, call in list(all_sends(p, m).items()) + [
        ("start", p.start),
        ("shutdown", p.shutdown),
        ("view", lambda: p.view_message("7F000001000078BF0000000000000000")),
        ("query", lambda: p.query_message(topic, "k")),
    ]:
        with pytest.raises(rmq.InvalidHandleError) as info:
            call()
        assert info.value.status == rmq.Status.RMQ_ERR_NULL_POINTER, name
        assert info.value.name == "RMQ_ERR_NULL_POINTER"
        assert info.value.message == "producer is closed", name
    m.close()
    with pytest.raises(rmq.InvalidHandleError) as info:
        m.topic
    assert info.value.message == "message is closed"


def test_destroyed_handle_value_is_detected_by_the_library(make_producer, topic):
    p = make_producer()
    m = rmq.Message(topic, b"x")
    raw = p.handle
    p.close()
    p._handle = raw  # the stale pointer value, as a C caller might keep it
    try:
        for name, call in list(all_sends(p, m).items()) + [
            ("start", p.start),
            ("shutdown", p.shutdown),
            ("view", lambda: p.view_message("7F000001000078BF0000000000000000")),
            ("query", lambda: p.query_message(topic, "k")),
        ]:
            with pytest.raises(rmq.InvalidHandleError) as info:
                call()
            assert info.value.status == rmq.Status.RMQ_ERR_INVALID_HANDLE, name
            assert "not a live producer handle" in info.value.message, name
        # destroying a stale handle again is a no-op
        p.close()
    finally:
        p._handle = None


def test_handle_of_another_type_is_refused(make_producer, topic):
    p = make_producer()
    m = rmq.Message(topic, b"x")
    real = p.handle
    p._handle = m.handle  # a message handle where a producer handle belongs
    try:
        with pytest.raises(rmq.InvalidHandleError) as info:
            p.send(m)
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_HANDLE
    finally:
        p._handle = real
    # a closed message handed to a live producer
    m.close()
    with pytest.raises(rmq.InvalidHandleError) as info:
        p.send(m)
    assert info.value.status == rmq.Status.RMQ_ERR_NULL_POINTER
    with pytest.raises(TypeError):
        p.send(b"not a message")


def test_send_before_start(make_producer, topic):
    p = make_producer(start=False)
    for name, call in all_sends(p, rmq.Message(topic, b"x")).items():
        with pytest.raises(rmq.InvalidStateError) as info:
            call()
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_STATE, name
        assert "not started" in info.value.message


def test_start_twice(make_producer):
    p = make_producer()
    with pytest.raises(rmq.InvalidStateError) as info:
        p.start()
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_STATE
    assert "already started" in info.value.message


def test_send_after_shutdown(make_producer, topic):
    p = make_producer()
    m = rmq.Message(topic, b"x")
    p.send(m)
    p.shutdown()
    p.shutdown()  # idempotent
    for name, call in all_sends(p, m).items():
        with pytest.raises(rmq.InvalidStateError) as info:
            call()
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_STATE, name
        assert "shut down" in info.value.message
    with pytest.raises(rmq.InvalidStateError):
        p.start()
    with pytest.raises(rmq.InvalidStateError):
        p.view_message("7F000001000078BF0000000000000000")


# -------------------------------------------------------------------------------- messages
@pytest.mark.parametrize("bad_topic, why", [("", "empty"), ("   ", "empty"), ("bad topic!", "illegal character")])
def test_empty_and_illegal_topics(producer, bad_topic, why):
    m = rmq.Message(bad_topic, b"x")
    for name, call in all_sends(producer, m).items():
        with pytest.raises(rmq.InvalidArgumentError) as info:
            call()
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT, name
        assert why in info.value.message


def test_empty_body_is_refused(producer, topic):
    for name, call in all_sends(producer, rmq.Message(topic, b"")).items():
        with pytest.raises(rmq.InvalidArgumentError) as info:
            call()
        assert "body is empty" in info.value.message, name


def test_body_over_default_max_message_size(producer, topic):
    limit = int(rmq.Config()["producer.max-message-size"])
    assert limit == 4 * 1024 * 1024
    # noise: a body over the compression threshold is limited as sent, compressed
    m = rmq.Message(topic, os.urandom(limit + 1))
    for name, call in all_sends(producer, m).items():
        with pytest.raises(rmq.MessageTooLargeError) as info:
            call()
        assert info.value.status == rmq.Status.RMQ_ERR_MESSAGE_TOO_LARGE, name
        assert str(limit + 1) in info.value.message


def test_body_over_configured_max_message_size(make_producer, topic):
    p = make_producer({"producer.max-message-size": 1024})
    for name, call in all_sends(p, rmq.Message(topic, b"y" * 1025)).items():
        with pytest.raises(rmq.MessageTooLargeError) as info:
            call()
        assert "1024" in info.value.message, name
    r = p.send(rmq.Message(topic, b"y" * 1024))  # exactly the limit is fine
    with p.view_message(r.offset_msg_id) as stored:
        assert stored.body == b"y" * 1024


def test_reserved_property_name():
    with pytest.raises(rmq.InvalidArgumentError) as info:
        rmq.Message("T", b"x", properties={"TAGS": "sneaky"})
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT
    assert "reserved" in info.value.message


def test_bad_view_and_query_arguments(producer, topic):
    with pytest.raises(rmq.InvalidArgumentError) as info:
        producer.view_message("not-an-id")
    assert "not an offset message id" in info.value.message
    with pytest.raises(ValueError):
        producer.view_message("7F00\0")
    with pytest.raises(rmq.InvalidArgumentError):
        producer.query_message(topic, "")
    with pytest.raises(rmq.InvalidArgumentError):
        producer.query_message(topic, "k", max_num=0)
    with pytest.raises(rmq.InvalidArgumentError):
        producer.query_message("bad topic!", "k")


def test_view_of_missing_offset_is_a_broker_error(producer, topic):
    r = producer.send(rmq.Message(topic, b"x"))
    missing = r.offset_msg_id[:16] + "00000000FFFF0000"  # same store host, offset far past the end
    with pytest.raises(rmq.BrokerError) as info:
        producer.view_message(missing)
    assert info.value.response_code == info.value.status - 10000 > 0


# ------------------------------------------------------------------------------ configuration
def test_unknown_config_key(config):
    config["producer.no-such-key"] = "1"
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Producer(config)
    assert info.value.status == rmq.Status.RMQ_ERR_UNKNOWN_CONFIG_KEY
    assert "producer.no-such-key" in info.value.message


@pytest.mark.parametrize(
    "key, value",
    [("producer.send-message-timeout", "fast"), ("producer.retry-times-when-send-failed", 99), ("name-server", "nohost")],
)
def test_invalid_config_value(config, key, value):
    config[key] = value
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Producer(config)
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_CONFIG_VALUE
    assert key in info.value.message


# ------------------------------------------------------------------------------ unreachable
def _unreachable_producer(address):
    p = rmq.Producer(
        {
            "name-server": address,
            "producer.group": "pyg_unreachable",
            "producer.send-message-timeout": SEND_TIMEOUT_MS,
        }
    )
    p.start()
    return p


def test_name_server_where_nothing_listens(topic):
    p = _unreachable_producer("127.0.0.1:1")
    try:
        for name, call in all_sends(p, rmq.Message(topic, b"x")).items():
            t0 = time.monotonic()
            with pytest.raises(rmq.TransportError) as info:
                call()
            elapsed = time.monotonic() - t0
            assert elapsed < SEND_TIMEOUT_MS / 1000 + 2, f"{name} took {elapsed:.1f}s"
            assert isinstance(info.value, (rmq.RmqConnectionError, rmq.RmqTimeoutError)), name
            assert info.value.is_retriable
            assert "127.0.0.1:1" in info.value.message or "timed out" in info.value.message
    finally:
        p.close()


def test_name_server_that_never_answers_times_out(topic):
    """A listener that accepts connections but never replies: sends end with a timeout within
    producer.send-message-timeout, and a blocked send does not hold the GIL."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    p = _unreachable_producer("127.0.0.1:%d" % silent.getsockname()[1])
    try:
        ticks = 0
        stop = threading.Event()

        def spin():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            for name, call in all_sends(p, rmq.Message(topic, b"x")).items():
                t0 = time.monotonic()
                before = ticks
                with pytest.raises(rmq.RmqTimeoutError) as info:
                    call()
                elapsed = time.monotonic() - t0
                assert 0.5 < elapsed < SEND_TIMEOUT_MS / 1000 + 2, f"{name} took {elapsed:.1f}s"
                assert info.value.status == rmq.Status.RMQ_ERR_TIMEOUT
                assert info.value.is_retriable and isinstance(info.value, TimeoutError)
                assert ticks - before > 1000, f"{name}: other Python threads starved while blocked"
        finally:
            stop.set()
            spinner.join(10)
    finally:
        p.close()
        silent.close()


def test_async_failure_arrives_through_the_future(topic):
    p = _unreachable_producer("127.0.0.1:1")
    try:
        futures = [p.send_async(rmq.Message(topic, b"x%d" % i)) for i in range(10)]
        done, not_done = concurrent.futures.wait(futures, timeout=FUTURE_TIMEOUT)
        assert not not_done
        for f in futures:
            exc = f.exception(timeout=0)
            assert isinstance(exc, rmq.TransportError) and exc.message
    finally:
        p.close()
