"""Configuration by the library's string keys (rmq_config_*)."""

import ctypes
import threading
from ctypes import byref, c_size_t
from typing import Mapping, NamedTuple

from . import _ffi
from .errors import NotFoundError, Status, check, last_error

_lib = _ffi.lib


class ConfigKey(NamedTuple):
    """One row of rmq_config_keys(): ``default`` is "" when the key has none."""

    name: str
    default: str
    description: str


def config_keys() -> list:
    """Every configuration key the library accepts, as ``ConfigKey(name, default, description)``."""
    count = c_size_t()
    rows = _lib.rmq_config_keys(byref(count))
    return [
        ConfigKey(
            _ffi.text(rows[i].name),
            _ffi.text(rows[i].default_value),
            _ffi.text(rows[i].description),
        )
        for i in range(count.value)
    ]


def _value_text(key: str, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(f"value of {key!r} must be str, int or bool, not {type(value).__name__}")


class Config(_ffi.Closeable):
    """A native rmq_config_t. Keys are checked by the library: an unknown key or a bad value
    raises :class:`rmq.ConfigError`. Mostly used through ``Producer(dict)``."""

    def __init__(self, values: Mapping = None):
        self._lock = threading.Lock()
        self._handle = _lib.rmq_config_create()
        if not self._handle:
            raise last_error()
        try:
            for key, value in (values or {}).items():
                self[key] = value
        except BaseException:
            self.close()
            raise

    def __setitem__(self, key: str, value) -> None:
        k = _ffi.c_str(key, "configuration key")
        v = _ffi.c_str(_value_text(key, value), f"value of {key!r}")
        check(_lib.rmq_config_set(self._handle, k, v))

    def __getitem__(self, key: str) -> str:
        """The value set, else the default; :class:`rmq.NotFoundError` if neither exists."""
        k = _ffi.c_str(key, "configuration key")
        needed = c_size_t()
        cap = 64
        while True:
            buf = ctypes.create_string_buffer(cap)
            status = _lib.rmq_config_get(self._handle, k, buf, cap, byref(needed))
            if status == 0:
                return _ffi.text(buf.raw[: needed.value])
            if status != Status.RMQ_ERR_BUFFER_TOO_SMALL or cap > needed.value:
                check(status)
            cap = needed.value + 1

    def get(self, key: str, default=None):
        """Like ``__getitem__`` but returns ``default`` for a key without value."""
        try:
            return self[key]
        except NotFoundError:
            return default

    @property
    def handle(self):
        """The raw rmq_config_t* (int), or None after close()."""
        return self._handle

    def close(self) -> None:
        """Frees the native configuration; idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            _lib.rmq_config_destroy(handle)
