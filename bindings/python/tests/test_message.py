"""Message: setters write to the native message, getters read it back; bad input is refused."""

import array
import os
import threading

import pytest

import rmq

BINARY = b"\x00\x01bin\x00ary\xff\xfe\x80\xc3\x28 end\x00"


def test_fields_round_trip_through_the_native_message():
    m = rmq.Message("TopicA", BINARY, tags="TagA", keys=["k1", "k2"], properties={"color": "red", "n": "1"})
    assert m.topic == "TopicA"
    assert m.body == BINARY
    assert m.tags == "TagA"
    assert m.keys == ["k1", "k2"]
    assert m.get_property("color") == "red"
    assert m.get_property("KEYS") == "k1 k2"
    assert m.get_property("missing") is None
    props = m.properties
    assert props["color"] == "red" and props["n"] == "1" and props["TAGS"] == "TagA"
    # not sent / not stored: no ids or stored fields
    assert m.msg_id is None and m.offset_msg_id is None
    assert m.queue_id is None and m.queue_offset is None
    assert m.store_timestamp is None and m.born_timestamp is None
    m.close()


def test_setters_write_through():
    m = rmq.Message("T1", b"x")
    m.topic = "T2"
    m.tags = "t"
    m.keys = "a b"
    m.body = b"y" * 10
    m.set_property("p", "v")
    assert (m.topic, m.tags, m.keys, m.body, m.get_property("p")) == ("T2", "t", ["a", "b"], b"y" * 10, "v")
    m.tags = None
    m.keys = None
    assert m.tags is None and m.keys == []
    m.keys = ["only"]
    assert m.keys == ["only"]
    m.keys = []
    assert m.keys == []
    m.set_property("p", "w")
    assert m.get_property("p") == "w"


def test_unicode_strings():
    m = rmq.Message("T", b"x", tags="标签", keys=["ключ", "clé"], properties={"名前": "値 ✓"})
    assert m.tags == "标签" and m.keys == ["ключ", "clé"] and m.properties["名前"] == "値 ✓"


@pytest.mark.parametrize(
    "body",
    [
        BINARY,
        bytearray(BINARY),
        memoryview(BINARY),
        memoryview(bytearray(BINARY)),
        memoryview(b"xx" + BINARY)[2:],
        array.array("B", BINARY),
    ],
)
def test_bytes_like_bodies(body):
    assert rmq.Message("T", body).body == BINARY


def test_non_contiguous_and_large_bodies():
    assert rmq.Message("T", memoryview(bytearray(b"a-b-c-"))[::2]).body == b"abc"
    big = os.urandom(1 << 20) + b"\x00"
    assert rmq.Message("T", big).body == big
    assert rmq.Message("T", b"").body == b""


def test_body_must_be_bytes():
    with pytest.raises(TypeError, match="str"):
        rmq.Message("T", "text body")
    with pytest.raises(TypeError):
        rmq.Message("T", 42)
    m = rmq.Message("T", b"x")
    with pytest.raises(TypeError):
        m.body = "text"
    assert m.body == b"x"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"topic": "T\0x"},
        {"tags": "a\0b"},
        {"keys": "k\0"},
        {"keys": ["ok", "k\0"]},
        {"properties": {"n\0": "v"}},
        {"properties": {"n": "v\0"}},
    ],
)
def test_nul_in_strings_is_refused_not_cut(kwargs):
    args = {"topic": "T", "body": b"x"}
    args.update(kwargs)
    topic = args.pop("topic")
    body = args.pop("body")
    with pytest.raises(ValueError, match="NUL") as info:
        rmq.Message(topic, body, **args)
    assert isinstance(info.value, rmq.InvalidArgumentError)
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT


def test_bad_types_and_keys():
    with pytest.raises(TypeError):
        rmq.Message(b"T", b"x")
    with pytest.raises(TypeError):
        rmq.Message("T", b"x", tags=1)
    with pytest.raises(TypeError):
        rmq.Message("T", b"x", keys=[1])
    with pytest.raises(ValueError, match="space"):
        rmq.Message("T", b"x", keys=["a b"])
    with pytest.raises(ValueError):
        rmq.Message("T", b"x", keys=[""])


@pytest.mark.parametrize("name", ["TAGS", "KEYS", "UNIQ_KEY", "WAIT", "DELAY"])
def test_reserved_property_names(name):
    with pytest.raises(rmq.InvalidArgumentError) as info:
        rmq.Message("T", b"x", properties={name: "v"})
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT
    assert name in info.value.message and "reserved" in info.value.message


@pytest.mark.parametrize("name, value", [("", "v"), ("  ", "v"), ("n", ""), ("a\x01b", "v"), ("n", "a\x02b")])
def test_blank_or_separator_properties(name, value):
    m = rmq.Message("T", b"x")
    with pytest.raises(rmq.InvalidArgumentError) as info:
        m.set_property(name, value)
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT


def test_closed_message():
    m = rmq.Message("T", b"x")
    raw = m.handle
    m.close()
    m.close()  # idempotent
    assert m.handle is None
    with pytest.raises(rmq.InvalidHandleError) as info:
        m.topic
    assert info.value.status == rmq.Status.RMQ_ERR_NULL_POINTER
    with pytest.raises(rmq.InvalidHandleError):
        m.body = b"y"
    # the stale handle value is detected by the library, not dereferenced
    m._handle = raw
    with pytest.raises(rmq.InvalidHandleError) as info:
        m.body
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_HANDLE
    assert "not a live message handle" in info.value.message
    m._handle = None


def test_context_manager_closes():
    with rmq.Message("T", b"x") as m:
        assert m.body == b"x"
    assert m.handle is None
    assert "closed" in repr(m)


def test_concurrent_readers_and_writers():
    m = rmq.Message("T", b"a" * 1000)
    bodies = [bytes([c]) * (1000 + i) for i, c in enumerate(b"abcdefgh")]
    errors = []

    def writer():
        for _ in range(300):
            for b in bodies:
                m.body = b

    def reader():
        try:
            for _ in range(2000):
                b = m.body
                assert b in bodies or b == b"a" * 1000
                assert m.properties["WAIT"] == "true"
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(2)] + [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
