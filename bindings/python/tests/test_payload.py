"""Batches, compression and delays against the real broker: every message is read back and
compared field by field."""

import os
import time

import pytest

import rmq
from conftest import unique_name, wait_for


def _text_body(n):
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
    return bytes(words[(i * 7 + i // 13) % len(words)] for i in range(n))


def _same(sent: rmq.Message, stored: rmq.Message):
    assert stored.topic == sent.topic
    assert stored.body == sent.body
    assert stored.tags == sent.tags
    assert stored.keys == sent.keys
    for k, v in sent.properties.items():
        # WAIT tells the broker how to answer; 4.x brokers drop it from the stored message.
        if k != "WAIT":
            assert stored.get_property(k) == v, k


def _find(producer, topic, key, timeout):
    begin = int(time.time() * 1000) - 600_000
    found = wait_for(lambda: producer.query_message(topic, key, begin_ms=begin), timeout)
    assert found, f"{key} not found in {topic}"
    return found[0]


def test_batch_gives_each_message_its_ids_and_is_stored(make_producer, topic):
    p = make_producer()
    msgs = [
        rmq.Message(topic, f"py batch {i}".encode(), tags="TagB", keys=[unique_name("k")], properties={"n": str(i)})
        for i in range(4)
    ]
    msgs[2].body = _text_body(10_000)  # stays uncompressed in a batch
    r = p.send_batch(msgs)
    assert r.ok
    assert len(r.msg_ids) == len(r.offset_msg_ids) == 4
    assert len(set(r.msg_ids)) == 4
    for i, m in enumerate(msgs):
        stored = p.view_message(r.offset_msg_ids[i])
        _same(m, stored)
        assert stored.msg_id == r.msg_ids[i]
        assert stored.queue_offset == r.queue_offset + i


def test_batch_rules_raise_before_sending(make_producer, topic):
    p = make_producer()
    delayed = rmq.Message(topic, b"d")
    delayed.delay_level = 1
    with pytest.raises(rmq.InvalidArgumentError, match="at least one"):
        p.send_batch([])
    with pytest.raises(rmq.InvalidArgumentError, match="one topic"):
        p.send_batch([rmq.Message(topic, b"a"), rmq.Message(topic + "x", b"b")])
    with pytest.raises(rmq.InvalidArgumentError, match="delayed"):
        p.send_batch([delayed])
    with pytest.raises(TypeError):
        p.send_batch(rmq.Message(topic, b"a"))


def test_split_batches_fit_and_all_arrive(make_producer, topic):
    p = make_producer({"producer.max-message-size": 10_000})
    msgs = [rmq.Message(topic, os.urandom(900), keys=[f"s{i}"]) for i in range(30)]
    with pytest.raises(rmq.MessageTooLargeError):
        p.send_batch(msgs)
    batches = p.split_batches(msgs)
    assert len(batches) >= 3
    assert [m for b in batches for m in b] == msgs
    assert p.split_batches([]) == []
    n = 0
    for b in batches:
        r = p.send_batch(b)
        for m, oid in zip(b, r.offset_msg_ids):
            _same(m, p.view_message(oid))
            n += 1
    assert n == 30
    with pytest.raises(rmq.MessageTooLargeError):
        p.split_batches([rmq.Message(topic, os.urandom(20_000))])


@pytest.mark.parametrize("codec,level", [("zlib", 9), ("lz4", 5), ("zstd", 19)])
def test_compressed_bodies_are_read_back_whole(make_producer, topic, codec, level):
    p = make_producer({"producer.compress-type": codec, "producer.compress-level": level})
    key = unique_name("ck")
    msg = rmq.Message(topic, _text_body(100_000), tags="TagC", keys=[key], properties={"codec": codec})
    r = p.send(msg)
    _same(msg, p.view_message(r.offset_msg_id))
    _same(msg, _find(p, topic, key, 10))


def test_max_message_size_counts_the_compressed_body(make_producer, topic):
    p = make_producer({"producer.max-message-size": 20_000})
    msg = rmq.Message(topic, _text_body(300_000))
    _same(msg, p.view_message(p.send(msg).offset_msg_id))
    with pytest.raises(rmq.MessageTooLargeError):
        p.send(rmq.Message(topic, os.urandom(30_000)))


def test_bad_compression_settings_name_the_key(namesrv):
    base = {"name-server": namesrv, "producer.group": unique_name("pyg")}
    with pytest.raises(rmq.ConfigError, match="producer.compress-type"):
        rmq.Producer({**base, "producer.compress-type": "gzip"})
    with pytest.raises(rmq.ConfigError, match="producer.compress-level"):
        rmq.Producer({**base, "producer.compress-level": 10})  # zlib stops at 9
    with pytest.raises(rmq.ConfigError, match="producer.compress-no-such"):
        rmq.Producer({**base, "producer.compress-no-such": 1})


def test_delay_setters_keep_one_kind():
    m = rmq.Message("T", b"x")
    assert m.delay_level == 0
    m.delay_level = 3
    assert m.get_property("DELAY") == "3"
    m.set_delay_ms(1500)
    assert (m.delay_level, m.get_property("TIMER_DELAY_MS")) == (0, "1500")
    m.set_delay_sec(2)
    assert (m.get_property("TIMER_DELAY_MS"), m.get_property("TIMER_DELAY_SEC")) == (None, "2")
    m.set_deliver_time_ms(1_900_000_000_000)
    assert m.get_property("TIMER_DELIVER_MS") == "1900000000000"
    assert m.get_property("TIMER_DELAY_SEC") is None
    with pytest.raises(rmq.InvalidArgumentError, match="between 1 and 18"):
        m.delay_level = 19
    with pytest.raises(rmq.InvalidArgumentError):
        m.set_delay_ms(-1)
    with pytest.raises(ValueError):
        m.set_delay_ms(2**63)
    assert m.get_property("TIMER_DELIVER_MS") == "1900000000000"


def test_delay_level_delivers_no_earlier_than_asked(make_producer, topic):
    p = make_producer()
    key = unique_name("dl")
    msg = rmq.Message(topic, b"py delayed", tags="TagD", keys=[key])
    msg.delay_level = 1  # 1 s
    r = p.send(msg)
    scheduled = p.view_message(r.offset_msg_id)
    assert scheduled.topic == "SCHEDULE_TOPIC_XXXX"
    real = _find(p, topic, key, 60)
    assert real.store_timestamp >= scheduled.store_timestamp + 1000
    assert (real.msg_id, real.body, real.tags) == (r.msg_id, msg.body, msg.tags)


def test_timer_delivers_no_earlier_than_asked(make_producer, topic):
    p = make_producer()
    key = unique_name("tm")
    msg = rmq.Message(topic, b"py timer", keys=[key])
    asked = int(time.time() * 1000) + 2000
    msg.set_deliver_time_ms(asked)
    r = p.send(msg)
    assert p.view_message(r.offset_msg_id).topic == "rmq_sys_wheel_timer"
    real = _find(p, topic, key, 60)
    # the broker rounds timers down to its precision (1000 ms by default), never more
    assert real.store_timestamp >= asked - 1000
    assert (real.msg_id, real.body) == (r.msg_id, msg.body)
