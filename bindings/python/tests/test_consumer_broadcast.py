"""Broadcasting against a real broker: the message model is a configuration key
(consumer.message-model=BROADCASTING). Two consumers of one group each receive every message, and
a consumer restarted with the same instance name resumes from its local offset file
(consumer.local-offset-store-dir), receiving only what came since."""

import glob
import os
import tempfile
import threading

import pytest

import rmq

from conftest import unique_name, wait_for

WITHIN = 120  # seconds; a failure bound, never a timing assumption
N = 20


class Seen:
    def __init__(self):
        self.lock = threading.Lock()
        self.bodies = []

    def __call__(self, batch):
        with self.lock:
            self.bodies.extend(m.body.decode() for m in batch)
        return rmq.ConsumeStatus.SUCCESS

    def set(self):
        with self.lock:
            return set(self.bodies)


def send(producer, topic, prefix):
    bodies = set()
    for i in range(N):
        body = f"{prefix}-{i}"
        assert producer.send(rmq.Message(topic, body.encode())).ok
        bodies.add(body)
    return bodies


def test_every_consumer_gets_every_message_and_a_restart_resumes(namesrv, producer, topic):
    group = unique_name("pybc")
    with tempfile.TemporaryDirectory() as store:

        def consumer(instance, seen):
            c = rmq.PushConsumer(
                {
                    "name-server": namesrv,
                    "consumer.group": group,
                    "instance-name": instance,
                    "consumer.message-model": "BROADCASTING",
                    "consumer.local-offset-store-dir": store,
                    "consumer.consume-from-where": "first",
                }
            )
            c.subscribe(topic, "*")
            c.start(seen)
            return c

        first = send(producer, topic, "first")
        a_name, b_name = unique_name("pyba"), unique_name("pybb")
        a, b = Seen(), Seen()
        ca, cb = consumer(a_name, a), consumer(b_name, b)
        try:
            assert wait_for(lambda: a.set() >= first, WITHIN), first - a.set()
            assert wait_for(lambda: b.set() >= first, WITHIN), first - b.set()
        finally:
            ca.close()
            cb.close()
        files = glob.glob(os.path.join(store, f"*@{a_name}", group, "offsets.json"))
        assert len(files) == 1, os.listdir(store)
        with open(files[0]) as f:
            assert f.read().startswith('{"offsetTable":{{"brokerName":')

        second = send(producer, topic, "second")
        a2 = Seen()
        ca2 = consumer(a_name, a2)
        try:
            assert wait_for(lambda: a2.set() >= second, WITHIN), second - a2.set()
        finally:
            ca2.close()
        assert not (a2.set() & first), "resumed from the file: nothing consumed before came again"


def test_an_unknown_message_model_is_refused(namesrv):
    with pytest.raises(rmq.RmqError):
        rmq.PushConsumer({"name-server": namesrv, "consumer.group": unique_name("pybc"), "consumer.message-model": "broadcast"})
