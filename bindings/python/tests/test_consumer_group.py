"""The push consumer against a real broker, beyond test_consumer.py: failing messages reach
%DLQ%<group> (read back by another group), two and three consumers per group (everything
consumed, the queues partitioned), fork() of a running consumer, and a consumer killed with
SIGKILL whose successor loses nothing and re-delivers at most what was in flight."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import pytest

import rmq

from conftest import PYTHON_DIR, unique_name, wait_for

WITHIN = 120  # seconds; a failure bound, never a timing assumption
WAVE = 16  # messages per wave: every queue of a 4-queue topic gets some


@pytest.fixture
def make_consumer(namesrv):
    """Factory: make_consumer(group, topic, listener, **config) -> started PushConsumer
    (consume-from-where=first), closed at teardown."""
    made = []

    def make(group, topic, listener, config=None):
        cfg = {
            "name-server": namesrv,
            "consumer.group": group,
            "instance-name": unique_name("pyci"),
            "consumer.consume-from-where": "first",
            "consumer.rebalance-interval": "1000",
        }
        cfg.update(config or {})
        c = rmq.PushConsumer(cfg)
        made.append(c)
        c.subscribe(topic, "*")
        c.start(listener)
        return c

    yield make
    for c in made:
        c.close()


class Table:
    """Every delivery: (member, body, queue id, reconsume count)."""

    def __init__(self, verdict=rmq.ConsumeStatus.SUCCESS):
        self.lock = threading.Lock()
        self.rows = []
        self.verdict = verdict

    def listener(self, member):
        def on(batch):
            with self.lock:
                self.rows.extend((member, m.body.decode(), m.queue_id, m.reconsume_times) for m in batch)
            return self.verdict

        return on

    def bodies(self):
        with self.lock:
            return {r[1] for r in self.rows}

    def partitioned(self, wave, members):
        """The wave's messages split by queue: each queue to exactly one member, each member
        owning some queue."""
        prefix = f"{wave}-"
        with self.lock:
            rows = [r for r in self.rows if r[1].startswith(prefix)]
        owners_of_body, owner_of_queue = {}, {}
        for member, body, queue, _ in rows:
            owners_of_body.setdefault(body, set()).add(member)
            owner_of_queue.setdefault(queue, set()).add(member)
        return (
            len(owners_of_body) == WAVE
            and all(len(o) == 1 for o in owners_of_body.values())
            and all(len(o) == 1 for o in owner_of_queue.values())
            and set().union(*owner_of_queue.values()) == set(range(members))
        )


def send_wave(producer, topic, wave, n=WAVE):
    bodies = set()
    for i in range(n):
        body = f"{wave}-{i}"
        assert producer.send(rmq.Message(topic, body.encode())).ok
        bodies.add(body)
    return bodies


@pytest.mark.parametrize("members", [2, 3])
def test_consumers_of_a_group_consume_everything_and_split_the_queues(producer, topic, make_consumer, members):
    group = unique_name("pycg", f"group{members}")
    t = Table()
    sent = send_wave(producer, topic, 0)
    for k in range(members):
        make_consumer(group, topic, t.listener(k))
    assert wait_for(lambda: t.bodies() >= sent, WITHIN)
    settled, wave = False, 1
    while not settled and wave < 64:
        sent |= send_wave(producer, topic, wave)
        assert wait_for(lambda: t.bodies() >= sent, WITHIN), sent - t.bodies()
        settled = t.partitioned(wave, members)
        wave += 1
    assert settled, "the group never split a wave's queues among all its consumers"
    assert t.bodies() == sent


def test_failing_messages_reach_the_dlq_and_are_read_back(producer, topic, make_consumer):
    group = unique_name("pycg", "dlq")
    failing = Table(verdict=rmq.ReconsumeLater(delay_level=1))  # the broker's 1 s
    sent = send_wave(producer, topic, 0, n=4)
    make_consumer(group, topic, failing.listener(0), {"consumer.max-reconsume-times": "1"})

    def counts():
        with failing.lock:
            return {(r[1], r[3]) for r in failing.rows}

    assert wait_for(lambda: all((b, 0) in counts() and (b, 1) in counts() for b in sent), WITHIN), counts()
    dead = Table()
    make_consumer(unique_name("pycg", "dlq-reader"), f"%DLQ%{group}", dead.listener(0))
    assert wait_for(lambda: dead.bodies() == sent, WITHIN), dead.bodies()
    assert all(times <= 1 for _, times in counts()), "delivered again after the DLQ"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_fork_of_a_running_consumer_refuses_in_the_child_and_the_parent_goes_on(producer, topic, make_consumer):
    t = Table()
    sent = send_wave(producer, topic, 0)
    c = make_consumer(unique_name("pycg", "fork"), topic, t.listener(0))
    assert wait_for(lambda: t.bodies() >= sent, WITHIN)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        report = "ok"
        try:
            os.close(read_end)
            signal.alarm(30)
            for name, call in [
                ("subscribe", lambda: c.subscribe("T2", "*")),
                ("start", lambda: c.start(lambda batch: None)),
                ("shutdown", c.shutdown),
            ]:
                try:
                    call()
                    report = f"{name} did not raise"
                except rmq.ForkedError as e:
                    if e.status != rmq.Status.RMQ_ERR_FORKED:
                        report = f"{name}: {e!r}"
                except BaseException as e:
                    report = f"{name} raised {e!r}, not ForkedError"
                if report != "ok":
                    break
            if report == "ok":
                c.close()  # frees the handle only; the parent's consumer is untouched
                if c.handle is not None:
                    report = "close() did not free the handle"
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
    sent |= send_wave(producer, topic, 1)
    assert wait_for(lambda: t.bodies() >= sent, WITHIN), sent - t.bodies()


# ---------------------------------------------------------------------------------- SIGKILL
def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def committed_offset(store, group, topic, broker, queue):
    """The group's offset of a queue as the broker holds it (QUERY_CONSUMER_OFFSET, code 14);
    0 when it holds none."""
    header = json.dumps(
        {
            "code": 14,
            "language": "PYTHON",
            "version": 0,
            "opaque": 1,
            "flag": 0,
            "extFields": {
                "consumerGroup": group,
                "topic": topic,
                "queueId": str(queue),
                "bname": broker,
                "setZeroIfNotFound": "false",
            },
        }
    ).encode()
    with socket.create_connection(store, timeout=10) as s:
        s.sendall(struct.pack(">ii", 4 + len(header), len(header)) + header)
        (total,) = struct.unpack(">i", _recv_exact(s, 4))
        frame = _recv_exact(s, total)
    (hlen,) = struct.unpack(">i", frame[:4])
    resp = json.loads(frame[4 : 4 + (hlen & 0xFFFFFF)])
    return int(resp["extFields"]["offset"]) if resp["code"] == 0 else 0


def store_of(offset_msg_id):
    """(host, port) of the broker that stored a message, from its IPv4 offset message id."""
    raw = bytes.fromhex(offset_msg_id[:16])
    return socket.inet_ntoa(raw[:4]), struct.unpack(">i", raw[4:8])[0]


def test_a_consumer_killed_with_sigkill_loses_nothing_and_redelivers_at_most_what_was_in_flight(
    namesrv, producer, topic, make_consumer
):
    """The child (sigkill_child.py) records each message it consumed before returning success;
    after RECORDED_CALLS calls its calls block, so THREADS calls of up to BATCH messages stay in
    flight. Once the broker holds the offsets the child committed (every 200 ms here), SIGKILL;
    a new consumer of the group finishes. What was in flight: the blocked calls' messages (at
    most THREADS x BATCH, never recorded as consumed, so no duplicates) plus what the child
    consumed above each queue's lowest in-flight message, which no commit could cover (the
    committed offset is the lowest message not consumed; the broker is checked to hold exactly
    that). Only those may come again, and nothing below a committed offset."""
    threads, batch, recorded_calls, n = 4, 2, 40, 300
    group = unique_name("pycg", "sigkill")
    sent = {producer.send(rmq.Message(topic, b"k-%d" % i)).msg_id for i in range(n)}
    with tempfile.TemporaryDirectory() as out:
        env = dict(
            os.environ,
            PYTHONPATH=str(PYTHON_DIR),
            RMQ_NAMESRV=namesrv,
            RMQ_SIGKILL_DIR=out,
            RMQ_SIGKILL_GROUP=group,
            RMQ_SIGKILL_TOPIC=topic,
            RMQ_SIGKILL_INSTANCE=unique_name("pyci", "child"),
            RMQ_SIGKILL_THREADS=str(threads),
            RMQ_SIGKILL_BATCH=str(batch),
            RMQ_SIGKILL_CALLS=str(recorded_calls),
            RMQ_SIGKILL_COMMIT_MS="200",
        )
        child = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "sigkill_child.py")], env=env)
        try:

            def lines(name):
                try:
                    with open(os.path.join(out, name)) as f:
                        return f.read().splitlines()
                except FileNotFoundError:
                    return []

            assert wait_for(lambda: len(lines("blocked")) == threads, WITHIN), "the child's threads did not all block"
            before = [line.split(" ") for line in lines("consumed")]
            ids = [r[0] for r in before]
            assert len(set(ids)) == len(ids), "the child consumed nothing twice"
            assert recorded_calls <= len(ids) <= recorded_calls * batch
            by_queue = {}
            for _, offset_id, broker, queue, offset in before:
                by_queue.setdefault((broker, int(queue)), (store_of(offset_id), set()))[1].add(int(offset))
            lowest = {}
            for q, (_, offsets) in by_queue.items():
                lowest[q] = next(o for o in range(len(offsets) + 1) if o not in offsets)
            assert wait_for(
                lambda: all(
                    committed_offset(store, group, topic, q[0], q[1]) == lowest[q] for q, (store, _) in by_queue.items()
                ),
                WITHIN,
            ), f"the broker never held the child's offsets {lowest}"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    lock, got = threading.Lock(), []

    def record(batch):
        with lock:
            got.extend(m.msg_id for m in batch)

    def received():
        with lock:
            return list(got)

    make_consumer(group, topic, record)
    assert wait_for(lambda: set(ids) | set(received()) == sent, WITHIN)
    again = [i for i in received() if i in set(ids)]
    uncovered = {r[0] for r in before if int(r[4]) >= lowest[(r[2], int(r[3]))]}
    assert set(again) <= uncovered, f"re-delivered below a committed offset: {set(again) - uncovered}"
    assert len(again) <= threads * batch + len(uncovered)
