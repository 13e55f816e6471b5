"""Ordered sends, the in-flight window, broker codes, user properties and client.language
against a real broker."""

import threading

import pytest

import rmq

from conftest import unique_name

TIMEOUT = 30


def java_hash_index(key: str, n: int) -> int:
    """Java's SelectMessageQueueByHash: abs(key.hashCode() % n), String.hashCode over UTF-16."""
    h = 0
    units = key.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    if h >= 2**31:
        h -= 2**32
    v = abs(h) % n  # equals abs(h % n) with Java's truncated remainder
    return v


def queues_of(p, topic):
    p.send(rmq.Message(topic, b"create"))
    seen = []
    p.send(rmq.Message(topic, b"look"), selector=lambda qs, m: seen.extend(qs) or 0)
    return seen


def test_hash_selector_keeps_each_key_on_javas_queue_in_order(make_producer, topic):
    p = make_producer()
    qs = queues_of(p, topic)
    assert len(qs) >= 2 and all(q.topic == topic for q in qs)
    for key in ["order-1001", "order-1002", "klant-ü"]:
        want = qs[java_hash_index(key, len(qs))]
        offsets = []
        for i in range(3):
            r = p.send(rmq.Message(topic, f"{key}-{i}".encode()), selector=rmq.HashSelector(key))
            assert r.queue == want
            offsets.append(r.queue_offset)
        r = p.send_async(rmq.Message(topic, b"async"), selector=rmq.HashSelector(key)).result(TIMEOUT)
        assert r.queue == want
        offsets.append(r.queue_offset)
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_callable_selector_runs_on_the_calling_thread_and_sees_the_message(make_producer, topic):
    p = make_producer()
    qs = queues_of(p, topic)
    calls = []

    def last(queues, message):
        calls.append((threading.get_ident(), message.body))
        return len(queues) - 1

    msg = rmq.Message(topic, b"pick me")
    assert p.send(msg, selector=last).queue == qs[-1]
    assert p.send_async(msg, selector=last).result(TIMEOUT).queue == qs[-1]
    assert calls == [(threading.get_ident(), b"pick me")] * 2
    rr = sorted(p.send(msg, selector=rmq.RoundRobinSelector()).queue_id for _ in qs)
    assert rr == sorted(q.queue_id for q in qs)
    assert p.send(msg, selector=rmq.RandomSelector()).queue in qs


def test_failing_selectors_raise_and_send_nothing(make_producer, topic):
    p = make_producer()
    queues_of(p, topic)
    msg = rmq.Message(topic, b"x")

    class Boom(Exception):
        pass

    def raises(queues, message):
        raise Boom("selector bug")

    for send in (p.send, p.send_async):
        with pytest.raises(rmq.RmqError) as e:
            send(msg, selector=raises)
        assert e.value.status == rmq.Status.RMQ_ERR_QUEUE_SELECTOR
        assert isinstance(e.value.__cause__, Boom)
        for bad in (lambda qs, m: len(qs), lambda qs, m: -1, lambda qs, m: "0"):
            with pytest.raises(rmq.RmqError) as e:
                send(msg, selector=bad)
            assert e.value.status == rmq.Status.RMQ_ERR_QUEUE_SELECTOR
    with pytest.raises(TypeError):
        p.send(msg, selector=42)
    with pytest.raises(TypeError):
        p.send(msg, selector=rmq.RandomSelector(), queue=rmq.MessageQueue(topic, "b", 0))


def test_explicit_queue_and_the_brokers_own_code(make_producer, topic):
    p = make_producer()
    q = queues_of(p, topic)[-1]
    assert p.send(rmq.Message(topic, b"to q"), queue=q).queue == q
    assert p.send_async(rmq.Message(topic, b"to q"), queue=q).result(TIMEOUT).queue == q
    with pytest.raises(rmq.InvalidArgumentError):
        p.send(rmq.Message(topic, b"x"), queue=rmq.MessageQueue("OtherTopic", q.broker_name, 0))
    with pytest.raises(rmq.BrokerError) as e:
        p.send(rmq.Message(topic, b"x"), queue=rmq.MessageQueue(topic, q.broker_name, 999))
    assert e.value.broker_code > 0 and e.value.response_code == e.value.broker_code


def test_send_result_carries_every_field(make_producer, topic):
    r = make_producer().send(rmq.Message(topic, b"fields"))
    assert r.ok and r.topic == topic and r.msg_id and r.offset_msg_id
    assert r.region_id == "DefaultRegion" and isinstance(r.transaction_id, str)


def _hold_a_callback(p, topic, inside):
    """Sends until a done-callback is registered before the send completes; that callback runs
    `inside()` on the library's callback thread and holds its slot until released."""
    started, release = threading.Event(), threading.Event()
    main = threading.get_ident()
    result = {}
    while not started.is_set():

        def cb(_f):
            if threading.get_ident() == main:
                return  # registered after completion: ran here, try again
            result["inside"] = inside()
            started.set()
            release.wait(TIMEOUT)

        p.send_async(rmq.Message(topic, b"held")).add_done_callback(cb)
        started.wait(1)
    return release, result


def test_window_fails_fast_when_asked(make_producer, topic):
    p = make_producer({"producer.max-in-flight-async-sends": 1, "producer.block-when-in-flight-full": False})
    p.send(rmq.Message(topic, b"create"))
    release, _ = _hold_a_callback(p, topic, lambda: None)
    with pytest.raises(rmq.RmqError) as e:
        p.send_async(rmq.Message(topic, b"refused"))
    assert e.value.status == rmq.Status.RMQ_ERR_IN_FLIGHT_FULL and e.value.is_retriable
    release.set()


def test_a_send_from_a_callback_never_waits_for_the_window(make_producer, topic):
    p = make_producer({"producer.max-in-flight-async-sends": 1})
    p.send(rmq.Message(topic, b"create"))

    def inside():
        try:
            p.send_async(rmq.Message(topic, b"from the callback"))
            return None
        except rmq.RmqError as e:
            return e.status

    release, result = _hold_a_callback(p, topic, inside)
    release.set()
    assert result["inside"] == rmq.Status.RMQ_ERR_IN_FLIGHT_FULL


def test_many_async_sends_through_a_small_window(make_producer, topic):
    p = make_producer({"producer.max-in-flight-async-sends": 4})
    futures = [p.send_async(rmq.Message(topic, f"w{i}".encode())) for i in range(200)]
    assert all(f.result(TIMEOUT).ok for f in futures)


def test_user_properties_apart_from_reserved_ones(make_producer, topic):
    p = make_producer()
    m = rmq.Message(topic, b"props", tags="T", keys=["k1"], properties={"color": "blue", "size": "XL"})
    assert m.user_properties == {"color": "blue", "size": "XL"}
    assert set(m.properties) > set(m.user_properties)
    back = p.view_message(p.send(m).offset_msg_id)
    assert back.user_properties == {"color": "blue", "size": "XL"}
    assert "UNIQ_KEY" in back.properties and "UNIQ_KEY" not in back.user_properties


def test_client_language(make_producer, topic):
    p = make_producer({"client.language": "JAVA", "instance-name": unique_name("lang")})
    assert p.send(rmq.Message(topic, b"as java")).ok
    with pytest.raises(rmq.ConfigError):
        rmq.Producer({"name-server": "127.0.0.1:1", "producer.group": "G", "client.language": "KLINGON"})
