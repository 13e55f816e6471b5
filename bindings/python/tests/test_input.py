"""Input rules: message text goes to the library whole (pointer + length) and the library
refuses NUL and the property separators 0x01/0x02, so nothing is cut short or reread by the
broker as another property. Refusals are rmq.InvalidArgumentError (also a ValueError) with
RMQ_ERR_INVALID_ARGUMENT, and leave the message unchanged."""

import pytest

import rmq

#: The injection found in review: as a tag, this became a DELAY property on the broker.
INJECTED_TAG = "TagA\x02DELAY\x011"

BAD_TEXT = [
    pytest.param("a\0b", "NUL", id="nul"),
    pytest.param("ab\0", "NUL", id="trailing-nul"),
    pytest.param("a\x01b", "0x01", id="sep1"),
    pytest.param("a\x02b", "0x02", id="sep2"),
    pytest.param(INJECTED_TAG, "0x02", id="injected-tag"),
]

FIELDS = ["topic", "tags", "keys", "key-list", "property-name", "property-value"]


def set_field(m: rmq.Message, field: str, value: str) -> None:
    if field == "topic":
        m.topic = value
    elif field == "tags":
        m.tags = value
    elif field == "keys":
        m.keys = value
    elif field == "key-list":
        m.keys = ["ok", value]
    elif field == "property-name":
        m.set_property(value, "v")
    elif field == "property-value":
        m.set_property("n", value)


def snapshot(m: rmq.Message):
    return (m.topic, m.tags, m.keys, m.properties, m.body)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("bad, needle", BAD_TEXT)
def test_library_refuses_nul_and_separators(field, bad, needle):
    with rmq.Message("InputTopic", b"body", tags="TagA", keys=["k1"], properties={"c": "blue"}) as m:
        before = snapshot(m)
        with pytest.raises(rmq.InvalidArgumentError) as info:
            set_field(m, field, bad)
        # refused by the library's rule, not by a Python pre-check
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT
        assert needle in info.value.message
        assert isinstance(info.value, ValueError)
        assert snapshot(m) == before
        assert m.get_property("DELAY") is None


@pytest.mark.parametrize("kwarg", ["tags", "keys", "properties"])
def test_constructor_refuses_injection(kwarg):
    value = {"c": INJECTED_TAG} if kwarg == "properties" else INJECTED_TAG
    with pytest.raises(rmq.InvalidArgumentError) as info:
        rmq.Message("InputTopic", b"x", **{kwarg: value})
    assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT
    with pytest.raises(rmq.InvalidArgumentError, match="NUL"):
        rmq.Message("Input\0Topic", b"x")


def test_lengths_are_checked_by_the_setter():
    with rmq.Message("T", b"x") as m:
        m.topic = "t" * 127
        with pytest.raises(rmq.InvalidArgumentError, match="longer than 127"):
            m.topic = "t" * 128
        with pytest.raises(rmq.InvalidArgumentError, match="longer than 32767"):
            m.tags = "x" * 32768
        with pytest.raises(rmq.InvalidArgumentError, match="longer than 32767"):
            m.set_property("n", "v" * 32768)
        half = "v" * 20000
        m.set_property("p1", half)
        with pytest.raises(rmq.InvalidArgumentError, match="at most 32767"):
            m.set_property("p2", half)
        assert m.get_property("p2") is None and m.topic == "t" * 127


def test_new_statuses_are_listed():
    assert rmq.Status.RMQ_ERR_FORKED == 11
    assert rmq.Status.RMQ_ERR_RESOURCE == 106
    assert rmq.Status.RMQ_ERR_CANCELLED == 107
    for name in ("RMQ_ERR_FORKED", "RMQ_ERR_RESOURCE", "RMQ_ERR_CANCELLED"):
        assert not rmq.error_for(rmq.Status[name]).is_retriable


def test_injected_tag_is_refused_before_the_broker(producer, topic):
    with rmq.Message(topic, b"injection", tags="TagA") as m:
        with pytest.raises(rmq.InvalidArgumentError) as info:
            m.tags = INJECTED_TAG
        assert info.value.status == rmq.Status.RMQ_ERR_INVALID_ARGUMENT
        assert m.tags == "TagA"
        # contrast: the message as it stands sends, and is stored as an ordinary one
        r = producer.send(m)
        assert r.ok
        with producer.view_message(r.offset_msg_id) as stored:
            assert stored.tags == "TagA"
            assert stored.get_property("DELAY") is None
            assert stored.body == b"injection"
