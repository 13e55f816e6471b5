"""The library's log records in Python's logging.

At import, rmq installs a logger in the library that hands every record of level INFO and up
(see :func:`set_log_level`) to the logger ``rmq.<part>`` (``rmq.remoting``, ``rmq.client``,
``rmq.producer``), children of ``logging.getLogger("rmq")``. They are delivered on the
library's log thread "rmq-log", never on an I/O thread. The "rmq" logger has a NullHandler, so
nothing is printed unless the program configures logging (``logging.basicConfig`` or handlers
of its own), or RMQ_LOG_LEVEL is set: then "rmq" gets that level and, when the program has
configured no handler at all, a handler on standard error.
"""

import atexit
import ctypes
import logging
import os
from typing import Union

from . import _ffi

_lib = _ffi.lib

LEVELS = {"off": 0, "error": 1, "warn": 2, "warning": 2, "info": 3, "debug": 4, "trace": 5}
_TO_PYTHON = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: logging.DEBUG - 5}

logger = logging.getLogger("rmq")
logger.addHandler(logging.NullHandler())


LOG_CALLBACK = _ffi.LOG_CALLBACK


def _on_record(record, _user_data) -> None:  # type: ignore[no-untyped-def]
    try:
        r = record.contents
        target = (r.target or b"rmq").decode("utf-8", "replace")
        name = "rmq." + target.split("::", 1)[1] if "::" in target else "rmq"
        logging.getLogger(name).log(_TO_PYTHON.get(r.level, logging.INFO), "%s", _ffi.text(r.message or b""))
    except BaseException:  # never into C
        pass


_CALLBACK = LOG_CALLBACK(_on_record)  # referenced for the life of the process


def set_log_level(level: Union[str, int]) -> None:
    """Which library records reach Python logging: "off", "error", "warn", "info" (the
    default), "debug" or "trace". Python's own logger levels filter further."""
    number = LEVELS.get(level.lower()) if isinstance(level, str) else level
    if number is None:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    from .errors import check

    check(_lib.rmq_set_logger(_CALLBACK, None, number))


def log_records_dropped() -> int:
    """Records the library dropped because its log queue was full."""
    return int(_lib.rmq_log_dropped())


def _from_environment() -> None:
    env = os.environ.get("RMQ_LOG_LEVEL", "").strip().lower()
    if env not in LEVELS or env == "off":
        return
    logger.setLevel(_TO_PYTHON[LEVELS[env]])
    if not logging.getLogger().handlers and len(logger.handlers) == 1:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


@atexit.register
def _detach() -> None:
    # No call into the interpreter once it finalizes; returns when the last one has ended.
    _lib.rmq_set_logger(ctypes.cast(None, LOG_CALLBACK), None, 0)


set_log_level("info")
_from_environment()
