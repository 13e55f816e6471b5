"""Request-reply (rmq_producer_request*, rmq_message_create_reply): RPC over RocketMQ.

A requester calls :meth:`Producer.request` (blocking) or :meth:`Producer.request_async` (a
:class:`RequestFuture`, also awaitable in asyncio) and gets the reply as a :class:`Message`. A
responder is any consumer of the topic: for each request it receives it builds the reply with
:func:`create_reply` and sends it with a producer (:meth:`Producer.reply` does both). The
properties are the Java client's (CORRELATION_ID, REPLY_TO_CLIENT, TTL; CLUSTER added by the
broker), so Java requesters and responders work with these.
"""

from ctypes import byref, c_void_p
from typing import Mapping

from . import _ffi
from .consumer import ReceivedMessage
from .errors import check, error_for
from .message import Message, _body_args
from .producer import SendFuture, _ids, _log, _pending, _pending_lock

_lib = _ffi.lib
_INT64_MAX = 2**63 - 1


class RequestFuture(SendFuture):
    """The Future of :meth:`Producer.request_async`: resolves to the reply :class:`Message`, or
    raises :class:`RmqTimeoutError` when no reply came in time, :class:`OperationCancelledError`
    when the producer shut down first, or the send's error. Await it in a running asyncio loop
    (``reply = await producer.request_async(msg, 3)``). It cannot be cancelled."""


def timeout_ms(timeout) -> int:
    """Seconds (int or float, > 0) as whole milliseconds, at least 1."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be more than 0 seconds, not {timeout!r}")
    ms = max(1, round(timeout * 1000))
    if ms > _INT64_MAX:
        raise ValueError(f"timeout {timeout!r} s is too long")
    return ms


def _on_request_done(params, user_data):
    """The one C callback for every async request. Runs on "rmq-callback-N"; never raises. The
    reply it gets is ours to free: the Message that wraps it frees it."""
    try:
        p = params.contents
        reply = Message._adopt(p.reply) if p.reply else None
        with _pending_lock:
            entry = _pending.pop(user_data or 0, None)
        if entry is None:
            if reply is not None:
                reply.close()
            return
        future = entry[0]
        if p.status == 0 and reply is not None:
            future.set_result(reply)
        else:
            raw = p.error_message
            future.set_exception(error_for(p.status, _ffi.text(raw) if raw else "", p.broker_code))
    except BaseException:
        try:
            _log.exception("rmq: error in the request callback")
        except BaseException:
            pass


#: Kept referenced for the life of the process: C may call it at any time.
_REQUEST_CALLBACK = _ffi.REQUEST_CALLBACK(_on_request_done)


def request(producer, message: Message, timeout) -> Message:
    handle, msg, ms = producer.handle, producer._msg(message), timeout_ms(timeout)

    def call() -> Message:
        out = c_void_p()
        check(_lib.rmq_producer_request(handle, msg, ms, byref(out)))
        return Message._adopt(out.value)

    from . import _blocking

    return _blocking.call(call)


def request_async(producer, message: Message, timeout) -> RequestFuture:
    msg, ms = producer._msg(message), timeout_ms(timeout)
    future = RequestFuture()
    future.set_running_or_notify_cancel()
    with _pending_lock:
        uid = next(_ids)
        _pending[uid] = (future, producer)
    try:
        check(_lib.rmq_producer_request_async(producer.handle, msg, ms, _REQUEST_CALLBACK, uid))
    except BaseException:
        with _pending_lock:
            _pending.pop(uid, None)
        raise
    return future


def _encoded_properties(properties: Mapping) -> bytes:
    parts = []
    for k, v in properties.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("request properties must map str to str")
        parts.append(f"{k}\x01{v}\x02")
    return "".join(parts).encode("utf-8")


def create_reply(request: "ReceivedMessage | Message", body) -> Message:
    """The reply to ``request`` (a :class:`ReceivedMessage`, or a :class:`Message` with the
    request's properties) with ``body`` (bytes-like): topic ``<cluster>_REPLY_TOPIC``,
    MSG_TYPE=reply and the request's CORRELATION_ID, REPLY_TO_CLIENT and TTL, as Java's
    MessageUtil.createReplyMessage. Send it with any producer. A message that is not a request
    raises :class:`InvalidArgumentError`."""
    if isinstance(request, ReceivedMessage):
        props = request.properties
    elif isinstance(request, Message):
        props = request.properties
    else:
        raise TypeError(f"request must be rmq.ReceivedMessage or rmq.Message, not {type(request).__name__}")
    raw = _encoded_properties(props)
    data, n = _body_args(body)
    out = c_void_p()
    check(_lib.rmq_message_create_reply(raw, len(raw), data, n, byref(out)))
    return Message._adopt(out.value)
