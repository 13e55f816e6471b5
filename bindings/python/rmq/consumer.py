"""PushConsumer and ReceivedMessage (rmq_push_consumer_*, rmq_received_message_*).

Three ways to receive, all on the same consumer:

* a callback: ``consumer.start(listener)``; ``listener(messages)`` runs on the consumer's own
  threads ("rmq-c<id>-N", several at once) with a list of :class:`ReceivedMessage`;
* a blocking iterator: ``for msg in consumer.messages(timeout=5): ...``;
* asyncio: ``async for msg in consumer: ...``;
* explicit batches: ``batch = consumer.poll(32, timeout=5)`` then ``batch.ack()``.

The last three use the library's poll mode: one call into the library takes a batch of
messages (copied into Python objects at once), one call acknowledges it.

``consumer.start(listener, orderly=True)`` consumes orderly instead: each queue is locked at its
broker, and its messages reach the listener one batch at a time, in queue order (see
:class:`SuspendCurrentQueue`).

A message is acknowledged when the listener returns (or, when iterating, when the loop asks
for the next message). An exception in user code, or a return value that is not a consume
status, means "reconsume later": the message comes back, it is never lost or taken as consumed.
"""

import asyncio
import ctypes
import atexit
import enum
import itertools
import logging
import threading
import time
import weakref
from ctypes import POINTER, byref, c_int32, c_int64, c_size_t, c_void_p
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from . import _ffi
from ._config import Config
from .errors import InvalidStateError, Status, check

_lib = _ffi.lib
_log = logging.getLogger("rmq")


class ConsumeStatus(enum.IntEnum):
    """What a listener returns: RMQ_CONSUME_* of rmq.h (macros, so not readable at run time;
    the ABI fixes their values and a test compares them with the header)."""

    SUCCESS = 0
    RECONSUME_LATER = 1


@dataclass(frozen=True)
class ReconsumeLater:
    """Return this from a listener to have the batch delivered again after ``delay_level``:
    0 lets the broker choose (3 + times reconsumed), 1 = 1 s, 2 = 5 s, 3 = 10 s, ...; a
    negative level sends the messages to the dead-letter queue at once."""

    delay_level: int = 0


class ConsumeOrderlyStatus(enum.IntEnum):
    """What an orderly listener returns: RMQ_CONSUME_ORDERLY_* of rmq.h."""

    SUCCESS = 0
    SUSPEND = 1


@dataclass(frozen=True)
class SuspendCurrentQueue:
    """Return this from an orderly listener to stop the batch's queue a moment and get the same
    messages again, in the same order, after ``millis`` ms (None:
    consumer.suspend-current-queue-time-millis; kept within 10..30000). After
    consumer.max-reconsume-times suspensions a message goes to the dead-letter queue."""

    millis: Optional[int] = None


@dataclass(frozen=True)
class ReceivedMessage:
    """A received message, copied out of the library (so it may be kept)."""

    topic: str
    body: bytes
    tags: str
    keys: List[str]
    properties: Dict[str, str] = field(repr=False)
    msg_id: str
    offset_msg_id: str
    broker_name: str
    queue_id: int
    queue_offset: int
    reconsume_times: int
    born_timestamp: int
    store_timestamp: int

    def property(self, name: str, default=None):
        return self.properties.get(name, default)


def _copy(h) -> ReceivedMessage:
    """Copies a borrowed rmq_received_message_t (valid during the listener call)."""
    view = _ffi.view
    text = _ffi.text
    qid, times = c_int32(), c_int32()
    off, born, stored = c_int64(), c_int64(), c_int64()
    check(_lib.rmq_received_message_queue_id(h, byref(qid)))
    check(_lib.rmq_received_message_queue_offset(h, byref(off)))
    check(_lib.rmq_received_message_reconsume_times(h, byref(times)))
    check(_lib.rmq_received_message_born_timestamp(h, byref(born)))
    check(_lib.rmq_received_message_store_timestamp(h, byref(stored)))
    count = c_size_t()
    check(_lib.rmq_received_message_property_count(h, byref(count)))
    props = {}
    for i in range(count.value):
        np, nl, vp, vl = c_void_p(), c_size_t(), c_void_p(), c_size_t()
        check(_lib.rmq_received_message_property_at(h, i, byref(np), byref(nl), byref(vp), byref(vl)))
        name = text(ctypes.string_at(np.value, nl.value)) if nl.value else ""
        props[name] = text(ctypes.string_at(vp.value, vl.value)) if vl.value else ""
    keys = text(view(_lib.rmq_received_message_keys, h))
    return ReceivedMessage(
        topic=text(view(_lib.rmq_received_message_topic, h)),
        body=view(_lib.rmq_received_message_body, h),
        tags=text(view(_lib.rmq_received_message_tags, h)),
        keys=keys.split(" ") if keys else [],
        properties=props,
        msg_id=text(view(_lib.rmq_received_message_msg_id, h)),
        offset_msg_id=text(view(_lib.rmq_received_message_offset_msg_id, h)),
        broker_name=text(view(_lib.rmq_received_message_broker_name, h)),
        queue_id=qid.value,
        queue_offset=off.value,
        reconsume_times=times.value,
        born_timestamp=born.value,
        store_timestamp=stored.value,
    )


def _bytes_at(ptr, length) -> bytes:
    return ctypes.string_at(ptr, length) if length else b""


def _from_view(v) -> ReceivedMessage:
    """Copies an rmq_received_view_t (borrowed from its batch): plain memory reads, no call
    into the library."""
    text = _ffi.text
    props = {}
    for i in range(v.property_count):
        p = v.properties[i]
        props[text(_bytes_at(p.name, p.name_len))] = text(_bytes_at(p.value, p.value_len))
    keys = text(_bytes_at(v.keys, v.keys_len))
    return ReceivedMessage(
        topic=text(_bytes_at(v.topic, v.topic_len)),
        body=_bytes_at(v.body, v.body_len),
        tags=text(_bytes_at(v.tags, v.tags_len)),
        keys=keys.split(" ") if keys else [],
        properties=props,
        msg_id=text(_bytes_at(v.msg_id, v.msg_id_len)),
        offset_msg_id=text(_bytes_at(v.offset_msg_id, v.offset_msg_id_len)),
        broker_name=text(_bytes_at(v.broker_name, v.broker_name_len)),
        queue_id=v.queue_id,
        queue_offset=v.queue_offset,
        reconsume_times=v.reconsume_times,
        born_timestamp=v.born_timestamp,
        store_timestamp=v.store_timestamp,
    )


def _level_of(result):
    """(status, delay level) of one message's result, as _verdict judges a listener's."""
    if result is None or result is True or (isinstance(result, ConsumeStatus) and result == ConsumeStatus.SUCCESS):
        return ConsumeStatus.SUCCESS, 0
    level = getattr(result, "delay_level", 0) if isinstance(result, ReconsumeLater) else 0
    if not (isinstance(level, int) and not isinstance(level, bool) and -(2**31) <= level < 2**31):
        level = 0
    return ConsumeStatus.RECONSUME_LATER, level


class ReceivedBatch:
    """Messages taken by one :meth:`PushConsumer.poll`, copied into :class:`ReceivedMessage`
    objects (a sequence: ``len``, index, iterate). Answer it once: :meth:`ack` (all consumed),
    :meth:`ack_each` (one result per message) or :meth:`release` (all reconsumed later, as when
    the batch is garbage-collected unanswered). ``with consumer.poll() as batch:`` acknowledges
    it when the block ends normally and releases it when the block raises. Answering after the
    consumer was closed raises InvalidStateError: those messages were not committed and are
    delivered again."""

    __slots__ = ("messages", "_handle", "_lock", "__weakref__")

    def __init__(self, handle, messages):
        self.messages: List[ReceivedMessage] = messages
        self._handle = handle
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.messages)

    def __iter__(self):
        return iter(self.messages)

    def __getitem__(self, i):
        return self.messages[i]

    def _take(self):
        with self._lock:
            h, self._handle = self._handle, None
        if not h:
            raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "this batch was already answered")
        return h

    def ack(self) -> None:
        """Every message consumed."""
        check(_lib.rmq_received_batch_ack(self._take()))

    def ack_each(self, results: Sequence) -> None:
        """One result per message, in order: None or ConsumeStatus.SUCCESS for consumed,
        ConsumeStatus.RECONSUME_LATER or ReconsumeLater(delay_level) to get it again."""
        results = list(results)
        if len(results) != len(self.messages):
            raise ValueError(f"{len(results)} results for a batch of {len(self.messages)} messages")
        n = len(results)
        statuses = (c_int32 * max(n, 1))()
        levels = (c_int32 * max(n, 1))()
        for i, r in enumerate(results):
            statuses[i], levels[i] = _level_of(r)
        check(_lib.rmq_received_batch_ack_each(self._take(), statuses, levels, n))

    def release(self) -> None:
        """Gives the batch back unanswered: every message is delivered again later."""
        with self._lock:
            h, self._handle = self._handle, None
        if h:
            _lib.rmq_received_batch_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.ack()
        else:
            self.release()
        return False

    def __del__(self):
        try:
            self.release()
        except BaseException:
            pass

    def __repr__(self):
        return f"<rmq.ReceivedBatch of {len(self.messages)}{'' if self._handle else ', answered'}>"


class _Closed(Exception):
    """The consumer is closing: iterators end quietly."""


#: Longest single wait inside the library, so Ctrl-C and close() are noticed between waits
#: (a poll returns at once when messages arrive, so this costs no latency).
_POLL_SLICE = 0.5


def _verdict(result, ctx) -> int:
    """The C status of a listener's return value; anything unrecognised is reconsume-later."""
    if result is None or result is True or (isinstance(result, ConsumeStatus) and result == ConsumeStatus.SUCCESS):
        return ConsumeStatus.SUCCESS
    if isinstance(result, ReconsumeLater):
        level = result.delay_level
        if isinstance(level, int) and not isinstance(level, bool) and -(2**31) <= level < 2**31:
            ctx.contents.delay_level = level
        return ConsumeStatus.RECONSUME_LATER
    if not (isinstance(result, ConsumeStatus) and result == ConsumeStatus.RECONSUME_LATER):
        _log.error("rmq: listener returned %r, not a consume status; the batch is reconsumed later", result)
    return ConsumeStatus.RECONSUME_LATER


# user_data of rmq_push_consumer_set_listener is an integer id into _consumers.
_consumers: Dict[int, "PushConsumer"] = {}
_consumers_lock = threading.Lock()
_ids = itertools.count(1)


def _on_messages(msgs, count, ctx, user_data):
    """The one C listener of every consumer. Runs on "rmq-c<id>-N"; never raises."""
    try:
        with _consumers_lock:
            consumer = _consumers.get(user_data or 0)
        if consumer is None:
            return ConsumeStatus.RECONSUME_LATER
        batch = [_copy(msgs[i]) for i in range(count)]
        return _verdict(consumer._deliver(batch), ctx)
    except BaseException:
        try:
            _log.exception("rmq: listener failed; the batch is reconsumed later")
        except BaseException:
            pass
        return ConsumeStatus.RECONSUME_LATER


#: Kept referenced for the life of the process: C may call it at any time.
_LISTENER = _ffi.MESSAGE_LISTENER(_on_messages)


def _orderly_verdict(result, ctx) -> int:
    """The C status of an orderly listener's return value; anything unrecognised suspends."""
    if result is None or result is True or (
        isinstance(result, ConsumeOrderlyStatus) and result == ConsumeOrderlyStatus.SUCCESS
    ):
        return ConsumeOrderlyStatus.SUCCESS
    if isinstance(result, SuspendCurrentQueue):
        ms = result.millis
        if isinstance(ms, int) and not isinstance(ms, bool):
            ctx.contents.suspend_millis = max(10, min(ms, 30000))
        return ConsumeOrderlyStatus.SUSPEND
    if not (isinstance(result, ConsumeOrderlyStatus) and result == ConsumeOrderlyStatus.SUSPEND):
        _log.error("rmq: orderly listener returned %r, not a consume status; the queue is suspended", result)
    return ConsumeOrderlyStatus.SUSPEND


def _on_orderly(msgs, count, ctx, user_data):
    """The one C orderly listener of every consumer. Runs on "rmq-c<id>-N"; never raises."""
    try:
        with _consumers_lock:
            consumer = _consumers.get(user_data or 0)
        if consumer is None:
            return ConsumeOrderlyStatus.SUSPEND
        batch = [_copy(msgs[i]) for i in range(count)]
        return _orderly_verdict(consumer._deliver(batch), ctx)
    except BaseException:
        try:
            _log.exception("rmq: orderly listener failed; its queue is suspended a moment")
        except BaseException:
            pass
        return ConsumeOrderlyStatus.SUSPEND


_ORDERLY_LISTENER = _ffi.ORDERLY_LISTENER(_on_orderly)

_live = weakref.WeakSet()


@atexit.register
def _close_all_at_exit():
    # Destroy waits for running listener calls, so none runs while the interpreter finalizes.
    for c in list(_live):
        try:
            c.close()
        except BaseException:
            pass


class PushConsumer(_ffi.Closeable):
    """A RocketMQ push consumer (clustering, concurrent).

    ``PushConsumer({"name-server": "127.0.0.1:9876", "consumer.group": "G", ...})`` with the keys
    of :func:`rmq.config_keys`. :meth:`subscribe` one or more topics, then :meth:`start` with a
    listener, or without one to read with :meth:`messages` or ``async for``. ``with
    PushConsumer(cfg) as c:`` closes it on exit.
    """

    def __init__(self, config: Mapping):
        self._handle = None
        self._lock = threading.Lock()
        self._listener: Optional[Callable] = None
        self._started = False
        self._closing = threading.Event()
        # Threads running a listener call of this consumer now (thread ident -> calls).
        self._in_listener: Dict[int, int] = {}
        self._close_lock = threading.Lock()
        cfg = config if isinstance(config, Config) else None
        if cfg is None:
            if not isinstance(config, Mapping):
                raise TypeError(f"config must be a dict, not {type(config).__name__}")
            cfg = Config(config)
        try:
            out = c_void_p()
            check(_lib.rmq_push_consumer_create(cfg.handle, byref(out)))
            self._handle = out.value
        finally:
            if cfg is not config:
                cfg.close()
        with _consumers_lock:
            self._id = next(_ids)
            _consumers[self._id] = self
        _live.add(self)

    @property
    def handle(self):
        """The raw rmq_push_consumer_t* (int), or None after close()."""
        return self._handle

    def subscribe(self, topic: str, expression: str = "*") -> None:
        """Subscribes ``topic`` with a tag expression: "*", "TagA" or "TagA || TagB". Before
        start; subscribing a topic again replaces its expression."""
        check(
            _lib.rmq_push_consumer_subscribe(
                self._handle, _ffi.c_str(topic, "topic"), _ffi.c_str(expression, "expression")
            )
        )

    def subscribe_sql92(self, topic: str, expression: str) -> None:
        """Subscribes ``topic`` with an SQL92 expression over properties (``"n >= 30"``); the
        broker needs enablePropertyFilter=true."""
        check(
            _lib.rmq_push_consumer_subscribe_sql92(
                self._handle, _ffi.c_str(topic, "topic"), _ffi.c_str(expression, "expression")
            )
        )

    def start(
        self, listener: Optional[Callable[[List[ReceivedMessage]], object]] = None, orderly: bool = False
    ) -> None:
        """Starts receiving. With ``listener``, it is called with each batch (a list of
        :class:`ReceivedMessage`, up to consumer.consume-message-batch-max-size) on the
        consumer's threads, several at once; return None or ConsumeStatus.SUCCESS when
        consumed, ConsumeStatus.RECONSUME_LATER or ReconsumeLater(delay_level) to have the batch
        delivered again; an exception counts as reconsume-later. Without one the consumer is in
        poll mode: read the messages with :meth:`messages`, ``async for`` or :meth:`poll`.

        With ``orderly=True`` (a listener is then required) each queue is locked at its broker
        and its batches are handed over one at a time, in queue order, on the consumer's
        threads (different queues at once); return None or ConsumeOrderlyStatus.SUCCESS when
        consumed, ConsumeOrderlyStatus.SUSPEND or SuspendCurrentQueue(millis) to get the same
        messages again after a pause; an exception counts as a suspend."""
        if listener is not None and not callable(listener):
            raise TypeError("listener must be callable")
        if orderly and listener is None:
            raise TypeError("an orderly consumer needs a listener")
        self._listener = listener
        if orderly:
            check(_lib.rmq_push_consumer_set_orderly_listener(self._handle, _ORDERLY_LISTENER, self._id))
        elif listener is not None:
            check(_lib.rmq_push_consumer_set_listener(self._handle, _LISTENER, self._id))
        else:
            check(_lib.rmq_push_consumer_set_poll_mode(self._handle))
        check(_lib.rmq_push_consumer_start(self._handle))
        self._started = True

    # ------------------------------------------------------------------------ delivery
    def _deliver(self, batch):
        me = threading.get_ident()
        with self._lock:
            self._in_listener[me] = self._in_listener.get(me, 0) + 1
        try:
            return self._deliver_here(batch)
        finally:
            with self._lock:
                if self._in_listener[me] == 1:
                    del self._in_listener[me]
                else:
                    self._in_listener[me] -= 1

    def _refuse_in_own_listener(self, what):
        # Checked first: another thread may be closing this consumer right now and waiting for
        # this very listener call to return.
        with self._lock:
            mine = threading.get_ident() in self._in_listener
        if mine:
            raise InvalidStateError(
                Status.RMQ_ERR_INVALID_STATE,
                f"{what} from the consumer's own listener would wait for itself; call it from another thread",
            )

    def _deliver_here(self, batch):
        return self._listener(batch)

    # ------------------------------------------------------------------------ poll mode
    def _poll_once(self, max_messages, seconds):
        """One call into the library: a ReceivedBatch, or None when nothing came in
        ``seconds``. Raises _Closed once the consumer is closing."""
        if self._closing.is_set():
            raise _Closed()
        with self._lock:
            handle = self._handle
        if not handle:
            raise _Closed()
        out = c_void_p()
        status = _lib.rmq_push_consumer_poll(handle, max_messages, int(seconds * 1000), byref(out))
        if status != Status.RMQ_OK and self._closing.is_set():
            raise _Closed()
        check(status)
        if not out.value:
            return None
        views = POINTER(_ffi.ReceivedViewT)()
        count = c_size_t()
        try:
            check(_lib.rmq_received_batch_views(out.value, byref(views), byref(count)))
            messages = [_from_view(views[i]) for i in range(count.value)]
        except BaseException:
            _lib.rmq_received_batch_destroy(out.value)
            raise
        return ReceivedBatch(out.value, messages)

    def _check_poll_mode(self, max_messages):
        if self._listener is not None:
            raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "this consumer was started with a listener")
        if not isinstance(max_messages, int) or isinstance(max_messages, bool) or max_messages < 1:
            raise ValueError(f"max_messages must be an int >= 1, not {max_messages!r}")

    def poll(self, max_messages: int = 32, timeout: Optional[float] = None) -> Optional[ReceivedBatch]:
        """Takes up to ``max_messages`` received messages (for a consumer started without a
        listener), waiting up to ``timeout`` seconds (None: no limit) for the first; None when
        nothing came. Answer the batch with ``ack()``, ``ack_each(results)`` or ``release()``;
        the consume timeout counts from here. Any thread may poll. Raises InvalidStateError
        once the consumer is shut down or closed (a close from another thread wakes it)."""
        self._check_poll_mode(max_messages)
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        while True:
            left = _POLL_SLICE if deadline is None else min(_POLL_SLICE, max(deadline - time.monotonic(), 0))
            try:
                batch = self._poll_once(max_messages, left)
            except _Closed:
                raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "consumer is closed") from None
            if batch is not None or (deadline is not None and time.monotonic() >= deadline):
                return batch

    @staticmethod
    def _answer(batch, results):
        try:
            batch.ack_each(results)
        except InvalidStateError:
            pass  # closed meanwhile: not committed, delivered again later

    def messages(self, timeout: Optional[float] = None, batch_size: int = 32):
        """Yields received messages one by one (for a consumer started without a listener),
        taking up to ``batch_size`` at a time from the library. A message counts as consumed
        when the loop asks for the next one; if the loop body raises or breaks, that message and
        the rest of its batch are delivered again later. Stops when no message arrives for
        ``timeout`` seconds (None: waits for ever) or when the consumer is closed."""
        self._check_poll_mode(batch_size)
        while True:
            try:
                batch = self.poll(batch_size, timeout)
            except InvalidStateError:
                if self._closing.is_set():
                    return
                raise
            if batch is None:
                return
            results = [ConsumeStatus.RECONSUME_LATER] * len(batch)
            try:
                for i, m in enumerate(batch.messages):
                    yield m
                    results[i] = ConsumeStatus.SUCCESS
            finally:
                self._answer(batch, results)

    def __aiter__(self):
        return self.messages_async()

    async def messages_async(self, timeout: Optional[float] = None, batch_size: int = 32):
        """``async for msg in consumer.messages_async(timeout)``: as :meth:`messages`, waiting
        in a worker thread without blocking the event loop (``async for msg in consumer`` waits
        for ever)."""
        self._check_poll_mode(batch_size)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(timeout, 0)
        while True:
            left = _POLL_SLICE if deadline is None else min(_POLL_SLICE, max(deadline - loop.time(), 0))
            try:
                batch = await loop.run_in_executor(None, self._poll_once, batch_size, left)
            except _Closed:
                return
            if batch is None:
                if deadline is not None and loop.time() >= deadline:
                    return
                continue
            results = [ConsumeStatus.RECONSUME_LATER] * len(batch)
            try:
                for i, m in enumerate(batch.messages):
                    yield m
                    results[i] = ConsumeStatus.SUCCESS
            finally:
                self._answer(batch, results)
            if deadline is not None:
                deadline = loop.time() + max(timeout, 0)

    # ------------------------------------------------------------------------ teardown
    def shutdown(self) -> None:
        """Stops the consumer (idempotent): pulling stops, running listener calls get up to
        consumer.await-termination-millis-when-shutdown, offsets are committed. From this
        consumer's own listener it raises InvalidStateError."""
        self._refuse_in_own_listener("shutdown()")
        self._closing.set()
        check(_lib.rmq_push_consumer_shutdown(self._handle))

    def close(self) -> None:
        """Shuts down if needed, waits for the last listener call to return, frees the
        consumer. Idempotent. From this consumer's own listener it would wait for itself: it
        raises InvalidStateError and the consumer stays open."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        self._refuse_in_own_listener("close()")
        with self._close_lock:  # a second close() waits until the first one is done
            with lock:
                handle = self._handle
            if not handle:
                return
            self._closing.set()
            status = _lib.rmq_push_consumer_destroy(handle)
            if status == Status.RMQ_ERR_INVALID_STATE:
                check(status)
            with lock:
                self._handle = None
            with _consumers_lock:
                _consumers.pop(self._id, None)
            check(status)

    def __repr__(self):
        state = "closed" if not self._handle else ("started" if self._started else "created")
        return f"<rmq.PushConsumer {state}>"


__all__ = [
    "ConsumeOrderlyStatus",
    "ConsumeStatus",
    "PushConsumer",
    "ReceivedBatch",
    "ReceivedMessage",
    "ReconsumeLater",
    "SuspendCurrentQueue",
]
