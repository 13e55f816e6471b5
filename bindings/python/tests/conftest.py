"""Shared fixtures. Tests that need a broker read the name server from $RMQ_NAMESRV and FAIL
(never skip) when it is unset or unreachable."""

import os
import re
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parents[1]
sys.path.insert(0, str(PYTHON_DIR))

import rmq  # noqa: E402

HOW_TO_START = (
    "Start a local RocketMQ cluster and point the tests at it:\n"
    "  RMQ_NAMESRV_PORT=29876 RMQ_BROKER_PORT=30911 scripts/rocketmq-local.sh up\n"
    "  RMQ_NAMESRV=127.0.0.1:29876 python3 -m pytest -q bindings/python/tests\n"
    "and stop it afterwards with\n"
    "  RMQ_NAMESRV_PORT=29876 RMQ_BROKER_PORT=30911 scripts/rocketmq-local.sh down"
)

#: Unique per test run: topics and groups never collide with earlier runs.
RUN_ID = time.strftime("%H%M%S") + uuid.uuid4().hex[:6]


HOW_TO_START_SECOND = (
    "The two-cluster tests also need a second cluster with its own broker name beside the first:\n"
    "  RMQ_NAMESRV_PORT=39876 RMQ_BROKER_PORT=40911 RMQ_CLUSTER=SecondCluster RMQ_BROKER_NAME=broker-b \\\n"
    "    scripts/rocketmq-local.sh up\n"
    "  RMQ_NAMESRV_2=127.0.0.1:39876 (besides RMQ_NAMESRV) python3 -m pytest -q bindings/python/tests\n"
    "and `down` with the same variables afterwards (`make test` does all of this itself)."
)


def _reachable_namesrv(variable: str, how_to: str) -> str:
    """The name server address from $variable, checked to accept connections."""
    addr = os.environ.get(variable, "").strip()
    if not addr:
        pytest.fail(f"{variable} is not set; these tests need a real broker.\n" + how_to, pytrace=False)
    first = addr.split(";")[0].strip()
    host, _, port = first.rpartition(":")
    problem = None
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as e:
        problem = str(e)
    if problem:
        pytest.fail(f"no name server accepts connections at {variable}={addr} ({problem}).\n" + how_to, pytrace=False)
    return addr


@pytest.fixture(scope="session")
def namesrv():
    """The name server address from $RMQ_NAMESRV, checked to accept connections."""
    return _reachable_namesrv("RMQ_NAMESRV", HOW_TO_START)


@pytest.fixture(scope="session")
def second_namesrv():
    """The name server of a second, independent cluster from $RMQ_NAMESRV_2 (broker-b)."""
    return _reachable_namesrv("RMQ_NAMESRV_2", HOW_TO_START_SECOND)


def unique_name(prefix: str, label: str = "") -> str:
    """A topic/group name legal for RocketMQ (letters, digits, _ - % |), unique per run."""
    label = re.sub(r"[^A-Za-z0-9_-]", "_", label)[:60]
    return f"{prefix}_{RUN_ID}_{label}_{uuid.uuid4().hex[:8]}"[:120]


@pytest.fixture
def topic(request):
    """A fresh topic name; the broker auto-creates it on the first send."""
    return unique_name("pyt", request.node.name)


@pytest.fixture
def config(namesrv):
    """A producer configuration for the test cluster (a dict; tests may modify it)."""
    return {"name-server": namesrv, "producer.group": unique_name("pyg")}


@pytest.fixture
def make_producer(namesrv):
    """Factory: make_producer(**extra_config, start=True) -> Producer, closed at teardown."""
    made = []

    def make(config=None, start=True):
        cfg = {"name-server": namesrv, "producer.group": unique_name("pyg")}
        cfg.update(config or {})
        p = rmq.Producer(cfg)
        made.append(p)
        if start:
            p.start()
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture(scope="module")
def producer(namesrv):
    """A started producer shared by the tests of one module."""
    p = rmq.Producer({"name-server": namesrv, "producer.group": unique_name("pyg", "shared")})
    p.start()
    yield p
    p.close()


def wait_for(fn, timeout: float, interval: float = 0.2):
    """Calls fn until it returns a truthy value or timeout seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


HOW_TO_START_V6 = (
    "The IPv6 and latency-fault tests need a third cluster, two brokers on ::1:\n"
    "  RMQ_HOST=::1 RMQ_BROKERS=2 RMQ_NAMESRV_PORT=41876 RMQ_BROKER_PORT=42911 RMQ_DATA=/tmp/rmq-v6 \\\n"
    "    scripts/rocketmq-local.sh up\n"
    "  RMQ_NAMESRV_V6='[::1]:41876' (besides RMQ_NAMESRV) python3 -m pytest -q bindings/python/tests\n"
    "and `down` with the same variables afterwards (`make test` does all of this itself)."
)


@pytest.fixture(scope="session")
def v6_namesrv():
    """The name server of the IPv6 cluster with broker-a and broker-b, from $RMQ_NAMESRV_V6."""
    addr = os.environ.get("RMQ_NAMESRV_V6", "").strip()
    if not addr:
        pytest.fail("RMQ_NAMESRV_V6 is not set.\n" + HOW_TO_START_V6, pytrace=False)
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except (OSError, ValueError) as e:
        pytest.fail(f"no name server accepts connections at RMQ_NAMESRV_V6={addr} ({e}).\n" + HOW_TO_START_V6, pytrace=False)
    return addr
