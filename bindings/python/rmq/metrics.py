"""Client metrics and the message trace drop count.

:func:`metrics_text` returns every metric of the process in the Prometheus text exposition
format (serve it from an HTTP handler as ``text/plain; version=0.0.4``); :func:`metrics_value`
reads one family for one topic. Counters count from the start of the process, over all of its
producers and consumers (labels topic and broker; consume families also group, the lag also
queue). Families: rmq_messages_sent_total, rmq_bytes_sent_total, rmq_send_errors_total,
rmq_send_retries_total, rmq_sends_in_flight, rmq_send_latency_seconds (histogram),
rmq_messages_consumed_total, rmq_bytes_consumed_total, rmq_consume_failures_total,
rmq_consume_lag and rmq_trace_records_dropped_total.
"""

import ctypes
from ctypes import byref, c_size_t, c_uint64
from typing import Optional

from . import _ffi
from .errors import Status, check

_lib = _ffi.lib


def metrics_text() -> str:
    """Every metric of the process, in the Prometheus text format."""
    needed = c_size_t()
    cap = 16384
    while True:
        buf = ctypes.create_string_buffer(cap)
        status = _lib.rmq_metrics_prometheus(buf, cap, byref(needed))
        if status == 0:
            return buf.raw[: needed.value].decode("utf-8", errors="replace")
        if status != Status.RMQ_ERR_BUFFER_TOO_SMALL:
            check(status)
        cap = needed.value + 4096  # series may be added meanwhile


def metrics_value(name: str, topic: str, broker: Optional[str] = None) -> int:
    """The value of the family ``name`` (or "rmq_send_latency_seconds_count") for ``topic``,
    summed over brokers, groups and queues, or over those of ``broker`` only. 0 for a topic
    nothing happened to; :class:`rmq.InvalidArgumentError` for an unknown name."""
    out = c_uint64()
    b = None if broker is None else _ffi.c_str(broker, "broker")
    check(_lib.rmq_metrics_value(_ffi.c_str(name, "name"), _ffi.c_str(topic, "topic"), b, byref(out)))
    return int(out.value)


def trace_records_dropped() -> int:
    """Message trace records dropped because a trace queue was full (client.trace-enabled)."""
    return int(_lib.rmq_trace_dropped())
