"""await producer.send_async(...) in a running asyncio loop, and a blocking send that Ctrl-C
interrupts."""

import asyncio
import signal
import socket
import threading
import time

import pytest

import rmq


def test_await_send_async_against_the_broker(make_producer, topic):
    p = make_producer()
    threads_before = threading.active_count()

    async def main():
        results = await asyncio.gather(*(p.send_async(rmq.Message(topic, b"aio %d" % i)) for i in range(20)))
        return results, threading.active_count()

    results, threads_during = asyncio.run(main())
    assert [r.status_name for r in results] == ["SEND_OK"] * 20
    assert {r.topic for r in results} == {topic}
    assert len({r.msg_id for r in results}) == 20
    # no thread per await: at most the library's callback thread was added
    assert threads_during <= threads_before + 1


def test_awaited_send_async_raises_the_library_error(make_producer):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    p = make_producer({"name-server": "127.0.0.1:%d" % silent.getsockname()[1],
                       "producer.send-message-timeout": 500, "client.api-timeout": 500})

    async def main():
        return await p.send_async(rmq.Message("AioErrTopic", b"x"))

    try:
        with pytest.raises(rmq.RmqTimeoutError):
            asyncio.run(main())
    finally:
        p.close()
        silent.close()


def test_send_future_still_works_without_asyncio(make_producer, topic):
    p = make_producer()
    future = p.send_async(rmq.Message(topic, b"plain future"))
    assert isinstance(future, rmq.SendFuture)
    assert future.result(timeout=30).status_name == "SEND_OK"


def test_ctrl_c_interrupts_a_blocking_send():
    """A send to a name server that never answers (timeout 20 s) is interrupted by SIGINT:
    KeyboardInterrupt reaches the main thread long before the send's own timeout."""
    assert threading.current_thread() is threading.main_thread()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    p = rmq.Producer({"name-server": "127.0.0.1:%d" % silent.getsockname()[1], "producer.group": "pyg_ctrl_c",
                      "producer.send-message-timeout": 20000, "client.api-timeout": 20000})
    p.start()
    main_id = threading.get_ident()
    sent_at = []

    def interrupt():
        time.sleep(0.3)
        sent_at.append(time.monotonic())
        signal.pthread_kill(main_id, signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    t0 = time.monotonic()
    killer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            p.send(rmq.Message("CtrlCTopic", b"x"))
        raised_at = time.monotonic()
    finally:
        killer.join()
        p.close()
        silent.close()
    # far below the 20 s the send itself would take: it was the signal that ended the wait
    assert raised_at - t0 < 10, f"send ran {raised_at - t0:.1f}s"
    assert raised_at >= sent_at[0]
