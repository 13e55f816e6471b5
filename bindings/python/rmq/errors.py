"""Exceptions, built at import time from the library's own status table (rmq_status_descs).

Classes follow the status ranges documented in include/rmq.h: 1-99 caller errors, 100-199 local
I/O and timeouts, 900-999 internal errors, 10000 + response code for broker answers. A few
statuses get a finer class, chosen by the *name* the library gives them.
"""

import enum
from ctypes import byref, c_size_t

from . import _ffi

_lib = _ffi.lib


class RmqError(Exception):
    """A failed rmq call: ``status`` (int), ``name`` ("RMQ_ERR_TIMEOUT"), ``message`` (the
    library's explanation) and ``description`` (the generic text of the status)."""

    def __init__(self, status: int, message: str = "", broker_code: int = 0):
        self.status = status_enum(status)
        #: The broker's own response code when a broker refused the call, else 0.
        self.broker_code = broker_code
        self.name = status_name(status)
        self.description = _ffi.text(_lib.rmq_status_str(status))
        self.message = message or self.description
        super().__init__(f"{self.name} ({int(status)}): {self.message}")

    def __reduce__(self):
        return (error_for, (int(self.status), self.message, self.broker_code))

    @property
    def is_retriable(self) -> bool:
        """Whether the same call may succeed if tried again (rmq_status_is_retriable)."""
        return bool(_lib.rmq_status_is_retriable(self.status))


class InvalidArgumentError(RmqError, ValueError):
    """Caller errors (statuses 1-99): bad argument, handle, state or configuration. Also a
    ``ValueError``, so text the library refuses (NUL, ``\x01``/``\x02`` in message text) is
    caught like any other bad value."""


class InvalidHandleError(InvalidArgumentError):
    """RMQ_ERR_INVALID_HANDLE / RMQ_ERR_NULL_POINTER: the object was closed or never created."""


class InvalidStateError(InvalidArgumentError):
    """RMQ_ERR_INVALID_STATE: started twice, or used before start or after shutdown."""


class ConfigError(InvalidArgumentError):
    """RMQ_ERR_UNKNOWN_CONFIG_KEY / RMQ_ERR_INVALID_CONFIG_VALUE."""


class MessageTooLargeError(InvalidArgumentError):
    """RMQ_ERR_MESSAGE_TOO_LARGE: the body is over producer.max-message-size."""


class NotFoundError(InvalidArgumentError):
    """RMQ_ERR_NOT_FOUND."""


class ForkedError(InvalidArgumentError):
    """RMQ_ERR_FORKED: the producer was made before ``os.fork()`` and this is the child. It
    refuses every call there; ``close()`` frees it without touching the parent's connections.
    Make a new producer in the child."""


class TransportError(RmqError):
    """Local I/O, protocol and routing failures and timeouts (statuses 100-199)."""


class RmqTimeoutError(TransportError, TimeoutError):
    """RMQ_ERR_TIMEOUT: no answer within the time budget."""


class RmqConnectionError(TransportError, ConnectionError):
    """RMQ_ERR_CONNECT / RMQ_ERR_CONNECTION_CLOSED / RMQ_ERR_IO."""


class ResourceError(TransportError):
    """RMQ_ERR_RESOURCE: a local resource ran out (file descriptors, threads, memory). Nothing
    stays broken: the same call may succeed once the resource is available again."""


class OperationCancelledError(TransportError):
    """RMQ_ERR_CANCELLED: the producer was shut down (``shutdown()``/``close()``) while the send
    was in flight; the broker may or may not have stored the message. Named so as not to be
    confused with ``asyncio.CancelledError`` or ``concurrent.futures.CancelledError``: the
    Future of such a send is not cancelled, it raises this error."""


class InternalError(RmqError):
    """A bug in the library (statuses 900-999, e.g. RMQ_ERR_PANIC)."""


class BrokerError(RmqError):
    """The broker refused the request (statuses >= 10000); ``response_code`` is the broker's
    own code, also for RMQ_ERR_BROKER_OTHER (codes outside 1..9999)."""

    @property
    def response_code(self):
        if self.broker_code:
            return self.broker_code
        if self.name == "RMQ_ERR_BROKER_OTHER":
            return None
        return int(self.status) - _BROKER_BASE


# Range boundaries as documented in include/rmq.h ("Ranges: 0 OK; 1-99 caller errors; ...").
_BROKER_BASE = 10000
_RANGES = [
    (1, 99, InvalidArgumentError),
    (100, 199, TransportError),
    (900, 999, InternalError),
    (_BROKER_BASE, 2**31 - 1, BrokerError),
]

# Finer classes by status name (names come from the library's table; no numbers copied).
_BY_NAME = {
    "RMQ_ERR_NULL_POINTER": InvalidHandleError,
    "RMQ_ERR_INVALID_HANDLE": InvalidHandleError,
    "RMQ_ERR_INVALID_STATE": InvalidStateError,
    "RMQ_ERR_UNKNOWN_CONFIG_KEY": ConfigError,
    "RMQ_ERR_INVALID_CONFIG_VALUE": ConfigError,
    "RMQ_ERR_MESSAGE_TOO_LARGE": MessageTooLargeError,
    "RMQ_ERR_NOT_FOUND": NotFoundError,
    "RMQ_ERR_FORKED": ForkedError,
    "RMQ_ERR_TIMEOUT": RmqTimeoutError,
    "RMQ_ERR_CONNECT": RmqConnectionError,
    "RMQ_ERR_CONNECTION_CLOSED": RmqConnectionError,
    "RMQ_ERR_IO": RmqConnectionError,
    "RMQ_ERR_RESOURCE": ResourceError,
    "RMQ_ERR_CANCELLED": OperationCancelledError,
}


def _read_table():
    count = c_size_t()
    rows = _lib.rmq_status_descs(byref(count))
    return [
        (rows[i].status, _ffi.text(rows[i].name), _ffi.text(rows[i].description))
        for i in range(count.value)
    ]


#: [(status, name, description)] exactly as rmq_status_descs() returns it.
STATUS_TABLE = _read_table()

#: Every status the library lists, e.g. ``Status.RMQ_ERR_TIMEOUT``; an int.
Status = enum.IntEnum("Status", [(name, status) for status, name, _ in STATUS_TABLE])
Status.__module__ = __name__

RMQ_OK = Status.RMQ_OK


def _class_for(status: int, name: str):
    if name in _BY_NAME:
        return _BY_NAME[name]
    for low, high, cls in _RANGES:
        if low <= status <= high:
            return cls
    return RmqError


_CLASS_BY_STATUS = {status: _class_for(status, name) for status, name, _ in STATUS_TABLE}


def status_enum(status: int):
    """``Status`` member for a listed status, else the plain int."""
    try:
        return Status(status)
    except ValueError:
        return int(status)


def status_name(status: int) -> str:
    """The library's name of a status ("RMQ_ERR_UNKNOWN" if unlisted)."""
    return _ffi.text(_lib.rmq_status_name(status))


def is_retriable(status: int) -> bool:
    """rmq_status_is_retriable."""
    return bool(_lib.rmq_status_is_retriable(status))


def error_for(status: int, message: str = "", broker_code: int = 0) -> RmqError:
    """The exception for a status (does not raise it)."""
    cls = _CLASS_BY_STATUS.get(status) or _class_for(status, status_name(status))
    return cls(status, message, broker_code)


def check(status: int) -> None:
    """Raises the error for a failed call; reads rmq_last_error_message() (and the broker's
    code) at once, on the calling thread, before any other rmq_ call."""
    if status != 0:
        message = _ffi.text(_lib.rmq_last_error_message())
        broker_code = _lib.rmq_last_error_broker_code()
        # This package passes a NULL handle only for an object it has closed (close() sets
        # the handle to None): say so in the user's words.
        if status == Status.RMQ_ERR_NULL_POINTER and message.endswith(" handle is NULL"):
            message = message[: -len(" handle is NULL")] + " is closed"
        raise error_for(status, message, broker_code)


def last_error() -> RmqError:
    """The exception for the calling thread's last failed call (for functions that return
    NULL on failure instead of a status)."""
    message = _ffi.text(_lib.rmq_last_error_message())
    return error_for(_lib.rmq_last_error_status(), message)
