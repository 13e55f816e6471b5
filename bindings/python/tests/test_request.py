"""Request-reply against a real broker: a Python requester and a Python responder (a push
consumer answering with Producer.reply) round-trip blocking, with futures and awaited in asyncio,
each request getting its own reply; a request nobody answers raises RmqTimeoutError saying no
reply came; shutdown fails a waiting request with OperationCancelledError; bad input is refused."""

import asyncio

import pytest

import rmq

from conftest import unique_name, wait_for

PATIENT = 30  # seconds: a responder still starting (rebalance, first pull) answers within it


def _producer(make_producer):
    # a client instance of its own: its requests are this producer's alone
    return make_producer({"instance-name": unique_name("pyrr")})


@pytest.fixture
def responder(namesrv, make_producer, topic):
    """A push consumer of `topic` answering every request with b"re: " + body."""
    replier = _producer(make_producer)
    replier.send(rmq.Message(topic, b"not a request"))  # the topic exists before the consumer starts
    answered = []

    def answer(msgs):
        for m in msgs:
            try:
                replier.reply(m, b"re: " + m.body)
            except rmq.InvalidArgumentError:
                continue  # not a request
            answered.append(m.property("CORRELATION_ID"))

    c = rmq.PushConsumer(
        {
            "name-server": namesrv,
            "consumer.group": unique_name("pyresp"),
            "instance-name": unique_name("pyrespi"),
            "consumer.consume-from-where": "first",
        }
    )
    c.subscribe(topic, "*")
    c.start(answer)
    yield answered
    c.close()


def _assert_reply(reply, question):
    assert isinstance(reply, rmq.Message)
    assert reply.body == b"re: " + question
    assert reply.topic.endswith("_REPLY_TOPIC")
    assert reply.get_property("MSG_TYPE") == "reply"
    assert reply.get_property("CORRELATION_ID")


def test_requests_round_trip_blocking_with_futures_and_awaited(make_producer, topic, responder):
    p = _producer(make_producer)
    question = rmq.Message(topic, b"q-blocking")
    with p.request(question, PATIENT) as reply:
        _assert_reply(reply, b"q-blocking")
    assert question.get_property("CORRELATION_ID") is None, "the request message is not changed"

    futures = {i: p.request_async(rmq.Message(topic, f"q-future-{i}".encode()), PATIENT) for i in range(4)}
    for i, f in futures.items():
        assert isinstance(f, rmq.RequestFuture)
        _assert_reply(f.result(timeout=PATIENT * 2), f"q-future-{i}".encode())

    async def awaited():
        replies = await asyncio.gather(
            *(p.request_async(rmq.Message(topic, f"q-await-{i}".encode()), PATIENT) for i in range(3))
        )
        for i, r in enumerate(replies):
            _assert_reply(r, f"q-await-{i}".encode())

    asyncio.run(asyncio.wait_for(awaited(), PATIENT * 2))
    # the broker answers the responder's send after it has pushed the reply to us
    assert wait_for(lambda: len(responder) == 1 + 4 + 3, PATIENT)


def test_a_request_nobody_answers_times_out_saying_no_reply_came(make_producer, topic):
    p = _producer(make_producer)
    with pytest.raises(rmq.RmqTimeoutError, match="no reply came within 1500 ms"):
        p.request(rmq.Message(topic, b"anyone?"), 1.5)
    f = p.request_async(rmq.Message(topic, b"anyone?"), 1.5)
    with pytest.raises(rmq.RmqTimeoutError, match="no reply came"):
        f.result(timeout=60)


def test_shutdown_fails_a_waiting_request_as_cancelled(make_producer, topic):
    p = _producer(make_producer)
    f = p.request_async(rmq.Message(topic, b"wait"), 600)
    p.close()
    with pytest.raises(rmq.OperationCancelledError):
        f.result(timeout=60)


def test_bad_requests_and_replies_are_refused(make_producer, topic):
    p = _producer(make_producer)
    m = rmq.Message(topic, b"x")
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            p.request(m, bad)
    with pytest.raises(TypeError):
        p.request_async(m, "3")
    with pytest.raises(TypeError):
        p.request("not a message", 3)
    with pytest.raises(rmq.InvalidArgumentError, match="CLUSTER"):
        p.reply(m, b"answer")
    request = rmq.ReceivedMessage(
        topic=topic,
        body=b"q",
        tags="",
        keys=[],
        properties={"CLUSTER": "Cl", "REPLY_TO_CLIENT": "me", "CORRELATION_ID": "c-1", "TTL": "3000"},
        msg_id="",
        offset_msg_id="",
        broker_name="",
        queue_id=0,
        queue_offset=0,
        reconsume_times=0,
        born_timestamp=0,
        store_timestamp=0,
    )
    with rmq.create_reply(request, b"ok") as reply:
        assert reply.topic == "Cl_REPLY_TOPIC"
        assert reply.body == b"ok"
        assert {k: reply.get_property(k) for k in ("CORRELATION_ID", "REPLY_TO_CLIENT", "TTL", "MSG_TYPE")} == {
            "CORRELATION_ID": "c-1",
            "REPLY_TO_CLIENT": "me",
            "TTL": "3000",
            "MSG_TYPE": "reply",
        }
    p.close()
    with pytest.raises(rmq.RmqError):
        p.request(m, 1)
