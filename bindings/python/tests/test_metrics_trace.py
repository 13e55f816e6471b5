"""Metrics and message trace against a real broker: after N sends and N consumed messages of a
new topic, rmq.metrics_value and rmq.metrics_text count exactly N; with client.trace-enabled the
trace topic holds the Pub, SubBefore and SubAfter records of a message, found by its id."""

import threading

import pytest

import rmq

from conftest import unique_name, wait_for

WITHIN = 60  # seconds; a failure bound, never a timing assumption
N = 10


def trace_kinds(reader, msg_id):
    """The record types in the trace topic that name msg_id."""
    kinds = set()
    for m in reader.query_message("RMQ_SYS_TRACE_TOPIC", msg_id):
        for record in m.body.decode().split("\x02"):
            fields = record.split("\x01")
            if msg_id in fields:
                kinds.add(fields[0])
    return kinds


def test_metrics_and_traces_of_a_run(namesrv, topic):
    traced = {"name-server": namesrv, "client.trace-enabled": "true"}
    lock = threading.Lock()
    seen = []

    def listener(msgs):
        with lock:
            seen.extend(msgs)

    with rmq.Producer({**traced, "producer.group": unique_name("pymp")}) as p:
        ids = [p.send(rmq.Message(topic, b"metrics", keys=[f"k{i}"])).msg_id for i in range(N)]
        c = rmq.PushConsumer(
            {**traced, "consumer.group": unique_name("pymc"), "consumer.consume-from-where": "first"}
        )
        try:
            c.subscribe(topic, "*")
            c.start(listener)
            wait_for(lambda: len(seen) >= N, WITHIN)
            wait_for(lambda: rmq.metrics_value("rmq_messages_consumed_total", topic) >= N, WITHIN)
        finally:
            c.close()
    assert len(seen) == N
    assert rmq.metrics_value("rmq_messages_sent_total", topic) == N
    assert rmq.metrics_value("rmq_bytes_sent_total", topic) == 7 * N
    assert rmq.metrics_value("rmq_send_latency_seconds_count", topic) == N
    assert rmq.metrics_value("rmq_send_errors_total", topic) == 0
    assert rmq.metrics_value("rmq_messages_consumed_total", topic) == N
    assert rmq.metrics_value("rmq_messages_sent_total", topic, broker="no-such-broker") == 0
    text = rmq.metrics_text()
    sent = [
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f'rmq_messages_sent_total{{topic="{topic}",')
    ]
    assert sum(sent) == N, text
    assert "# TYPE rmq_send_latency_seconds histogram" in text
    with pytest.raises(rmq.InvalidArgumentError, match="no metric named"):
        rmq.metrics_value("no_such_metric", topic)

    with rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pymr")}) as reader:
        kinds = wait_for(lambda: trace_kinds(reader, ids[0]) >= {"Pub", "SubBefore", "SubAfter"}, WITHIN)
        assert kinds, trace_kinds(reader, ids[0])
    assert rmq.trace_records_dropped() == 0


def test_bad_trace_settings_are_refused(namesrv):
    with pytest.raises(rmq.ConfigError, match="client.trace-topic"):
        rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pymb"), "client.trace-topic": "bad topic"})
