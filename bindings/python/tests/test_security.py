"""ACL and TLS against real clusters that enforce them (scripts/run-tests.sh starts them):
$RMQ_NAMESRV_ACL1 (ACL 1.0 accounts), $RMQ_NAMESRV_ACL2 (ACL 2.0 users) and $RMQ_NAMESRV_TLS with
its certificates in $RMQ_TLS_DIR (client certificates required). A signed client and a verified
TLS client each send and consume; a wrong secret, a missing permission, a server certificate from
another CA or for another name and a missing client certificate each raise an error that names
the cause."""

import os
import time

import pytest

import rmq
from conftest import _reachable_namesrv, unique_name

WITHIN = 60  # seconds; a failure bound, never a timing assumption
HOW_TO_START = (
    "These tests need the ACL and TLS clusters that `make test` starts; by hand:\n"
    "  RMQ_VERSION=4.9.7 RMQ_ACL=1 RMQ_NAMESRV_PORT=41876 RMQ_BROKER_PORT=41911 RMQ_DATA=/tmp/rmq-acl1 scripts/rocketmq-local.sh up\n"
    "  (the same with RMQ_ACL=2 on 42876/42911, and RMQ_TLS_MODE=enforcing on 43876/43911 with\n"
    "  RMQ_DATA=/tmp/rmq-tls), then set RMQ_NAMESRV_ACL1, RMQ_NAMESRV_ACL2, RMQ_NAMESRV_TLS and\n"
    "  RMQ_TLS_DIR=/tmp/rmq-tls/tls"
)
APP = {"client.access-key": "rmq-app", "client.secret-key": "rmq-app-secret"}


@pytest.fixture(scope="module", params=["RMQ_NAMESRV_ACL1", "RMQ_NAMESRV_ACL2"])
def acl_namesrv(request):
    return _reachable_namesrv(request.param, HOW_TO_START)


@pytest.fixture(scope="module")
def tls():
    """The TLS cluster's name server and a config that trusts its CA and has a client certificate."""
    ns = _reachable_namesrv("RMQ_NAMESRV_TLS", HOW_TO_START)
    d = os.environ.get("RMQ_TLS_DIR", "")
    if not d:
        pytest.fail("RMQ_TLS_DIR is not set.\n" + HOW_TO_START, pytrace=False)
    return ns, d, {
        "client.tls.enable": "true",
        "client.tls.ca-file": f"{d}/ca.pem",
        "client.tls.cert-file": f"{d}/client.pem",
        "client.tls.key-file": f"{d}/client.key",
    }


def base(namesrv, extra):
    return {
        "name-server": namesrv,
        "instance-name": unique_name("pysec"),
        "client.api-timeout": "10000",
        "producer.send-message-timeout": "10000",
        **extra,
    }


def sends_and_consumes(namesrv, extra):
    topic = unique_name("RmqAclPy")
    sent = {f"sec-{i}" for i in range(5)}
    with rmq.Producer({**base(namesrv, extra), "producer.group": unique_name("pysecp")}) as p:
        for body in sorted(sent):
            p.send(rmq.Message(topic, body.encode()))
    cfg = {**base(namesrv, extra), "consumer.group": unique_name("pysecc"), "consumer.consume-from-where": "first"}
    with rmq.PushConsumer(cfg) as c:
        c.subscribe(topic, "*")
        c.start()
        got = set()
        deadline = time.monotonic() + WITHIN
        while got != sent and time.monotonic() < deadline:
            batch = c.poll(32, timeout=0.5)
            if batch is None:
                continue
            got |= {m.body.decode() for m in batch}
            batch.ack()
        assert got == sent


def send_error(namesrv, extra, topic=None):
    with rmq.Producer({**base(namesrv, extra), "producer.group": unique_name("pysecp")}) as p:
        with pytest.raises(rmq.RmqError) as e:
            p.send(rmq.Message(topic or unique_name("RmqAclPy"), b"x"))
    return e.value


def test_a_signed_client_sends_and_consumes(acl_namesrv):
    sends_and_consumes(acl_namesrv, APP)


def test_a_wrong_secret_is_refused_as_such(acl_namesrv):
    err = send_error(acl_namesrv, {**APP, "client.secret-key": "not-the-secret"})
    # 5.x answers NO_PERMISSION (16); 4.x's ACL 1.0 checker answers SYSTEM_ERROR (1) with its
    # AclException as the remark.
    codes = (1, 16) if acl_namesrv == os.environ.get("RMQ_NAMESRV_ACL1") else (16,)
    assert isinstance(err, rmq.BrokerError) and err.broker_code in codes
    assert "signature" in str(err) and "client.secret-key" in str(err)


def test_a_missing_permission_is_refused_as_such(acl_namesrv):
    err = send_error(acl_namesrv, APP, topic="RmqNoPermTopic")
    assert "RmqNoPermTopic" in str(err) and "lacks this right" in str(err)


def test_a_verified_tls_client_sends_and_consumes(tls):
    ns, _, cfg = tls
    sends_and_consumes(ns, cfg)


def test_a_server_certificate_from_another_ca_is_refused(tls):
    ns, d, cfg = tls
    err = send_error(ns, {**cfg, "client.tls.ca-file": f"{d}/other-ca.pem"})
    assert "TLS handshake failed" in str(err) and "client.tls.ca-file" in str(err)


def test_a_server_certificate_for_another_name_is_refused(tls):
    # The broker's certificate is for 127.0.0.1 and localhost, not the name checked.
    ns, _, cfg = tls
    err = send_error(ns, {**cfg, "client.tls.server-name": "mq.example.com"})
    assert "TLS handshake failed" in str(err) and "does not carry the name checked" in str(err)


def test_a_missing_client_certificate_is_refused(tls):
    ns, d, _ = tls
    err = send_error(ns, {"client.tls.enable": "true", "client.tls.ca-file": f"{d}/ca.pem"})
    assert "client.tls.cert-file" in str(err)


def test_tls_files_are_checked_at_create(tls):
    ns, _, cfg = tls
    with pytest.raises(rmq.RmqError, match="client.tls.ca-file"):
        rmq.Producer({**base(ns, cfg), "client.tls.ca-file": "/nonexistent/ca.pem", "producer.group": "g"})
