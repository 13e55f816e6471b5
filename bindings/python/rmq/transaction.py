"""TransactionProducer (rmq_transaction_producer_*): transactional messages.

    def execute(message, result, arg):          # the local transaction, on the calling thread
        db.save_order(arg, transaction_id=result.transaction_id)
        return rmq.TransactionState.COMMIT

    def check(message):                          # the broker asks again, on "rmq-txn-check-N"
        return rmq.TransactionState.COMMIT if db.has_order(message.msg_id) else rmq.TransactionState.ROLLBACK

    with rmq.TransactionProducer({"name-server": ns, "producer.group": "G"}, check) as p:
        r = p.send_in_transaction(rmq.Message("Orders", b"..."), execute, arg=order)
        print(r.state.name, r.transaction_id)

A callback that raises, or returns something that is not a :class:`TransactionState`, counts as
UNKNOWN (the exception is logged): the broker then asks the checker again later, so a
transaction is never committed or rolled back by mistake.
"""

import atexit
import enum
import itertools
import logging
import threading
import weakref
from ctypes import byref, c_int32, c_void_p
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping

from . import _ffi
from ._config import Config
from .consumer import ReceivedMessage, _copy
from .errors import Status, check
from .message import Message
from .producer import SendResult, _copy_result

_lib = _ffi.lib
_log = logging.getLogger("rmq")


class TransactionState(enum.Enum):
    """How a local transaction ended: RMQ_TRANSACTION_* of rmq.h (macros, so not readable at
    run time; the ABI fixes their values and a test compares them with the header). A plain
    Enum, not an IntEnum: COMMIT is 0 in C, and ``state or default`` must not treat it as
    false."""

    COMMIT = 0
    ROLLBACK = 1
    UNKNOWN = 2


@dataclass(frozen=True)
class TransactionSendResult:
    """The outcome of :meth:`TransactionProducer.send_in_transaction`."""

    #: How the transaction ended on this side (UNKNOWN: the checker will settle it).
    state: TransactionState
    #: The half message's send result.
    send_result: SendResult

    @property
    def transaction_id(self) -> str:
        return self.send_result.transaction_id

    @property
    def msg_id(self) -> str:
        return self.send_result.msg_id


def _state(value, what: str) -> int:
    if isinstance(value, TransactionState):
        return value.value
    _log.error("rmq: %s returned %r, not an rmq.TransactionState; counted as UNKNOWN", what, value)
    return TransactionState.UNKNOWN.value


# user_data of the checker is an integer id into _producers; arg of a send is one into _sends.
_producers: Dict[int, "TransactionProducer"] = {}
_sends: Dict[int, tuple] = {}
_registry_lock = threading.Lock()
_ids = itertools.count(1)


def _on_check(message, user_data):
    """The one C checker of every transaction producer. Runs on "rmq-txn-check-N"; never
    raises: an exception counts as UNKNOWN."""
    try:
        with _registry_lock:
            producer = _producers.get(user_data or 0)
        if producer is None:
            return TransactionState.UNKNOWN.value
        return _state(producer._checker(_copy(message)), "the transaction checker")
    except BaseException:
        try:
            _log.exception("rmq: the transaction checker failed; answered UNKNOWN, the broker asks again")
        except BaseException:
            pass
        return TransactionState.UNKNOWN.value


def _on_execute(message, result, arg):
    """The one C local-transaction callback. Runs on the thread that called
    send_in_transaction; never raises: an exception counts as UNKNOWN."""
    try:
        with _registry_lock:
            entry = _sends.get(arg or 0)
        if entry is None:
            return TransactionState.UNKNOWN.value
        execute, user_message, user_arg = entry
        return _state(execute(user_message, _copy_result(result), user_arg), "the local transaction")
    except BaseException:
        try:
            _log.exception("rmq: the local transaction failed; the transaction ends UNKNOWN")
        except BaseException:
            pass
        return TransactionState.UNKNOWN.value


#: Kept referenced for the life of the process: C may call them at any time.
_CHECKER = _ffi.TRANSACTION_CHECKER(_on_check)
_EXECUTE = _ffi.LOCAL_TRANSACTION(_on_execute)

_live = weakref.WeakSet()


@atexit.register
def _close_all_at_exit():
    # Destroy waits for a running checker, so none runs while the interpreter finalizes.
    for p in list(_live):
        try:
            p.close()
        except BaseException:
            pass


class TransactionProducer(_ffi.Closeable):
    """A producer of transactional messages (Java's TransactionMQProducer).

    ``TransactionProducer(config, checker)``: ``config`` as for :class:`rmq.Producer`
    (producer.transaction-check-threads sets the checker's threads); ``checker(message)`` gets
    a :class:`rmq.ReceivedMessage` (its ``msg_id`` is the transaction id) whenever a broker asks
    about a transaction of the group it did not hear the end of, and returns a
    :class:`TransactionState`. It runs on the producer's own threads ("rmq-txn-check-N"),
    several at once with more than one thread. ``with TransactionProducer(...) as p:`` starts it
    and closes it on exit.
    """

    def __init__(self, config: Mapping, checker: Callable[[ReceivedMessage], TransactionState]):
        self._handle = None
        self._started = False
        self._lock = threading.Lock()
        if not callable(checker):
            raise TypeError(f"checker must be callable, not {type(checker).__name__}")
        self._checker = checker
        cfg = config if isinstance(config, Config) else None
        if cfg is None:
            if not isinstance(config, Mapping):
                raise TypeError(f"config must be a dict, not {type(config).__name__}")
            cfg = Config(config)
        with _registry_lock:
            self._id = next(_ids)
            _producers[self._id] = self
        try:
            out = c_void_p()
            check(_lib.rmq_transaction_producer_create(cfg.handle, _CHECKER, self._id, byref(out)))
            self._handle = out.value
        except BaseException:
            with _registry_lock:
                _producers.pop(self._id, None)
            raise
        finally:
            if cfg is not config:
                cfg.close()
        _live.add(self)

    @property
    def handle(self):
        """The raw rmq_transaction_producer_t* (int), or None after close()."""
        return self._handle

    def start(self) -> None:
        """Starts the producer; from now on brokers may call the checker."""
        check(_lib.rmq_transaction_producer_start(self._handle))
        self._started = True

    def send_in_transaction(
        self,
        message: Message,
        execute: Callable[[Message, SendResult, Any], TransactionState],
        arg: Any = None,
    ) -> TransactionSendResult:
        """Sends ``message`` as a half message, waits for the broker to store it, calls
        ``execute(message, send_result, arg)`` on this thread (``message`` is the one given
        here; ``send_result.transaction_id`` is the transaction id) and ends the transaction as
        it returns: COMMIT delivers the message, ROLLBACK drops it, UNKNOWN leaves it to the
        checker. Raises RmqError when the half message could not be sent (``execute`` did not
        run then). Blocks."""
        if not isinstance(message, Message):
            raise TypeError(f"expected rmq.Message, not {type(message).__name__}")
        if not callable(execute):
            raise TypeError(f"execute must be callable, not {type(execute).__name__}")
        with _registry_lock:
            call_id = next(_ids)
            _sends[call_id] = (execute, message, arg)
        try:
            state = c_int32()
            out = c_void_p()
            check(
                _lib.rmq_transaction_producer_send(
                    self._handle, message.handle, _EXECUTE, call_id, byref(state), byref(out)
                )
            )
            try:
                result = _copy_result(out.value)
            finally:
                _lib.rmq_send_result_destroy(out.value)
            return TransactionSendResult(TransactionState(state.value), result)
        finally:
            with _registry_lock:
                _sends.pop(call_id, None)

    def shutdown(self) -> None:
        """Stops the producer (idempotent): no checker call starts afterwards."""
        check(_lib.rmq_transaction_producer_shutdown(self._handle))

    def close(self) -> None:
        """Shuts down if needed, waits for a checker call still running, frees the producer.
        Idempotent. From the producer's own checker it would wait for itself: it raises
        InvalidStateError and the producer stays open."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            handle, self._handle = self._handle, None
        if handle:
            status = _lib.rmq_transaction_producer_destroy(handle)
            if status == Status.RMQ_ERR_INVALID_STATE:
                with lock:
                    self._handle = handle
                check(status)
            with _registry_lock:
                _producers.pop(self._id, None)
            check(status)

    def __enter__(self):
        if not self._started:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __repr__(self):
        state = "closed" if not self._handle else ("started" if self._started else "created")
        return f"<rmq.TransactionProducer {state}>"


__all__ = ["TransactionProducer", "TransactionSendResult", "TransactionState"]
