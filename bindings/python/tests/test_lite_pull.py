"""The lite pull consumer against a real broker: every message sent is polled (sets compared)
and auto-commit at close moves the group past them; a manual commit is where a restart
resumes; seek to an offset, the beginning, the end and a time; pause stops a queue and resume
restarts it; assign takes exactly the given queues; close wakes a waiting poll; misuse raises.
"Nothing comes" checks poll for a while and fail on anything that does come."""

import threading
import time

import pytest

import rmq

from conftest import unique_name

WITHIN = 60  # seconds; a failure bound, never a timing assumption


def lite(namesrv, group=None, **extra):
    cfg = {
        "name-server": namesrv,
        "consumer.group": group or unique_name("pyliteg"),
        "instance-name": unique_name("pylitei"),
        "consumer.consume-from-where": "first",
        "consumer.pull-batch-size": "8",
    }
    cfg.update({k.replace("_", "-"): v for k, v in extra.items()})
    return rmq.LitePullConsumer(cfg)


def send(producer, topic, prefix, n, queue=None):
    """Sends bodies "<prefix>-<i>" (to ``queue`` when given); returns them."""
    sent = []
    for i in range(n):
        body = f"{prefix}-{i}"
        producer.send(rmq.Message(topic, body.encode()), queue=queue)
        sent.append(body)
    return sent


def poll_n(c, n):
    got = []
    deadline = time.monotonic() + WITHIN
    while len(got) < n and time.monotonic() < deadline:
        batch = c.poll(0.3)
        assert len(batch) <= 8
        got.extend(batch)
    return got


def poll_for(c, seconds):
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got.extend(c.poll(0.3))
    return got


def bodies(msgs):
    return [m.body.decode() for m in msgs]


def new_topic(producer, namesrv, prefix):
    """A topic made by its first message ("create-0"): all queues, and those without it."""
    topic = unique_name(prefix)
    first = producer.send(rmq.Message(topic, b"create-0"))
    with lite(namesrv) as probe:
        probe.start()
        qs = probe.fetch_message_queues(topic)
    return topic, qs, [q for q in qs if q.queue_id != first.queue_id]


def test_every_message_is_polled_and_close_commits(producer, namesrv, topic):
    want = set(send(producer, topic, "all", 50))
    group = unique_name("pyliteall")
    with lite(namesrv, group) as c:
        c.subscribe(topic)
        c.start()
        assert c.assignment(), "the first rebalance ran in start"
        got = bodies(poll_n(c, 50))
        assert len(got) == 50 and set(got) == want
    later = set(send(producer, topic, "later", 10))
    with lite(namesrv, group) as c:
        c.subscribe(topic)
        c.start()
        got = []
        for m in c.messages(timeout=2):  # the iterator ends when nothing comes for 2 s
            got.append(m.body.decode())
            if len(got) == 10:
                break
        assert set(got) == later, "close committed the first 50"


def test_a_restart_resumes_at_the_manual_commit(producer, namesrv):
    topic, qs, _ = new_topic(producer, namesrv, "pylitecommit")
    group = unique_name("pylitecommitg")
    first = set(send(producer, topic, "first", 30)) | {"create-0"}
    with lite(namesrv, group, **{"consumer.auto-commit": "false"}) as c:
        c.assign(qs)
        c.start()
        assert set(bodies(poll_n(c, 31))) == first
        c.commit()
        assert sum(c.committed(q) or 0 for q in qs) == 31
        second = set(send(producer, topic, "second", 10))
        assert set(bodies(poll_n(c, 10))) == second  # polled, not committed
    with lite(namesrv, group, **{"consumer.auto-commit": "false"}) as c:
        c.assign(qs)
        c.start()
        again = bodies(poll_n(c, 10)) + bodies(poll_for(c, 0.6))
        assert sorted(again) == sorted(second), "resumed at the commit"
        c.commit_offsets({qs[0]: 1})
        assert c.committed(qs[0]) == 1


def test_seek_to_an_offset_the_beginning_the_end_and_a_timestamp(producer, namesrv):
    topic, _, free = new_topic(producer, namesrv, "pyliteseek")
    q = free[0]
    send(producer, topic, "early", 5, queue=q)
    time.sleep(1.1)
    send(producer, topic, "late", 5, queue=q)
    with lite(namesrv) as c:
        c.assign([q])
        c.start()
        assert c.assignment() == [q]
        got = {m.body.decode(): m for m in poll_n(c, 10)}
        assert len(got) == 10
        late0, late4 = got["late-0"], got["late-4"]

        c.seek(q, late0.queue_offset)
        assert bodies(poll_n(c, 5)) == [f"late-{i}" for i in range(5)]
        c.seek_to_begin(q)
        assert bodies(poll_n(c, 10))[0] == "early-0"
        c.seek_to_end(q)
        assert poll_for(c, 0.6) == []
        send(producer, topic, "after", 1, queue=q)
        after = poll_n(c, 1)
        assert bodies(after) == ["after-0"] and after[0].queue_offset == late4.queue_offset + 1

        assert late0.store_timestamp - got["early-4"].store_timestamp >= 1000
        c.seek_to_timestamp(q, late0.store_timestamp)
        assert bodies(poll_n(c, 1))[0] == "late-0"
        assert c.offset_for_timestamp(q, late0.store_timestamp) == late0.queue_offset

        with pytest.raises(rmq.InvalidArgumentError):
            c.seek(q, late4.queue_offset + 100)
        with pytest.raises(rmq.InvalidArgumentError):
            c.seek(free[1], 0)


def test_pause_stops_a_queue_and_resume_restarts_it(producer, namesrv):
    topic, _, free = new_topic(producer, namesrv, "pylitepause")
    q0, q1 = free[0], free[1]
    on0 = set(send(producer, topic, "q0", 5, queue=q0))
    on1 = set(send(producer, topic, "q1", 5, queue=q1))
    with lite(namesrv) as c:
        c.assign([q0, q1])
        c.pause([q0])
        c.start()
        got = bodies(poll_n(c, 5)) + bodies(poll_for(c, 1.5))
        assert sorted(got) == sorted(on1), "nothing of the paused queue"
        c.resume([q0])
        assert set(bodies(poll_n(c, 5))) == on0
        c.pause([q1])
        later = set(send(producer, topic, "q1later", 3, queue=q1))
        assert poll_for(c, 1.5) == []
        c.resume([q1])
        assert set(bodies(poll_n(c, 3))) == later


def test_assign_takes_exactly_the_given_queues(producer, namesrv):
    topic, _, free = new_topic(producer, namesrv, "pyliteassign")
    mine = free[::2]
    want = set()
    for i, q in enumerate(free):
        sent = send(producer, topic, f"on{q.queue_id}", 3, queue=q)
        if i % 2 == 0:
            want |= set(sent)
    with lite(namesrv) as c:
        c.start()
        assert c.assignment() == []
        c.assign(mine)
        assert c.assignment() == sorted(mine, key=lambda q: (q.topic, q.broker_name, q.queue_id))
        got = bodies(poll_n(c, len(want))) + bodies(poll_for(c, 0.6))
        assert sorted(got) == sorted(want)


def test_close_wakes_a_waiting_poll_and_misuse_raises(namesrv, topic):
    c = lite(namesrv)
    with pytest.raises(rmq.InvalidStateError):
        c.poll(0)
    c.subscribe(topic)
    with pytest.raises(rmq.InvalidStateError):
        c.assign([rmq.MessageQueue(topic, "broker-a", 0)])
    with pytest.raises(TypeError):
        c.pause(["not a queue"])
    c.start()
    outcome = []

    def wait():
        try:
            outcome.append(c.poll())
        except rmq.InvalidStateError as e:
            outcome.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.3)
    c.close()
    t.join(WITHIN)
    assert not t.is_alive() and isinstance(outcome[0], rmq.InvalidStateError)
    with pytest.raises(rmq.InvalidStateError):
        c.poll(0)
    c.close()
