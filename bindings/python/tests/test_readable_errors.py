"""Errors a user can read: request codes by name and timeouts in whole milliseconds, a peer
that answers in HTTP named as such, a mistyped configuration key answered with the nearest one,
a closed object called closed."""

import re
import socket
import threading

import pytest

import rmq


def _server(reply):
    """A local server that answers every connection with `reply` (None: never answers)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    conns = []

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            conns.append(c)
            if reply is not None:
                try:
                    c.recv(4096)
                    c.sendall(reply)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return ls, conns


def test_a_peer_that_answers_in_http_is_named():
    ls, _ = _server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    addr = "127.0.0.1:%d" % ls.getsockname()[1]
    try:
        with rmq.Producer({"name-server": addr, "producer.group": "pyg_http",
                           "producer.send-message-timeout": 2000}) as p:
            with pytest.raises(rmq.RmqError) as info:
                p.send(rmq.Message("HttpTopic", b"x"))
        assert "answered in HTTP" in str(info.value), str(info.value)
        assert addr in str(info.value)
    finally:
        ls.close()


def test_timeouts_name_the_request_and_its_milliseconds():
    ls, _ = _server(None)
    addr = "127.0.0.1:%d" % ls.getsockname()[1]
    try:
        with rmq.Producer({"name-server": addr, "producer.group": "pyg_timeout",
                           "producer.send-message-timeout": 700, "client.api-timeout": 700}) as p:
            with pytest.raises(rmq.RmqTimeoutError) as info:
                p.send(rmq.Message("TimeoutTopic", b"x"))
        message = str(info.value)
        assert re.search(r"to GET_ROUTEINFO_BY_TOPIC \(105\) within \d+ ms", message), message
    finally:
        ls.close()


@pytest.mark.parametrize(
    "typo, meant",
    [("nameserver", "name-server"), ("producer.grup", "producer.group"),
     ("send-message-timeout", "producer.send-message-timeout")],
)
def test_an_unknown_key_suggests_the_nearest(typo, meant):
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Config({typo: "1"})
    assert f"did you mean '{meant}'?" in str(info.value)
