"""LitePullConsumer (rmq_lite_pull_consumer_*): the application pulls at its own pace, as with
Java's DefaultLitePullConsumer.

``subscribe`` topics (their queues are shared among the group's consumers by rebalance) or
``assign`` queues (``fetch_message_queues(topic)`` lists them), ``start()``, then::

    for msg in consumer:            # or consumer.messages(timeout=5), or consumer.poll(timeout)
        ...

A polled message counts as consumed: with ``consumer.auto-commit`` (the default) the offsets
are committed every ``consumer.auto-commit-interval`` and at close; otherwise ``commit()``
commits. ``seek``, ``seek_to_begin``, ``seek_to_end`` and ``seek_to_timestamp`` move a queue;
``pause`` and ``resume`` stop and restart queues.
"""

import ctypes
import threading
import time
from ctypes import POINTER, byref, c_int64, c_size_t, c_void_p
from typing import Iterable, Iterator, List, Mapping, Optional

from . import _ffi
from ._config import Config
from .consumer import ReceivedMessage, _from_view
from .errors import InvalidStateError, Status, check
from .ordered import MessageQueue

_lib = _ffi.lib

#: Longest single wait inside the library, so Ctrl-C and close() are noticed soon.
_POLL_SLICE = 0.5


def _queue_array(queues: Iterable[MessageQueue]):
    """(rmq_message_queue_t array, count, buffers to keep alive for the call)."""
    qs = list(queues)
    for q in qs:
        if not isinstance(q, MessageQueue):
            raise TypeError(f"queues must be rmq.MessageQueue, not {type(q).__name__}")
    arr = (_ffi.MessageQueueT * max(len(qs), 1))()
    keep = []
    for i, q in enumerate(qs):
        arr[i], bufs = q._c()
        keep.append(bufs)
    return arr, len(qs), keep


def _read_list(handle) -> List[MessageQueue]:
    """Copies an rmq_message_queue_list_t and frees it."""
    try:
        views = POINTER(_ffi.MessageQueueT)()
        count = c_size_t()
        check(_lib.rmq_message_queue_list_views(handle, byref(views), byref(count)))
        out = []
        for i in range(count.value):
            v = views[i]
            out.append(
                MessageQueue(
                    _ffi.text(_bytes(v.topic, v.topic_len)),
                    _ffi.text(_bytes(v.broker_name, v.broker_name_len)),
                    v.queue_id,
                )
            )
        return out
    finally:
        _lib.rmq_message_queue_list_destroy(handle)


def _bytes(ptr, length) -> bytes:
    return ctypes.string_at(ptr, length) if length else b""


class LitePullConsumer(_ffi.Closeable):
    """A RocketMQ lite pull consumer (clustering).

    ``LitePullConsumer({"name-server": ..., "consumer.group": "G", ...})`` with the keys of
    :func:`rmq.config_keys` (consumer.pull-batch-size is the most messages one poll returns).
    Every method may be called from any thread. ``with LitePullConsumer(cfg) as c:`` closes it
    on exit; close() from another thread ends a waiting poll (InvalidStateError) or iteration.
    """

    def __init__(self, config: Mapping):
        self._handle = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        cfg = config if isinstance(config, Config) else None
        if cfg is None:
            if not isinstance(config, Mapping):
                raise TypeError(f"config must be a dict, not {type(config).__name__}")
            cfg = Config(config)
        try:
            out = c_void_p()
            check(_lib.rmq_lite_pull_consumer_create(cfg.handle, byref(out)))
            self._handle = out.value
        finally:
            if cfg is not config:
                cfg.close()

    @property
    def handle(self):
        """The raw rmq_lite_pull_consumer_t* (int), or None after close()."""
        return self._handle

    def _h(self):
        with self._lock:
            h = self._handle
        if not h:
            raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "consumer is closed")
        return h

    def subscribe(self, topic: str, expression: str = "*") -> None:
        """Subscribes ``topic`` with a tag expression ("*", "TagA || TagB"); its queues are
        shared among the group's consumers by rebalance. Before start; not with assign()."""
        check(
            _lib.rmq_lite_pull_consumer_subscribe(
                self._h(), _ffi.c_str(topic, "topic"), _ffi.c_str(expression, "expression")
            )
        )

    def subscribe_sql92(self, topic: str, expression: str) -> None:
        """Subscribes ``topic`` with an SQL92 expression over properties; the broker needs
        enablePropertyFilter=true."""
        check(
            _lib.rmq_lite_pull_consumer_subscribe_sql92(
                self._h(), _ffi.c_str(topic, "topic"), _ffi.c_str(expression, "expression")
            )
        )

    def assign(self, queues: Iterable[MessageQueue]) -> None:
        """Takes exactly these queues (every message), replacing an earlier assignment. A queue
        starts at the group's committed offset, else at consumer.consume-from-where. Before or
        after start; not with subscribe()."""
        arr, n, _keep = _queue_array(queues)
        check(_lib.rmq_lite_pull_consumer_assign(self._h(), arr, n))

    def start(self) -> None:
        """Registers the group, takes the assigned queues or rebalances the subscribed topics,
        and starts pulling in the background."""
        check(_lib.rmq_lite_pull_consumer_start(self._h()))

    def fetch_message_queues(self, topic: str) -> List[MessageQueue]:
        """The readable queues of ``topic``, sorted (what assign() takes). After start."""
        out = c_void_p()
        check(_lib.rmq_lite_pull_consumer_fetch_message_queues(self._h(), _ffi.c_str(topic, "topic"), byref(out)))
        return _read_list(out.value)

    def assignment(self) -> List[MessageQueue]:
        """The queues this consumer owns now (assigned, or given by rebalance), sorted."""
        out = c_void_p()
        check(_lib.rmq_lite_pull_consumer_assignment(self._h(), byref(out)))
        return _read_list(out.value)

    # ------------------------------------------------------------------------ polling
    def _poll_once(self, seconds: float) -> Optional[List[ReceivedMessage]]:
        if self._closing.is_set():
            raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "consumer is closed")
        out = c_void_p()
        status = _lib.rmq_lite_pull_consumer_poll(self._h(), int(seconds * 1000), byref(out))
        if status != Status.RMQ_OK and self._closing.is_set():
            raise InvalidStateError(Status.RMQ_ERR_INVALID_STATE, "consumer is closed")
        check(status)
        if not out.value:
            return None
        try:
            views = POINTER(_ffi.ReceivedViewT)()
            count = c_size_t()
            check(_lib.rmq_received_batch_views(out.value, byref(views), byref(count)))
            return [_from_view(views[i]) for i in range(count.value)]
        finally:
            # A lite pull batch is consumed when polled: destroying it only frees it.
            _lib.rmq_received_batch_destroy(out.value)

    def poll(self, timeout: Optional[float] = None) -> List[ReceivedMessage]:
        """Waits up to ``timeout`` seconds (None: no limit) for messages and returns up to
        consumer.pull-batch-size of them (an empty list when none came). They count as
        consumed. Raises InvalidStateError before start and once the consumer is shut down or
        closed (a close from another thread wakes a waiting poll)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        while True:
            left = _POLL_SLICE if deadline is None else min(_POLL_SLICE, max(deadline - time.monotonic(), 0))
            batch = self._poll_once(left)
            if batch is not None:
                return batch
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def messages(self, timeout: Optional[float] = None) -> Iterator[ReceivedMessage]:
        """Yields polled messages one by one; stops when none arrives for ``timeout`` seconds
        (None: waits for ever) or when the consumer is closed or shut down."""
        while True:
            try:
                batch = self.poll(timeout)
            except InvalidStateError:
                if self._closing.is_set():
                    return
                raise
            if not batch:
                return
            yield from batch

    def __iter__(self) -> Iterator[ReceivedMessage]:
        return self.messages()

    # ------------------------------------------------------------------------ offsets
    def commit(self) -> None:
        """Commits every owned queue's consumed offset and waits for the broker's answers."""
        check(_lib.rmq_lite_pull_consumer_commit(self._h()))

    def commit_offsets(self, offsets: Mapping[MessageQueue, int]) -> None:
        """Commits these offsets (the next offset to consume) of owned queues and waits."""
        items = list(offsets.items())
        arr, n, _keep = _queue_array(q for q, _ in items)
        offs = (c_int64 * max(n, 1))(*[int(o) for _, o in items])
        check(_lib.rmq_lite_pull_consumer_commit_offsets(self._h(), arr, offs, n))

    def committed(self, queue: MessageQueue) -> Optional[int]:
        """The group's offset of ``queue`` stored at the broker; None when it has none."""
        q, _keep = queue._c()
        out = c_int64()
        status = _lib.rmq_lite_pull_consumer_committed(self._h(), byref(q), byref(out))
        if status == Status.RMQ_ERR_NOT_FOUND:
            return None
        check(status)
        return out.value

    def seek(self, queue: MessageQueue, offset: int) -> None:
        """Polls of ``queue`` (owned) continue from ``offset`` (within the queue's offsets,
        else InvalidArgumentError); its consumed offset becomes ``offset``."""
        q, _keep = queue._c()
        check(_lib.rmq_lite_pull_consumer_seek(self._h(), byref(q), int(offset)))

    def seek_to_begin(self, queue: MessageQueue) -> None:
        """seek() to the queue's first stored message."""
        q, _keep = queue._c()
        check(_lib.rmq_lite_pull_consumer_seek_to_begin(self._h(), byref(q)))

    def seek_to_end(self, queue: MessageQueue) -> None:
        """seek() past the queue's last message: only later messages are polled."""
        q, _keep = queue._c()
        check(_lib.rmq_lite_pull_consumer_seek_to_end(self._h(), byref(q)))

    def seek_to_timestamp(self, queue: MessageQueue, timestamp_ms: int) -> None:
        """seek() to the first message stored at or after ``timestamp_ms`` (ms since the epoch)."""
        q, _keep = queue._c()
        check(_lib.rmq_lite_pull_consumer_seek_to_timestamp(self._h(), byref(q), int(timestamp_ms)))

    def offset_for_timestamp(self, queue: MessageQueue, timestamp_ms: int) -> int:
        """The offset of the first message of ``queue`` stored at or after ``timestamp_ms``."""
        q, _keep = queue._c()
        out = c_int64()
        check(_lib.rmq_lite_pull_consumer_offset_for_timestamp(self._h(), byref(q), int(timestamp_ms), byref(out)))
        return out.value

    def pause(self, queues: Iterable[MessageQueue]) -> None:
        """Polls return no message of these queues until resume(); their pulling stops."""
        arr, n, _keep = _queue_array(queues)
        check(_lib.rmq_lite_pull_consumer_pause(self._h(), arr, n))

    def resume(self, queues: Iterable[MessageQueue]) -> None:
        """Pulling and polling of these queues go on from their consumed offsets."""
        arr, n, _keep = _queue_array(queues)
        check(_lib.rmq_lite_pull_consumer_resume(self._h(), arr, n))

    # ------------------------------------------------------------------------ teardown
    def shutdown(self) -> None:
        """Stops the consumer (idempotent): pulling stops, waiting polls raise
        InvalidStateError, with consumer.auto-commit the consumed offsets are committed."""
        self._closing.set()
        check(_lib.rmq_lite_pull_consumer_shutdown(self._h()))

    def close(self) -> None:
        """Shuts down if needed and frees the consumer. Idempotent."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        self._closing.set()
        with lock:
            h, self._handle = self._handle, None
        if h:
            check(_lib.rmq_lite_pull_consumer_destroy(h))

    def __repr__(self):
        return f"<rmq.LitePullConsumer {'closed' if not self._handle else 'open'}>"


__all__ = ["LitePullConsumer"]
