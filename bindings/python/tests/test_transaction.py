"""TransactionProducer against the real broker: committed transactions are delivered once,
rolled-back ones never; unknown ones are settled by the checker on its own threads; a checker
or local transaction that raises counts as UNKNOWN and the broker asks again; a producer process
that dies inside its local transaction is answered for by a new producer of the group. Waits are
bounded by the broker's answers (any check interval works), with a generous failure bound."""

import collections
import re
import subprocess
import sys
import textwrap
import threading

import pytest

import rmq
from conftest import PYTHON_DIR, REPO, unique_name, wait_for

WITHIN = 90


class Seen:
    """Bodies delivered to a consumer, by key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_key = collections.defaultdict(list)

    def __call__(self, batch):
        with self.lock:
            for m in batch:
                self.by_key[" ".join(m.keys)].append(m.body)
        return rmq.ConsumeStatus.SUCCESS

    def get(self, key):
        with self.lock:
            return list(self.by_key.get(key, []))


def consume(namesrv, topic):
    c = rmq.PushConsumer(
        {
            "name-server": namesrv,
            "consumer.group": unique_name("pytxc"),
            "consumer.consume-from-where": "first",
        }
    )
    c.subscribe(topic, "*")
    seen = Seen()
    c.start(seen)
    return c, seen


def native_thread_name():
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


def msg(topic, key):
    return rmq.Message(topic, f"body of {key}".encode(), keys=key)


def create_topic(namesrv, topic):
    with rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pytxp")}) as p:
        p.send(msg(topic, "plain"))


def test_transaction_state_values_are_the_headers():
    header = (REPO / "include" / "rmq.h").read_text()
    for state in rmq.TransactionState:
        m = re.search(rf"#define RMQ_TRANSACTION_{state.name} (\d+)", header)
        assert m and int(m.group(1)) == state.value


def test_every_state_is_truthy_and_not_an_int():
    # COMMIT is 0 in C; as an IntEnum it was falsy, so `saved.get(id) or UNKNOWN` turned a
    # commit into UNKNOWN.
    assert all(bool(s) for s in rmq.TransactionState)
    assert rmq.TransactionState.COMMIT != 0


def test_commit_rollback_and_the_checker_settle_transactions(namesrv, topic):
    create_topic(namesrv, topic)
    group = unique_name("pytxg")
    calls = collections.Counter()
    threads = set()
    lock = threading.Lock()

    def checker(m):
        key = " ".join(m.keys)
        with lock:
            calls[key] += 1
            n = calls[key]
            threads.add(native_thread_name())
        assert m.topic == topic and m.body == f"body of {key}".encode()
        if key == "unknown-then-commit":
            return rmq.TransactionState.COMMIT
        if key == "checker-raises-once":
            if n == 1:
                raise RuntimeError("checker failure")
            return rmq.TransactionState.COMMIT
        return rmq.TransactionState.ROLLBACK

    executed = []

    def execute(message, result, arg):
        executed.append((message, result, arg))
        if arg == "raise":
            raise RuntimeError("local transaction failure")
        return arg

    consumer, seen = consume(namesrv, topic)
    cfg = {"name-server": namesrv, "producer.group": group, "producer.transaction-check-threads": 2}
    with rmq.TransactionProducer(cfg, checker) as p:
        cases = [
            ("committed", rmq.TransactionState.COMMIT, rmq.TransactionState.COMMIT),
            ("rolled-back", rmq.TransactionState.ROLLBACK, rmq.TransactionState.ROLLBACK),
            ("unknown-then-commit", rmq.TransactionState.UNKNOWN, rmq.TransactionState.UNKNOWN),
            ("unknown-then-rollback", rmq.TransactionState.UNKNOWN, rmq.TransactionState.UNKNOWN),
            ("checker-raises-once", "raise", rmq.TransactionState.UNKNOWN),
            ("not-a-state", "yes", rmq.TransactionState.UNKNOWN),
        ]
        for key, arg, want in cases:
            m = msg(topic, key)
            r = p.send_in_transaction(m, execute, arg=arg)
            assert r.state == want, key
            assert r.transaction_id and r.transaction_id == r.msg_id == r.send_result.msg_id
            message, result, got_arg = executed[-1]
            assert message is m and got_arg == arg and result.transaction_id == r.transaction_id
        assert len(executed) == len(cases)

        for key in ["plain", "committed", "unknown-then-commit", "checker-raises-once"]:
            assert wait_for(lambda: seen.get(key), WITHIN), key
        assert wait_for(lambda: calls["unknown-then-rollback"] >= 1 and calls["not-a-state"] >= 1, WITHIN)
        assert calls["checker-raises-once"] >= 2, "a checker that raised is asked again"
    assert threads and all(t.startswith("rmq-txn-check") for t in threads), threads
    consumer.close()
    for key in ["committed", "unknown-then-commit", "checker-raises-once"]:
        assert seen.get(key) == [f"body of {key}".encode()], f"{key} exactly once"
    for key in ["rolled-back", "unknown-then-rollback", "not-a-state"]:
        assert seen.get(key) == [], f"{key} was delivered"


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[3])
    import rmq
    ns, topic, group = sys.argv[1], sys.argv[2], sys.argv[4]
    p = rmq.TransactionProducer({"name-server": ns, "producer.group": group},
                                lambda m: rmq.TransactionState.UNKNOWN)
    p.start()
    p.send_in_transaction(rmq.Message(topic, b"body of orphan", keys="orphan"),
                          lambda m, r, a: os._exit(17))
    """
)


def test_a_new_producer_of_the_group_answers_for_a_crashed_one(namesrv, topic):
    create_topic(namesrv, topic)
    group = unique_name("pytxcrash")
    child = subprocess.run([sys.executable, "-c", CHILD, namesrv, topic, str(PYTHON_DIR), group], timeout=120)
    assert child.returncode == 17, "the child died inside its local transaction"
    checked = []
    consumer, seen = consume(namesrv, topic)

    def checker(m):
        checked.append((m.keys, m.body))
        return rmq.TransactionState.COMMIT

    with rmq.TransactionProducer({"name-server": namesrv, "producer.group": group}, checker):
        assert wait_for(lambda: seen.get("orphan"), WITHIN) == [b"body of orphan"]
    consumer.close()
    assert checked[0] == (["orphan"], b"body of orphan")


def test_bad_input_is_refused(namesrv, topic):
    cfg = {"name-server": namesrv, "producer.group": unique_name("pytxbad")}
    with pytest.raises(TypeError):
        rmq.TransactionProducer(cfg, "not callable")
    with pytest.raises(rmq.ConfigError):
        rmq.TransactionProducer(dict(cfg, **{"producer.transaction-check-threads": 0}), lambda m: None)
    p = rmq.TransactionProducer(cfg, lambda m: rmq.TransactionState.ROLLBACK)
    never = []
    with pytest.raises(rmq.InvalidStateError):
        p.send_in_transaction(msg(topic, "k"), lambda *a: never.append(a))
    p.start()
    with pytest.raises(TypeError):
        p.send_in_transaction(b"not a message", lambda *a: None)
    with pytest.raises(TypeError):
        p.send_in_transaction(msg(topic, "k"), None)
    delayed = msg(topic, "k")
    delayed.delay_level = 2
    with pytest.raises(rmq.InvalidArgumentError, match="delay"):
        p.send_in_transaction(delayed, lambda *a: never.append(a))
    assert never == []
    p.close()
    p.close()
