"""The push consumer against a real broker: what is produced is consumed (sets compared, every
field checked), tag and SQL92 filters, exceptions and bad return values become reconsume-later,
close refused from the own listener, no thread left behind, the blocking iterator and asyncio."""

import asyncio
import os
import re
import threading

import pytest

import rmq

from conftest import REPO, unique_name, wait_for

WITHIN = 90  # seconds; a failure bound, never a timing assumption


@pytest.fixture
def make_consumer(namesrv):
    """Factory: make_consumer(**extra_config) -> PushConsumer (consume-from-where=first),
    closed at teardown."""
    made = []

    def make(config=None):
        cfg = {
            "name-server": namesrv,
            "consumer.group": unique_name("pycg"),
            "instance-name": unique_name("pyci"),
            "consumer.consume-from-where": "first",
        }
        cfg.update(config or {})
        c = rmq.PushConsumer(cfg)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def send_all(producer, topic, prefix, n, tags="TagA", **props):
    """Sends bodies "<prefix>-<i>"; returns {body: SendResult}."""
    sent = {}
    for i in range(n):
        body = f"{prefix}-{i}"
        m = rmq.Message(topic, body.encode(), tags=tags, keys=[body, "k2"], properties={"n": str(i), **props})
        sent[body] = producer.send(m)
    return sent


class Recorder:
    """A listener that records every message it is given."""

    def __init__(self, verdict=None):
        self.lock = threading.Lock()
        self.messages = []
        self.threads = set()
        self.verdict = verdict

    def __call__(self, batch):
        with self.lock:
            self.messages.extend(batch)
            self.threads.add(_thread_name(threading.get_native_id()))
        if self.verdict:
            return self.verdict(batch)
        return rmq.ConsumeStatus.SUCCESS

    def bodies(self):
        with self.lock:
            return {m.body.decode() for m in self.messages if m.body != b"warm-up"}


def _thread_name(tid):
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _threads_named(prefix):
    return sum(1 for t in os.listdir("/proc/self/task") if _thread_name(t).startswith(prefix))


def test_consume_status_values_are_the_headers():
    header = (REPO / "include" / "rmq.h").read_text()
    for status in rmq.ConsumeStatus:
        m = re.search(rf"#define RMQ_CONSUME_{status.name} (\d+)", header)
        assert m and int(m.group(1)) == status.value


def test_everything_produced_is_consumed_with_every_field(producer, topic, make_consumer):
    sent = send_all(producer, topic, "all", 30, color="blue")
    rec = Recorder()
    c = make_consumer()
    c.subscribe(topic, "*")
    c.start(rec)
    assert wait_for(lambda: rec.bodies() >= set(sent), WITHIN), rec.bodies()
    c.close()
    assert rec.bodies() == set(sent)
    for m in rec.messages:
        r = sent[m.body.decode()]
        assert m.topic == topic
        assert m.tags == "TagA"
        assert m.keys == [m.body.decode(), "k2"]
        assert m.property("color") == "blue" and m.properties["n"] == m.body.decode().split("-")[1]
        assert m.msg_id == r.msg_id and m.offset_msg_id == r.offset_msg_id
        assert (m.broker_name, m.queue_id, m.queue_offset) == (r.broker_name, r.queue_id, r.queue_offset)
        assert m.reconsume_times == 0
        assert m.born_timestamp > 0 and m.store_timestamp >= m.born_timestamp - 60_000
    assert all(re.fullmatch(r"rmq-c\d+-\d+", t) for t in rec.threads), rec.threads


def test_tag_filter_delivers_exactly_the_matching_messages(producer, topic, make_consumer):
    unwanted = send_all(producer, topic, "c", 12, tags="TagC")
    wanted = {**send_all(producer, topic, "a", 10, tags="TagA"), **send_all(producer, topic, "b", 10, tags="TagB")}
    rec = Recorder()
    c = make_consumer()
    c.subscribe(topic, "TagA || TagB")
    c.start(rec)
    assert wait_for(lambda: rec.bodies() >= set(wanted), WITHIN)
    c.close()
    assert rec.bodies() == set(wanted)
    assert not rec.bodies() & set(unwanted)


def test_sql92_filter_delivers_exactly_the_matching_messages(producer, topic, make_consumer):
    sent = send_all(producer, topic, "s", 40)
    wanted = {b for b in sent if int(b.split("-")[1]) >= 30}
    rec = Recorder()
    c = make_consumer()
    c.subscribe_sql92(topic, "n >= 30")
    c.start(rec)
    assert wait_for(lambda: rec.bodies() >= wanted, WITHIN)
    c.close()
    assert rec.bodies() == wanted


@pytest.mark.parametrize("failure", ["exception", "garbled", "reconsume_later"])
def test_a_failing_listener_gets_the_messages_again(producer, topic, make_consumer, failure):
    sent = send_all(producer, topic, "r", 3)

    def verdict(batch):
        if any(m.reconsume_times == 0 for m in batch):
            if failure == "exception":
                raise RuntimeError("user code failed")
            if failure == "garbled":
                return "not a status"
            return rmq.ReconsumeLater(delay_level=1)
        return rmq.ConsumeStatus.SUCCESS

    rec = Recorder(verdict)
    c = make_consumer()
    c.subscribe(topic, "*")
    c.start(rec)

    def both_deliveries():
        with rec.lock:
            seen = {(m.body.decode(), m.reconsume_times) for m in rec.messages}
        return all((b, 0) in seen and (b, 1) in seen for b in sent)

    assert wait_for(both_deliveries, WITHIN)
    c.close()
    with rec.lock:
        # Each succeeded on its second delivery, so nothing came a third time.
        assert all(m.reconsume_times <= 1 for m in rec.messages)


def test_close_is_refused_inside_the_listener_and_leaves_no_thread(producer, topic, make_consumer):
    sent = send_all(producer, topic, "x", 8)
    refused = []
    holder = {}

    def verdict(batch):
        try:
            holder["c"].close()
            refused.append(False)
        except rmq.InvalidStateError:
            refused.append(True)
        try:
            holder["c"].shutdown()
            refused.append(False)
        except rmq.InvalidStateError:
            refused.append(True)
        return rmq.ConsumeStatus.SUCCESS

    rec = Recorder(verdict)
    c = make_consumer({"consumer.consume-thread-number": "3"})
    holder["c"] = c
    c.subscribe(topic, "*")
    c.start(rec)
    assert wait_for(lambda: rec.bodies() >= set(sent), WITHIN)
    prefix = re.match(r"rmq-c\d+-", next(iter(rec.threads))).group(0)
    assert _threads_named(prefix) > 0
    c.close()
    assert refused and all(refused)
    assert wait_for(lambda: _threads_named(prefix) == 0, WITHIN), f"threads {prefix}* left"
    with pytest.raises(rmq.InvalidHandleError):
        c.subscribe(topic, "*")
    c.close()  # idempotent


def test_misuse_raises_clear_errors(namesrv, make_consumer):
    with pytest.raises(rmq.ConfigError):
        rmq.PushConsumer({"name-server": namesrv, "consumer.no-such-key": "1"})
    with pytest.raises(rmq.InvalidArgumentError):
        rmq.PushConsumer({"name-server": namesrv, "consumer.group": "DEFAULT_CONSUMER"})
    c = make_consumer()
    with pytest.raises(rmq.InvalidArgumentError):
        c.subscribe("bad topic")
    with pytest.raises(ValueError):
        c.subscribe("T\0x")
    with pytest.raises(TypeError):
        c.start(listener=42)
    with pytest.raises(rmq.InvalidStateError):
        c.start(lambda batch: None)  # nothing subscribed


def test_blocking_iterator_acknowledges_what_the_loop_finished(producer, topic, make_consumer):
    sent = send_all(producer, topic, "it", 12)
    c = make_consumer()
    c.subscribe(topic, "*")
    c.start()
    with pytest.raises(rmq.InvalidStateError):
        next(iter(make_started_with_listener(make_consumer, topic).messages()))
    got = []
    interrupted = None
    for m in c.messages(timeout=WITHIN):
        interrupted = m.body.decode()
        break  # the loop did not finish it: not acknowledged, so it comes back
    assert interrupted in sent
    for m in c.messages(timeout=WITHIN):
        got.append((m.body.decode(), m.reconsume_times))
        if {b for b, _ in got} >= set(sent):
            break
    c.close()
    assert {b for b, _ in got} == set(sent)
    assert (interrupted, 1) in got, got


def make_started_with_listener(make_consumer, topic):
    c = make_consumer()
    c.subscribe(topic, "*")
    c.start(lambda batch: rmq.ConsumeStatus.SUCCESS)
    return c


def test_async_for_receives_every_message(producer, topic, make_consumer):
    sent = send_all(producer, topic, "as", 10)
    c = make_consumer()
    c.subscribe(topic, "*")
    c.start()

    async def receive():
        got = set()
        async for m in c:
            got.add(m.body.decode())
            if got >= set(sent):
                break
        return got

    got = asyncio.run(asyncio.wait_for(receive(), WITHIN))
    c.close()
    assert got == set(sent)

    # With a timeout, the loop ends when nothing arrives for that long.
    with make_consumer() as idle:
        idle.subscribe(topic + "_empty", "*")
        idle.start()

        async def nothing():
            return [m async for m in idle.messages_async(timeout=1)]

        assert asyncio.run(nothing()) == []
