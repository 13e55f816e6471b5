"""Message: a native rmq_message_t; setters and getters go straight to the library."""

import ctypes
import threading
from collections.abc import Mapping
from ctypes import byref, c_int32, c_int64, c_size_t, c_void_p

from . import _ffi
from .errors import Status, check, last_error

_lib = _ffi.lib


def _body_args(body):
    """(pointer-ish, length) for rmq_message_set_body; never copies ``bytes``."""
    if isinstance(body, str):
        raise TypeError("message body must be bytes-like, not str (encode it first)")
    if isinstance(body, bytes):
        return (body if body else None), len(body)
    try:
        mv = memoryview(body)
    except TypeError:
        raise TypeError(f"message body must be bytes-like, not {type(body).__name__}") from None
    with mv:
        n = mv.nbytes
        if n == 0:
            return None, 0
        if mv.c_contiguous and not mv.readonly:
            return (ctypes.c_char * n).from_buffer(mv.cast("B")), n
        return mv.tobytes(), n


def _keys_text(keys):
    """(bytes, length) for rmq_message_set_keys_n; (None, 0) removes the keys."""
    if keys is None:
        return None, 0
    if isinstance(keys, str):
        return _ffi.text_n(keys, "keys")
    if isinstance(keys, (bytes, bytearray)):
        raise TypeError("keys must be str or a list of str")
    parts = []
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"each key must be str, not {type(k).__name__}")
        if not k or " " in k:
            raise ValueError(f"key {k!r} must be non-empty and contain no space (the separator)")
        parts.append(k)
    return _ffi.text_n(" ".join(parts), "keys")


def _check_int(what, value, high):
    # ctypes silently truncates integers that do not fit the C type
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not -high - 1 <= value <= high:
        raise ValueError(f"{what}={value} does not fit the C type")


class Message(_ffi.Closeable):
    """A RocketMQ message backed by a native rmq_message_t.

    ``Message(topic, body, tags=..., keys="k" or ["k1", "k2"], properties={...})``. The body is
    bytes-like (``str`` is refused). Text goes to the library whole (pointer + length), and the
    library refuses NUL and the property separators ``\x01``/``\x02`` in the topic, tags, keys
    and property names and values with :class:`InvalidArgumentError` (a ``ValueError``), so
    nothing is cut short or reread as another property. Messages returned by
    :meth:`Producer.view_message` / :meth:`Producer.query_message` also carry the stored fields
    (``offset_msg_id``, ``queue_id``, ``queue_offset``, ``store_timestamp``, ``born_timestamp``);
    for other messages these are None. Free the native message with :meth:`close` (also done on
    garbage collection). Safe to use from several threads.
    """

    def __init__(self, topic: str, body, *, tags=None, keys=None, properties=None):
        self._lock = threading.Lock()
        self._handle = None
        handle = _lib.rmq_message_create()
        if not handle:
            raise last_error()
        self._handle = handle
        try:
            self.topic = topic
            self.body = body
            if tags is not None:
                self.tags = tags
            if keys is not None:
                self.keys = keys
            if properties is not None and not isinstance(properties, Mapping):
                raise TypeError(f"properties must be a dict, not {type(properties).__name__}")
            for name, value in (properties or {}).items():
                self.set_property(name, value)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _adopt(cls, handle):
        """Wraps a native message the caller owns (from view/query)."""
        self = cls.__new__(cls)
        self._lock = threading.Lock()
        self._handle = handle
        return self

    @property
    def handle(self):
        """The raw rmq_message_t* (int), or None after close()."""
        return self._handle

    # ----------------------------------------------------------------------------- setters
    def _set(self, fn, *args):
        with self._lock:
            check(fn(self._handle, *args))

    @property
    def topic(self) -> str:
        return self._text(_lib.rmq_message_topic)

    @topic.setter
    def topic(self, topic: str) -> None:
        self._set(_lib.rmq_message_set_topic_n, *_ffi.text_n(topic, "topic"))

    @property
    def tags(self):
        """The tag, or None."""
        return self._text(_lib.rmq_message_tags) or None

    @tags.setter
    def tags(self, tags) -> None:
        text = (None, 0) if tags is None else _ffi.text_n(tags, "tags")
        self._set(_lib.rmq_message_set_tags_n, *text)

    @property
    def keys(self) -> list:
        """The keys as a list (empty if none); set a str (space-separated) or a list of str."""
        text = self._text(_lib.rmq_message_keys)
        return text.split(" ") if text else []

    @keys.setter
    def keys(self, keys) -> None:
        self._set(_lib.rmq_message_set_keys_n, *_keys_text(keys))

    @property
    def body(self) -> bytes:
        with self._lock:
            return _ffi.view(_lib.rmq_message_body, self._handle)

    @body.setter
    def body(self, body) -> None:
        data, n = _body_args(body)
        self._set(_lib.rmq_message_set_body, data, n)

    def set_property(self, name: str, value: str) -> None:
        """Sets a user property; reserved names (TAGS, KEYS, ...), blank names or values, NUL
        and ``\x01``/``\x02`` raise InvalidArgumentError."""
        self._set(
            _lib.rmq_message_set_property_n,
            *_ffi.text_n(name, "property name"),
            *_ffi.text_n(value, "property value"),
        )

    # ------------------------------------------------------------------------------ delays
    @property
    def delay_level(self) -> int:
        """Broker delay level: 1 (1 s) to 18 (2 h) in the broker's default table; 0 for none.
        Setting it replaces any timer; other values raise InvalidArgumentError."""
        return self._optional_int(_lib.rmq_message_delay_level, c_int32)

    @delay_level.setter
    def delay_level(self, level: int) -> None:
        _check_int("delay level", level, 2**31 - 1)
        self._set(_lib.rmq_message_set_delay_level, level)

    def set_delay_ms(self, delay_ms: int) -> None:
        """Delivers ``delay_ms`` ms after the broker stores the message (5.x timer; the broker
        rounds down to its precision, 1 s by default). 0 removes the delay. Replaces any other."""
        _check_int("delay_ms", delay_ms, 2**63 - 1)
        self._set(_lib.rmq_message_set_delay_ms, delay_ms)

    def set_delay_sec(self, delay_sec: int) -> None:
        """As :meth:`set_delay_ms`, in seconds."""
        _check_int("delay_sec", delay_sec, 2**63 - 1)
        self._set(_lib.rmq_message_set_delay_sec, delay_sec)

    def set_deliver_time_ms(self, epoch_ms: int) -> None:
        """Delivers at ``epoch_ms`` (ms since the Unix epoch; 5.x timer). 0 removes the delay.
        Replaces any other."""
        _check_int("epoch_ms", epoch_ms, 2**63 - 1)
        self._set(_lib.rmq_message_set_deliver_time_ms, epoch_ms)

    # ----------------------------------------------------------------------------- getters
    def _text(self, fn):
        with self._lock:
            return _ffi.text(_ffi.view(fn, self._handle))

    def _optional(self, fn, *args):
        """rmq getter that reports absence as RMQ_ERR_NOT_FOUND -> bytes or None."""
        ptr, length = c_void_p(), c_size_t()
        with self._lock:
            status = fn(self._handle, *args, byref(ptr), byref(length))
            if status == Status.RMQ_ERR_NOT_FOUND:
                return None
            check(status)
            return ctypes.string_at(ptr.value, length.value) if length.value else b""

    def _optional_int(self, fn, ctype):
        out = ctype()
        with self._lock:
            status = fn(self._handle, byref(out))
            if status == Status.RMQ_ERR_NOT_FOUND:
                return None
            check(status)
        return out.value

    def get_property(self, name: str):
        """The value of property ``name`` (system ones included), or None."""
        raw = self._optional(_lib.rmq_message_property, _ffi.c_str(name, "property name"))
        return None if raw is None else _ffi.text(raw)

    @property
    def properties(self) -> dict:
        """All properties in order, system ones (TAGS, KEYS, WAIT, UNIQ_KEY, ...) included."""
        return self._property_map(_lib.rmq_message_property_count, _lib.rmq_message_property_at)

    @property
    def user_properties(self) -> dict:
        """The user properties only: those whose names are not reserved (TAGS, KEYS, WAIT,
        UNIQ_KEY and the others :meth:`set_property` refuses)."""
        return self._property_map(_lib.rmq_message_user_property_count, _lib.rmq_message_user_property_at)

    def _property_map(self, count_fn, at_fn) -> dict:
        count = c_size_t()
        name, name_len = c_void_p(), c_size_t()
        value, value_len = c_void_p(), c_size_t()
        result = {}
        with self._lock:
            check(count_fn(self._handle, byref(count)))
            for i in range(count.value):
                check(at_fn(self._handle, i, byref(name), byref(name_len), byref(value), byref(value_len)))
                k = ctypes.string_at(name.value, name_len.value) if name_len.value else b""
                v = ctypes.string_at(value.value, value_len.value) if value_len.value else b""
                result[_ffi.text(k)] = _ffi.text(v)
        return result

    @property
    def msg_id(self):
        """The message id (UNIQ_KEY), or None before the message was sent."""
        raw = self._optional(_lib.rmq_message_msg_id)
        return None if raw is None else _ffi.text(raw)

    @property
    def offset_msg_id(self):
        """Broker store id of a stored message, else None."""
        raw = self._optional(_lib.rmq_message_offset_msg_id)
        return None if raw is None else _ffi.text(raw)

    @property
    def queue_id(self):
        """Queue id of a stored message, else None."""
        return self._optional_int(_lib.rmq_message_queue_id, c_int32)

    @property
    def queue_offset(self):
        """Queue offset of a stored message, else None."""
        return self._optional_int(_lib.rmq_message_queue_offset, c_int64)

    @property
    def store_timestamp(self):
        """Broker store time (ms since the epoch) of a stored message, else None."""
        return self._optional_int(_lib.rmq_message_store_timestamp, c_int64)

    @property
    def born_timestamp(self):
        """Producer send time (ms since the epoch) of a stored message, else None."""
        return self._optional_int(_lib.rmq_message_born_timestamp, c_int64)

    # --------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Frees the native message; idempotent. Later calls raise InvalidHandleError."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            handle, self._handle = self._handle, None
            if handle:
                _lib.rmq_message_destroy(handle)

    def __repr__(self):
        if not self._handle:
            return "<rmq.Message closed>"
        try:
            return (
                f"<rmq.Message topic={self.topic!r} tags={self.tags!r} keys={self.keys!r} "
                f"body={len(self.body)} bytes msg_id={self.msg_id!r}>"
            )
        except Exception as e:  # pragma: no cover - repr must not raise
            return f"<rmq.Message {e}>"
