"""The library's log records reach Python logging ("rmq" and its children): a name server that
goes away and comes back (a TCP relay in front of the real one, stopped and restarted) is
logged as a lost connection (WARNING) and a re-established one (INFO)."""

import logging
import socket
import threading

import pytest

import rmq
from conftest import wait_for


class Relay:
    """Forwards connections from a local port to `target`; stop() closes everything, start()
    listens again on the same port."""

    def __init__(self, target):
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = 0
        self.conns = []
        self.lock = threading.Lock()
        self.listener = None
        self.start()

    def start(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.port = ls.getsockname()[1]
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage(), threading.current_thread().name))

    def find(self, level, text):
        return [r for r in self.records if r[1] == level and text in r[2]]


@pytest.fixture
def collected():
    handler = Collect()
    log = logging.getLogger("rmq")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    log.setLevel(old_level)


def test_connection_loss_and_recovery_reach_python_logging(namesrv, topic, collected):
    relay = Relay(namesrv)
    p = rmq.Producer({"name-server": f"127.0.0.1:{relay.port}", "producer.group": "pyg_logging",
                      "client.poll-name-server-interval": 200})
    try:
        p.start()
        assert p.send(rmq.Message(topic, b"before")).ok
        relay.stop()  # the name server goes away
        lost = wait_for(lambda: collected.find(logging.WARNING, f"connection to 127.0.0.1:{relay.port} lost"), 20)
        assert lost, collected.records
        relay.start()  # and comes back on the same port
        back = wait_for(lambda: collected.find(logging.INFO, f"connection to 127.0.0.1:{relay.port} re-established"), 20)
        assert back, collected.records
        assert p.send(rmq.Message(topic, b"after")).ok
    finally:
        p.close()
        relay.stop()
    name, _, _, thread = lost[0]
    assert name == "rmq.remoting" and thread != threading.main_thread().name


def test_debug_records_after_set_log_level(namesrv, topic, collected):
    rmq.set_log_level("debug")
    try:
        with rmq.Producer({"name-server": namesrv, "producer.group": "pyg_logging_debug"}) as p:
            p.send(rmq.Message(topic, b"x"))
        assert wait_for(lambda: collected.find(logging.DEBUG, f"route of topic {topic}"), 20), collected.records
    finally:
        rmq.set_log_level("info")
    with pytest.raises(ValueError):
        rmq.set_log_level("loud")
    assert rmq.log_records_dropped() >= 0


def test_unknown_log_level_in_config_is_refused(namesrv):
    with pytest.raises(rmq.ConfigError) as info:
        rmq.Producer({"name-server": namesrv, "producer.group": "g", "client.log-level": "loud"})
    assert "not a log level" in str(info.value)
