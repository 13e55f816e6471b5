"""Producer and SendResult (rmq_producer_*, rmq_send_result_*)."""

import asyncio
import atexit
import concurrent.futures
import enum
import itertools
import logging
import threading
import weakref
from ctypes import byref, c_int32, c_int64, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Any, Generator, Mapping

from . import _blocking, _ffi
from ._config import Config
from .errors import Status, check, error_for
from .message import Message

_lib = _ffi.lib
_log = logging.getLogger("rmq")


def _send_statuses():
    # Named by the library (rmq_send_status_name), numbered from 0 until it says "UNKNOWN".
    names = {}
    for value in itertools.count():
        name = _lib.rmq_send_status_name(value).decode()
        if name == "UNKNOWN":
            return names
        names[name] = value


#: Store status of a successful send (RMQ_SEND_* in rmq.h): SEND_OK, FLUSH_DISK_TIMEOUT, ...
SendStatus = enum.IntEnum("SendStatus", _send_statuses())


@dataclass(frozen=True)
class SendResult:
    """Outcome of a successful send, copied out of the native rmq_send_result_t."""

    status: int
    msg_id: str
    offset_msg_id: str
    topic: str
    broker_name: str
    queue_id: int
    queue_offset: int

    @property
    def status_name(self) -> str:
        """"SEND_OK", "FLUSH_DISK_TIMEOUT", ...; "UNKNOWN(n)" for an unlisted status."""
        try:
            return SendStatus(self.status).name
        except ValueError:
            return f"UNKNOWN({self.status})"

    @property
    def ok(self) -> bool:
        """True for SEND_OK."""
        return self.status == SendStatus.SEND_OK


def _copy_result(result) -> SendResult:
    """Copies a (borrowed or owned) rmq_send_result_t* into a SendResult."""
    status, queue_id, queue_offset = c_int32(), c_int32(), c_int64()
    check(_lib.rmq_send_result_status(result, byref(status)))
    check(_lib.rmq_send_result_queue_id(result, byref(queue_id)))
    check(_lib.rmq_send_result_queue_offset(result, byref(queue_offset)))
    try:
        st = SendStatus(status.value)
    except ValueError:
        st = status.value
    return SendResult(
        status=st,
        msg_id=_ffi.text(_ffi.view(_lib.rmq_send_result_msg_id, result)),
        offset_msg_id=_ffi.text(_ffi.view(_lib.rmq_send_result_offset_msg_id, result)),
        topic=_ffi.text(_ffi.view(_lib.rmq_send_result_topic, result)),
        broker_name=_ffi.text(_ffi.view(_lib.rmq_send_result_broker_name, result)),
        queue_id=queue_id.value,
        queue_offset=queue_offset.value,
    )


class SendFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """The Future of :meth:`Producer.send_async`: a :class:`concurrent.futures.Future` that
    resolves to a :class:`SendResult`, and that can also be awaited in a running asyncio loop
    (``await producer.send_async(msg)``). Awaiting uses no thread: the library's callback thread
    completes an asyncio future through ``loop.call_soon_threadsafe``."""

    def result(self, timeout: "float | None" = None) -> "SendResult":
        return super().result(timeout)  # type: ignore[no-any-return]

    def __await__(self) -> Generator[Any, None, "SendResult"]:
        loop = asyncio.get_running_loop()
        waiter: "asyncio.Future[SendResult]" = loop.create_future()

        def settle(done: concurrent.futures.Future) -> None:  # type: ignore[type-arg]
            # on the loop's thread: the waiter may have been cancelled meanwhile
            if waiter.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())

        # runs on the library callback thread (or here, when already done)
        self.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
        return waiter.__await__()


# ------------------------------------------------------------------------------ async sends
# user_data of rmq_producer_send_async is an integer id into _pending; the entry holds the future
# and the producer (so a producer with sends in flight is not collected under them).
_pending = {}
_pending_lock = threading.Lock()
_ids = itertools.count(1)


def _on_send_done(params, user_data):
    """The one C callback for every async send. Runs on "rmq-callback-N"; never raises."""
    try:
        with _pending_lock:
            entry = _pending.pop(user_data or 0, None)
        if entry is None:
            return
        future = entry[0]
        try:
            p = params.contents
            if p.status == 0:
                outcome, failed = _copy_result(p.result), False
            else:
                raw = p.error_message
                outcome, failed = error_for(p.status, _ffi.text(raw) if raw else ""), True
        except BaseException as e:  # copying failed: report it through the future
            outcome, failed = e, True
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except BaseException:
        try:
            _log.exception("rmq: error in the async send callback")
        except BaseException:
            pass


#: Kept referenced for the life of the process: C may call it at any time.
_SEND_CALLBACK = _ffi.SEND_CALLBACK(_on_send_done)

_live_producers = weakref.WeakSet()


@atexit.register
def _close_all_at_exit():
    # Destroy waits for every pending callback, so none runs while the interpreter finalizes.
    for p in list(_live_producers):
        try:
            p.close()
        except BaseException:
            pass


_INT64_MAX = 2**63 - 1
#: Room for this many messages in the first rmq_producer_query_message call (brokers return at
#: most 64 per query by default, maxMsgsNumBatch).
_QUERY_FIRST_CAPACITY = 64


def _check_int(what, value, high):
    # ctypes silently truncates integers that do not fit the C type
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not -high - 1 <= value <= high:
        raise ValueError(f"{what}={value} does not fit the C type")


# ---------------------------------------------------------------------------------- Producer
class Producer(_ffi.Closeable):
    """A RocketMQ producer.

    ``Producer({"name-server": "127.0.0.1:9876", "producer.group": "G", ...})`` with the keys of
    :func:`rmq.config_keys` (values str, int or bool; an :class:`rmq.Config` works too). Call
    :meth:`start` (or use ``with Producer(cfg) as p:``, which starts it and closes it on exit).
    Every method may be called from any thread. Blocking calls release the GIL and are bounded by
    the configured timeouts; a Ctrl-C arriving meanwhile is raised when the call returns.
    """

    def __init__(self, config: Mapping):
        self._handle = None
        self._started = False
        self._lock = threading.Lock()
        cfg = config if isinstance(config, Config) else None
        if cfg is None:
            if not isinstance(config, Mapping):
                raise TypeError(f"config must be a dict, not {type(config).__name__}")
            cfg = Config(config)
        try:
            out = c_void_p()
            check(_lib.rmq_producer_create(cfg.handle, byref(out)))
            self._handle = out.value
        finally:
            if cfg is not config:
                cfg.close()
        _live_producers.add(self)

    @property
    def handle(self):
        """The raw rmq_producer_t* (int), or None after close()."""
        return self._handle

    def start(self) -> None:
        """Starts the producer; a second start raises InvalidStateError."""
        check(_lib.rmq_producer_start(self._handle))
        self._started = True

    @staticmethod
    def _msg(message):
        if not isinstance(message, Message):
            raise TypeError(f"expected rmq.Message, not {type(message).__name__}")
        return message.handle

    def send(self, message: Message) -> SendResult:
        """Sends and waits for the broker's answer (at most producer.send-message-timeout).
        On the main thread a Ctrl-C interrupts the wait at once (KeyboardInterrupt); the send
        itself then completes or fails on its own."""
        handle, msg = self._handle, self._msg(message)

        def send_sync() -> SendResult:
            out = c_void_p()
            check(_lib.rmq_producer_send_sync(handle, msg, byref(out)))
            try:
                return _copy_result(out.value)
            finally:
                _lib.rmq_send_result_destroy(out.value)

        return _blocking.call(send_sync)

    def send_async(self, message: Message) -> SendFuture:
        """Sends without waiting; the Future resolves to a SendResult or raises RmqError.
        In asyncio code, await it: ``result = await producer.send_async(msg)``.

        Errors found before sending (bad message, producer not running) raise here. The Future
        cannot be cancelled; its done-callbacks run on a library "rmq-callback-N" thread and
        should return quickly. Wait with a timeout, e.g. ``future.result(timeout=10)``.
        """
        msg = self._msg(message)
        future = SendFuture()
        future.set_running_or_notify_cancel()
        with _pending_lock:
            uid = next(_ids)
            _pending[uid] = (future, self)
        try:
            check(_lib.rmq_producer_send_async(self._handle, msg, _SEND_CALLBACK, uid))
        except BaseException:
            with _pending_lock:
                _pending.pop(uid, None)
            raise
        return future

    def send_oneway(self, message: Message) -> None:
        """Sends once without waiting for or learning the outcome."""
        check(_lib.rmq_producer_send_oneway(self._handle, self._msg(message)))

    def view_message(self, offset_msg_id: str) -> Message:
        """Reads a stored message back by its offset message id (SendResult.offset_msg_id)."""
        out = c_void_p()
        check(
            _lib.rmq_producer_view_message(
                self._handle, _ffi.c_str(offset_msg_id, "offset_msg_id"), byref(out)
            )
        )
        return Message._adopt(out.value)

    def query_message(self, topic: str, key: str, max_num: int = 32, begin_ms: int = 0, end_ms=None) -> list:
        """Stored messages of ``topic`` whose keys contain ``key``, stored between ``begin_ms``
        and ``end_ms`` (None: no upper bound), at most ``max_num`` per broker. The broker
        indexes keys shortly after storing: a message sent a moment ago may not be found yet."""
        t = _ffi.c_str(topic, "topic")
        k = _ffi.c_str(key, "key")
        if end_ms is None:
            end_ms = _INT64_MAX
        _check_int("max_num", max_num, 2**31 - 1)
        _check_int("begin_ms", begin_ms, _INT64_MAX)
        _check_int("end_ms", end_ms, _INT64_MAX)
        capacity = min(max(max_num, 1), _QUERY_FIRST_CAPACITY)  # grown below if more were found
        for _ in range(4):
            handles = (c_void_p * capacity)()
            count = c_size_t()
            check(
                _lib.rmq_producer_query_message(
                    self._handle, t, k, max_num, begin_ms, end_ms, handles, capacity, byref(count)
                )
            )
            found = [Message._adopt(h) for h in handles[: min(count.value, capacity)]]
            if count.value <= capacity:
                return found
            # More were found than fit: the extra ones were dropped; ask again with room for all.
            for m in found:
                m.close()
            capacity = count.value
        return found

    def shutdown(self) -> None:
        """Stops the producer (idempotent); in-flight async sends fail; sends then raise
        InvalidStateError."""
        check(_lib.rmq_producer_shutdown(self._handle))

    def close(self) -> None:
        """Shuts down if needed, waits for pending async callbacks, frees the producer.
        Idempotent; later calls raise InvalidHandleError."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            handle, self._handle = self._handle, None
        if handle:
            status = _lib.rmq_producer_destroy(handle)
            if status == Status.RMQ_ERR_INVALID_STATE:
                # Refused: called from one of this producer's own callbacks, it would wait for
                # itself. The producer stays open; close it from another thread.
                with lock:
                    self._handle = handle
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
        return f"<rmq.Producer {state}>"
