"""Producer and SendResult (rmq_producer_*, rmq_send_result_*)."""

import asyncio
import atexit
import concurrent.futures
import ctypes
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
from .errors import RmqError, Status, check, error_for
from .message import Message, _check_int
from .ordered import MessageQueue, _Call

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
    #: Transaction id as the broker reported it ("" when none).
    transaction_id: str = ""
    #: Region of the broker.
    region_id: str = ""

    @property
    def queue(self) -> MessageQueue:
        """The queue the message was written to."""
        return MessageQueue(self.topic, self.broker_name, self.queue_id)

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

    @property
    def msg_ids(self) -> list:
        """The message ids, one per message stored: several for a batch, in its order."""
        return self.msg_id.split(",")

    @property
    def offset_msg_ids(self) -> list:
        """The store ids (for view_message), in the order of :attr:`msg_ids`."""
        return self.offset_msg_id.split(",")


def _copy_result(result) -> SendResult:
    """Copies a (borrowed or owned) rmq_send_result_t* into a SendResult, in one C call."""
    v = _ffi.SendResultViewT()
    check(_lib.rmq_send_result_get(result, byref(v)))

    def text(ptr, n):
        return _ffi.text(ctypes.string_at(ptr, n)) if n else ""

    try:
        st = SendStatus(v.status)
    except ValueError:
        st = v.status
    return SendResult(
        status=st,
        msg_id=text(v.msg_id, v.msg_id_len),
        offset_msg_id=text(v.offset_msg_id, v.offset_msg_id_len),
        topic=text(v.topic, v.topic_len),
        broker_name=text(v.broker_name, v.broker_name_len),
        queue_id=v.queue_id,
        queue_offset=v.queue_offset,
        transaction_id=text(v.transaction_id, v.transaction_id_len),
        region_id=text(v.region_id, v.region_id_len),
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
                outcome = error_for(p.status, _ffi.text(raw) if raw else "", p.broker_code)
                failed = True
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

    def _target(self, message, queue, selector):
        """(C send function for sync, for async, extra arguments, selector call or None)."""
        if queue is not None and selector is not None:
            raise TypeError("give queue or selector, not both")
        if queue is not None:
            if not isinstance(queue, MessageQueue):
                raise TypeError(f"queue must be rmq.MessageQueue, not {type(queue).__name__}")
            q, keep = queue._c()
            return _lib.rmq_producer_send_sync_to_queue, _lib.rmq_producer_send_async_to_queue, (byref(q), keep), None
        if selector is not None:
            call = _Call(selector, message)
            return _lib.rmq_producer_send_sync_select, _lib.rmq_producer_send_async_select, (byref(call.c), None), call
        return _lib.rmq_producer_send_sync, _lib.rmq_producer_send_async, None, None

    @staticmethod
    def _checked(status, call):
        try:
            check(status)
        except RmqError as e:
            if call is None:
                raise
            call.raise_for(e)

    def send(self, message: Message, *, queue=None, selector=None) -> SendResult:
        """Sends and waits for the broker's answer (at most producer.send-message-timeout).

        ``queue=rmq.MessageQueue(...)`` sends to that queue; ``selector=`` (see :mod:`rmq.ordered`)
        chooses one on this thread. Either makes an ordered send: one attempt, never another
        queue. On the main thread a Ctrl-C interrupts the wait at once (KeyboardInterrupt; not
        with a selector, which runs here); the send itself then completes or fails on its own."""
        handle, msg = self._handle, self._msg(message)
        sync_fn, _, extra, call = self._target(message, queue, selector)

        def send_sync() -> SendResult:
            out = c_void_p()
            if extra is None:
                status = sync_fn(handle, msg, byref(out))
            else:
                status = sync_fn(handle, msg, extra[0], byref(out))
            self._checked(status, call)
            try:
                return _copy_result(out.value)
            finally:
                _lib.rmq_send_result_destroy(out.value)

        if call is not None:
            # A selector runs on the thread that sends, as documented: this one.
            return send_sync()
        return _blocking.call(send_sync)

    def send_async(self, message: Message, *, queue=None, selector=None) -> "SendFuture":
        """Sends without waiting; the Future resolves to a SendResult or raises RmqError.
        In asyncio code, await it: ``result = await producer.send_async(msg)``.

        Errors found before sending (bad message, producer not running, a failing selector)
        raise here. ``queue``/``selector`` as for :meth:`send`; a selector runs on this thread
        before the call returns, and transport failures are retried on the same queue. With
        producer.max-in-flight-async-sends sends in flight this waits for one to complete, or
        raises RMQ_ERR_IN_FLIGHT_FULL (producer.block-when-in-flight-full=false, or when called
        from a done-callback, which never waits). The Future cannot be cancelled; its
        done-callbacks run on a library "rmq-callback-N" thread and should return quickly. Wait
        with a timeout, e.g. ``future.result(timeout=10)``. A send still in flight when the
        producer shuts down raises OperationCancelledError.
        """
        msg = self._msg(message)
        _, async_fn, extra, call = self._target(message, queue, selector)

        def start(uid):
            if extra is None:
                status = async_fn(self._handle, msg, _SEND_CALLBACK, uid)
            else:
                status = async_fn(self._handle, msg, extra[0], _SEND_CALLBACK, uid)
            self._checked(status, call)

        return self._submit(start)

    # ------------------------------------------------------------------ request-reply (rmq.request)
    def request(self, message: Message, timeout: float) -> Message:
        """Sends ``message`` as a request and waits at most ``timeout`` seconds for the reply a
        responder sends (see :func:`rmq.create_reply`); returns the reply :class:`Message`.
        No reply in time raises :class:`RmqTimeoutError` ("... no reply came within N ms");
        shutdown meanwhile :class:`OperationCancelledError`. Ctrl-C interrupts the wait on the
        main thread, as for :meth:`send`. ``message`` is not changed."""
        from .request import request

        return request(self, message, timeout)

    def request_async(self, message: Message, timeout: float):
        """:meth:`request` without waiting: a :class:`rmq.RequestFuture` of the reply, which
        asyncio code awaits (``reply = await producer.request_async(msg, 3)``). Bad input or a
        producer that is not running raise here."""
        from .request import request_async

        return request_async(self, message, timeout)

    def reply(self, request, body) -> SendResult:
        """Answers ``request`` (a received :class:`rmq.ReceivedMessage`) with ``body``: builds the
        reply with :func:`rmq.create_reply` and sends it, waiting until the broker has pushed it
        to the requester."""
        from .request import create_reply

        with create_reply(request, body) as reply:
            return self.send(reply)

    def _submit(self, start) -> "SendFuture":
        """The one async send path: a future registered under a new id, which ``start(uid)``
        hands to the library (raising when the send is not accepted)."""
        future = SendFuture()
        future.set_running_or_notify_cancel()
        with _pending_lock:
            uid = next(_ids)
            _pending[uid] = (future, self)
        try:
            start(uid)
        except BaseException:
            with _pending_lock:
                _pending.pop(uid, None)
            raise
        return future

    def _handles(self, messages):
        if isinstance(messages, Message) or not hasattr(messages, "__iter__"):
            raise TypeError("expected a list of rmq.Message")
        msgs = list(messages)
        return msgs, (c_void_p * max(len(msgs), 1))(*[self._msg(m) for m in msgs])

    def send_batch(self, messages) -> SendResult:
        """Sends a list of messages of one topic in one request and waits for the answer.

        Java's rules hold: one topic, no %RETRY% topic, no delay, bodies not compressed, and the
        encoded batch must fit producer.max-message-size (see :meth:`split_batches`); a broken
        rule raises before anything is sent. ``result.msg_ids`` / ``result.offset_msg_ids``
        list each message's ids in order."""
        msgs, handles = self._handles(messages)
        out = c_void_p()
        check(_lib.rmq_producer_send_batch(self._handle, handles, len(msgs), byref(out)))
        try:
            return _copy_result(out.value)
        finally:
            _lib.rmq_send_result_destroy(out.value)

    def send_batch_async(self, messages) -> "SendFuture":
        """Sends a list of messages of one topic in one request without waiting: the rules and
        result of :meth:`send_batch`, the Future, retries and in-flight window of
        :meth:`send_async` (``await producer.send_batch_async(msgs)`` in asyncio code). A broken
        batch rule raises here, before anything is sent."""
        msgs, handles = self._handles(messages)

        def start(uid):
            check(
                _lib.rmq_producer_send_batch_async(
                    self._handle, handles, len(msgs), _SEND_CALLBACK, uid
                )
            )

        return self._submit(start)

    def split_batches(self, messages) -> list:
        """Cuts a list of messages into consecutive lists that each fit producer.max-message-size
        as a batch, in order. A message too large on its own raises MessageTooLargeError."""
        msgs, handles = self._handles(messages)
        lengths = (c_size_t * max(len(msgs), 1))()
        count = c_size_t()
        check(
            _lib.rmq_producer_split_batch(
                self._handle, handles, len(msgs), lengths, len(msgs), byref(count)
            )
        )
        batches, start = [], 0
        for n in lengths[: count.value]:
            batches.append(msgs[start : start + n])
            start += n
        return batches

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
        capacity = min(max(max_num, 1), _QUERY_FIRST_CAPACITY)
        for attempt in range(4):
            handles = (c_void_p * capacity)()
            count = c_size_t()
            status = _lib.rmq_producer_query_message(
                self._handle, t, k, max_num, begin_ms, end_ms, handles, capacity, byref(count)
            )
            if status == Status.RMQ_ERR_BUFFER_TOO_SMALL and attempt < 3:
                # More were found than fit (max_num is per broker): nothing was handed over and
                # count says how many; ask again with room for them all.
                capacity = count.value
                continue
            check(status)
            return [Message._adopt(h) for h in handles[: count.value]]

    def shutdown(self) -> None:
        """Stops the producer (idempotent): the Futures of async sends still in flight resolve
        at once with OperationCancelledError (the broker may or may not have stored those
        messages), nothing is sent afterwards, and sends then raise InvalidStateError."""
        check(_lib.rmq_producer_shutdown(self._handle))

    def close(self) -> None:
        """Shuts down if needed, waits for pending async callbacks (so every Future of this
        producer is resolved when it returns), frees the producer. Idempotent; later calls raise
        InvalidHandleError.

        From a done-callback of one of this producer's own Futures it would wait for itself: it
        raises InvalidStateError and the producer stays open. From another producer's callback
        it works. In a child process after ``os.fork()`` it frees a producer made in the parent
        without touching the parent's connections (every other call there raises ForkedError).
        """
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
