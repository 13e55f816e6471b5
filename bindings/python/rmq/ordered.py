"""Ordered sends: message queues and queue selectors (rmq_queue_selector_t).

``producer.send(msg, selector=rmq.HashSelector("order-1"))`` puts every message of a sharding
key on one queue (the one Java's SelectMessageQueueByHash picks); ``selector=`` also takes
:class:`RandomSelector`, :class:`RoundRobinSelector`, or any callable
``f(queues: list[MessageQueue], message: Message) -> int`` returning an index into ``queues``.
``producer.send(msg, queue=rmq.MessageQueue(topic, broker_name, queue_id))`` sends to that
queue. An ordered send is never retried on another queue.

A callable selector runs on the thread that calls ``send`` or ``send_async``, before the call
returns. If it raises, or returns something that is not an index of ``queues``, the send fails
with an :class:`InvalidArgumentError` of status RMQ_ERR_QUEUE_SELECTOR whose ``__cause__`` is
what the selector raised; nothing is sent.
"""

import ctypes
from dataclasses import dataclass

from . import _ffi
from .errors import RmqError

_lib = _ffi.lib

# rmq_selector_kind_t values (RMQ_SELECTOR_* in rmq.h).
_HASH, _RANDOM, _ROUND_ROBIN, _CALLBACK = 1, 2, 3, 4


@dataclass(frozen=True)
class MessageQueue:
    """A queue of a topic on a broker."""

    topic: str
    broker_name: str
    queue_id: int

    def _c(self):
        """(rmq_message_queue_t, the bytes it points into: keep both alive for the call)."""
        topic = _ffi.text_n(self.topic, "queue topic")[0]
        broker = _ffi.text_n(self.broker_name, "queue broker name")[0]
        if not isinstance(self.queue_id, int) or isinstance(self.queue_id, bool):
            raise TypeError(f"queue_id must be int, not {type(self.queue_id).__name__}")
        if not -(2**31) <= self.queue_id < 2**31:
            raise ValueError(f"queue_id={self.queue_id} does not fit int32")
        tbuf = ctypes.create_string_buffer(topic, len(topic))
        bbuf = ctypes.create_string_buffer(broker, len(broker))
        q = _ffi.MessageQueueT(
            ctypes.cast(tbuf, ctypes.c_void_p), len(topic), ctypes.cast(bbuf, ctypes.c_void_p), len(broker), self.queue_id
        )
        return q, (tbuf, bbuf)


class HashSelector:
    """The queue of ``key`` by Java's SelectMessageQueueByHash (String.hashCode)."""

    def __init__(self, key: str):
        self.key = _ffi.text_n(key, "sharding key")[0]


class RandomSelector:
    """A random queue."""


class RoundRobinSelector:
    """The next queue of the producer's round-robin counter."""


def _queue_of(c) -> MessageQueue:
    def text(ptr, n):
        return _ffi.text(ctypes.string_at(ptr, n)) if n else ""

    return MessageQueue(text(c.topic, c.topic_len), text(c.broker_name, c.broker_name_len), c.queue_id)


class _Call:
    """One ordered send's rmq_queue_selector_t and what keeps it alive; `raise_for` turns a
    failure of a callable selector into its exception."""

    def __init__(self, selector, message):
        self.error = None
        self._keep = None
        if isinstance(selector, HashSelector):
            self.c = _ffi.QueueSelectorT(_HASH, selector.key, len(selector.key))
        elif isinstance(selector, RandomSelector):
            self.c = _ffi.QueueSelectorT(_RANDOM)
        elif isinstance(selector, RoundRobinSelector):
            self.c = _ffi.QueueSelectorT(_ROUND_ROBIN)
        elif callable(selector):

            def trampoline(queues, count, _message, _arg):
                try:
                    index = selector([_queue_of(queues[i]) for i in range(count)], message)
                    if not isinstance(index, int) or isinstance(index, bool):
                        raise TypeError(f"the selector returned {type(index).__name__}, not int")
                    if not 0 <= index < count:
                        raise IndexError(f"the selector returned {index} for {count} queue(s)")
                    return index
                except BaseException as e:  # reported after the C call returns
                    self.error = e
                    return -1

            self._keep = _ffi.QUEUE_SELECT_FN(trampoline)
            self.c = _ffi.QueueSelectorT(_CALLBACK, None, 0, self._keep)
        else:
            raise TypeError(
                "selector must be rmq.HashSelector, rmq.RandomSelector, rmq.RoundRobinSelector or a "
                f"callable, not {type(selector).__name__}"
            )

    def raise_for(self, error: RmqError):
        if self.error is not None:
            raise error from self.error
        raise error
