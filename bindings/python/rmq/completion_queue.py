"""Completion queues (rmq_completion_queue_*): async send results taken many per C call.

For asyncio, :meth:`CompletionQueue.send` is the fast async send: the queue's wake-up
descriptor is watched by the event loop (``loop.add_reader``), and each time it is readable
one C call takes up to 256 results and resolves their futures, so the GIL is taken once per
batch instead of once per message on a library thread::

    with rmq.CompletionQueue() as q:
        results = await asyncio.gather(*(q.send(producer, m) for m in messages))

Outside asyncio, :meth:`CompletionQueue.send_tagged` and :meth:`CompletionQueue.poll` are the
plain C API: send with an integer tag, take :class:`Completion` values on a thread you choose.
"""

import asyncio
from ctypes import byref, c_int32, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Optional

from . import _ffi
from .errors import RmqError, Status, check, error_for
from .message import Message
from .producer import Producer, SendResult, SendStatus

_lib = _ffi.lib
_text = _ffi.text

#: Results taken per C call by the asyncio reader and by default by poll().
BATCH = 256


@dataclass(frozen=True)
class Completion:
    """One result taken from the queue: ``result`` on success, else ``error``."""

    tag: int
    result: Optional[SendResult]
    error: Optional[RmqError]


def _completion(c) -> "tuple[int, Optional[SendResult], Optional[RmqError]]":
    if c.status == 0:
        try:
            st = SendStatus(c.send_status)
        except ValueError:
            st = c.send_status
        return (
            c.user_tag,
            SendResult(
                status=st,
                msg_id=_text(c.msg_id),
                offset_msg_id=_text(c.offset_msg_id),
                topic=_text(c.topic),
                broker_name=_text(c.broker_name),
                queue_id=c.queue_id,
                queue_offset=c.queue_offset,
            ),
            None,
        )
    return c.user_tag, None, error_for(c.status, _text(c.error_message), c.broker_code)


class CompletionQueue(_ffi.Closeable):
    """A queue of async send results, shared by any number of producers (thread-safe).

    ``capacity`` bounds the results owed at once (sends in flight plus results not yet taken): a
    send past it raises RMQ_ERR_IN_FLIGHT_FULL at once (:meth:`send` waits instead). Close the
    queue after its producers to keep every result: closing it first drops the results of sends
    still in flight (they are counted, nothing leaks)."""

    def __init__(self, capacity: int = 8192):
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"capacity must be int, not {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._handle = None
        out = c_void_p()
        check(_lib.rmq_completion_queue_new(capacity, byref(out)))
        self._handle = out.value
        fd = c_int32()
        check(_lib.rmq_completion_queue_fd(self._handle, byref(fd)))
        self._fd = fd.value
        self._results = (_ffi.CompletionT * BATCH)()
        self._count = c_size_t()
        # asyncio state: bound to one loop on first send().
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._futures: dict = {}
        self._next_tag = 0
        self._space: Optional[asyncio.Event] = None

    @property
    def handle(self):
        """The raw rmq_completion_queue_t* (int), or None after close()."""
        return self._handle

    def fileno(self) -> int:
        """The wake-up descriptor: readable while results wait. Watch it; never read or close it."""
        return self._fd

    # ------------------------------------------------------------------------------ plain API
    def send_tagged(self, producer: Producer, message: Message, tag: int) -> None:
        """Sends ``message`` with ``producer`` without waiting; its result comes out of
        :meth:`poll` as a :class:`Completion` with ``tag`` (0 to 2**64-1). Raises if nothing was
        sent (bad message, producer not running, queue at capacity: RMQ_ERR_IN_FLIGHT_FULL)."""
        if not isinstance(producer, Producer):
            raise TypeError(f"expected rmq.Producer, not {type(producer).__name__}")
        if not isinstance(message, Message):
            raise TypeError(f"expected rmq.Message, not {type(message).__name__}")
        check(_lib.rmq_producer_send_async_queued(producer.handle, message.handle, self._handle, tag))

    def poll(self, max_results: int = BATCH, timeout: float = 0.0) -> list:
        """Takes up to ``max_results`` results (oldest first) as :class:`Completion` values,
        waiting up to ``timeout`` seconds for the first (None: until one arrives or the queue is
        closed by another thread). The GIL is released while it waits."""
        if max_results <= 0:
            return []
        buf = self._results if max_results <= BATCH else (_ffi.CompletionT * max_results)()
        n = min(max_results, len(buf))
        ms = -1 if timeout is None else int(timeout * 1000)
        check(_lib.rmq_completion_queue_poll(self._handle, buf, n, ms, byref(self._count)))
        return [Completion(*_completion(buf[i])) for i in range(self._count.value)]

    def counts(self) -> "tuple[int, int]":
        """(owed, waiting): results owed (in flight plus not yet taken), and those waiting."""
        owed, waiting = c_size_t(), c_size_t()
        check(_lib.rmq_completion_queue_counts(self._handle, byref(owed), byref(waiting)))
        return owed.value, waiting.value

    # ------------------------------------------------------------------------------ asyncio
    def send_nowait(self, producer: Producer, message: Message) -> "asyncio.Future[SendResult]":
        """In a running event loop: sends without waiting and returns an asyncio Future that
        resolves to the SendResult (or raises RmqError). Raises at once if nothing was sent,
        RMQ_ERR_IN_FLIGHT_FULL included (see :meth:`send`, which waits for room). A queue
        serves one event loop: the first call binds it."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            if self._handle is None:
                raise error_for(Status.RMQ_ERR_INVALID_STATE, "the completion queue is closed")
            self._loop = loop
            self._space = asyncio.Event()
            loop.add_reader(self._fd, self._on_readable)
        elif self._loop is not loop:
            raise RuntimeError("this CompletionQueue serves another event loop; use one per loop")
        tag = self._next_tag
        self._next_tag = tag + 1
        self.send_tagged(producer, message, tag)
        fut = loop.create_future()
        self._futures[tag] = fut
        return fut

    async def send(self, producer: Producer, message: Message) -> SendResult:
        """``await q.send(producer, msg)``: the SendResult, or raises RmqError. With the queue
        at capacity it waits until results are taken (by this loop's reader) and tries again."""
        while True:
            try:
                fut = self.send_nowait(producer, message)
                break
            except RmqError as e:
                if e.status != Status.RMQ_ERR_IN_FLIGHT_FULL or not self._futures:
                    raise
                assert self._space is not None
                self._space.clear()
                await self._space.wait()
        return await fut

    def _on_readable(self) -> int:
        """The event loop's reader: one C call takes up to BATCH results and resolves their
        futures; the number taken. The descriptor stays readable while more wait."""
        if self._handle is None:
            return 0
        buf = self._results
        status = _lib.rmq_completion_queue_poll(self._handle, buf, BATCH, 0, byref(self._count))
        if status != 0:
            return 0
        futures = self._futures
        for i in range(self._count.value):
            tag, result, error = _completion(buf[i])
            fut = futures.pop(tag, None)
            if fut is None or fut.done():
                continue
            if error is None:
                fut.set_result(result)
            else:
                fut.set_exception(error)
        if self._count.value and self._space is not None:
            self._space.set()
        return self._count.value

    # ------------------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stops watching the descriptor and frees the queue (idempotent; call it on the loop's
        thread). Results already delivered resolve their futures; others are dropped, and futures still pending fail with OperationCancelledError. Close the
        producers first to keep every result."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        # Results already delivered resolve their futures before the queue goes.
        if self._loop is not None and self._futures:
            self._handle = handle
            while self._on_readable():
                pass
            self._handle = None
        _lib.rmq_completion_queue_destroy(handle)
        pending, self._futures = self._futures, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    error_for(Status.RMQ_ERR_CANCELLED, "the completion queue was closed before the send completed")
                )

    def __repr__(self):
        return f"<rmq.CompletionQueue {'closed' if self._handle is None else hex(self._handle)}>"

