"""The exception hierarchy and status table come from the library (rmq_status_descs)."""

import pickle
import re
import threading

import pytest

import rmq
from rmq import _ffi, errors

from conftest import REPO

HEADER = (REPO / "include" / "rmq.h").read_text()


def header_statuses():
    """{name: number} of every RMQ_OK / RMQ_ERR_* #define in rmq.h."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define (RMQ_(?:OK|ERR_\w+)) (\d+)", HEADER)}


def test_table_names_and_numbers_match_header():
    table = {name: status for status, name, _ in rmq.STATUS_TABLE}
    defines = header_statuses()
    assert len(defines) >= 20
    for name, number in defines.items():
        if name == "RMQ_ERR_BROKER_BASE":  # a base, not a status
            continue
        assert table.get(name) == number, name
    # every row has a unique status and name, and a description
    assert len({s for s, _, _ in rmq.STATUS_TABLE}) == len(rmq.STATUS_TABLE)
    assert len(table) == len(rmq.STATUS_TABLE)
    assert all(desc for _, _, desc in rmq.STATUS_TABLE)


def test_status_enum_and_name_lookup():
    for status, name, desc in rmq.STATUS_TABLE:
        assert rmq.Status[name] == status
        assert rmq.Status(status).name == name
        assert rmq.status_name(status) == name
        err = rmq.error_for(status, "why")
        assert err.status == status and err.name == name and err.description == desc
        assert err.message == "why"
        assert name in str(err) and "why" in str(err)
    assert rmq.status_name(4242) == "RMQ_ERR_UNKNOWN"


@pytest.mark.parametrize(
    "name, cls, builtin",
    [
        ("RMQ_ERR_INVALID_ARGUMENT", rmq.InvalidArgumentError, ValueError),
        ("RMQ_ERR_INVALID_UTF8", rmq.InvalidArgumentError, ValueError),
        ("RMQ_ERR_NULL_POINTER", rmq.InvalidHandleError, None),
        ("RMQ_ERR_INVALID_HANDLE", rmq.InvalidHandleError, None),
        ("RMQ_ERR_INVALID_STATE", rmq.InvalidStateError, None),
        ("RMQ_ERR_UNKNOWN_CONFIG_KEY", rmq.ConfigError, None),
        ("RMQ_ERR_INVALID_CONFIG_VALUE", rmq.ConfigError, None),
        ("RMQ_ERR_MESSAGE_TOO_LARGE", rmq.MessageTooLargeError, None),
        ("RMQ_ERR_NOT_FOUND", rmq.NotFoundError, None),
        ("RMQ_ERR_FORKED", rmq.ForkedError, None),
        ("RMQ_ERR_TIMEOUT", rmq.RmqTimeoutError, TimeoutError),
        ("RMQ_ERR_CONNECT", rmq.RmqConnectionError, ConnectionError),
        ("RMQ_ERR_CONNECTION_CLOSED", rmq.RmqConnectionError, ConnectionError),
        ("RMQ_ERR_IO", rmq.RmqConnectionError, ConnectionError),
        ("RMQ_ERR_PROTOCOL", rmq.TransportError, None),
        ("RMQ_ERR_ROUTE_NOT_FOUND", rmq.TransportError, None),
        ("RMQ_ERR_RESOURCE", rmq.ResourceError, None),
        ("RMQ_ERR_CANCELLED", rmq.OperationCancelledError, None),
        ("RMQ_ERR_PANIC", rmq.InternalError, None),
        ("RMQ_ERR_BROKER_SYSTEM_BUSY", rmq.BrokerError, None),
        ("RMQ_ERR_BROKER_OTHER", rmq.BrokerError, None),
    ],
)
def test_classes_by_status(name, cls, builtin):
    err = rmq.error_for(rmq.Status[name])
    assert type(err) is cls
    assert isinstance(err, rmq.RmqError)
    if builtin:
        assert isinstance(err, builtin)
    if issubclass(cls, rmq.InvalidArgumentError):
        assert 1 <= err.status <= 99


def test_every_listed_status_gets_a_range_class():
    for status, name, _ in rmq.STATUS_TABLE:
        if status == 0:
            continue
        err = rmq.error_for(status)
        if 1 <= status <= 99:
            assert isinstance(err, rmq.InvalidArgumentError), name
        elif 100 <= status <= 199:
            assert isinstance(err, rmq.TransportError), name
        elif 900 <= status <= 999:
            assert isinstance(err, rmq.InternalError), name
        elif status >= 10000:
            assert isinstance(err, rmq.BrokerError), name


def test_broker_error_response_code_and_retriable():
    busy = rmq.error_for(rmq.Status.RMQ_ERR_BROKER_SYSTEM_BUSY)
    assert busy.response_code == 2 and busy.is_retriable
    illegal = rmq.error_for(rmq.Status.RMQ_ERR_BROKER_MESSAGE_ILLEGAL)
    assert illegal.response_code == 13 and not illegal.is_retriable
    assert rmq.error_for(rmq.Status.RMQ_ERR_BROKER_OTHER).response_code is None
    unlisted = rmq.error_for(10000 + 9876)
    assert type(unlisted) is rmq.BrokerError and unlisted.response_code == 9876
    assert unlisted.name == "RMQ_ERR_UNKNOWN"


def test_is_retriable_is_the_library_answer():
    for status, name, _ in rmq.STATUS_TABLE:
        expected = bool(_ffi.lib.rmq_status_is_retriable(status))
        assert rmq.is_retriable(status) == expected
        assert rmq.error_for(status).is_retriable == expected
    assert rmq.error_for(rmq.Status.RMQ_ERR_TIMEOUT).is_retriable
    assert rmq.error_for(rmq.Status.RMQ_ERR_CONNECT).is_retriable
    assert not rmq.error_for(rmq.Status.RMQ_ERR_INVALID_ARGUMENT).is_retriable


def test_unknown_status_is_plain_rmq_error():
    err = rmq.error_for(4242, "strange")
    assert type(err) is rmq.RmqError and err.status == 4242 and err.name == "RMQ_ERR_UNKNOWN"


def test_errors_pickle():
    err = rmq.error_for(rmq.Status.RMQ_ERR_TIMEOUT, "no answer")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is rmq.RmqTimeoutError and back.status == err.status and back.message == "no answer"


def test_last_error_is_per_thread():
    """check() relies on rmq_last_error_message() being thread-local: another thread failing in
    between must not change what this thread reads."""
    cfg = rmq.Config()
    other_failed = threading.Event()

    def other():
        try:
            cfg["producer.send-message-timeout"] = "never"
        except rmq.ConfigError:
            other_failed.set()

    status = _ffi.lib.rmq_config_set(cfg.handle, b"no.such.key", b"1")
    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert other_failed.is_set()
    with pytest.raises(rmq.ConfigError) as info:
        errors.check(status)
    assert info.value.status == rmq.Status.RMQ_ERR_UNKNOWN_CONFIG_KEY
    assert "no.such.key" in info.value.message
    cfg.close()
