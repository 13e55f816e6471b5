"""Loads librmq and declares every function of include/rmq.h for ctypes.

Handles are declared as ``c_void_p`` (Python ``int`` or ``None``), so a 64-bit handle is never
truncated and a NULL handle is ``None``. Borrowed ``{pointer, length}`` views are read with
:func:`view`. The library is loaded with :class:`ctypes.CDLL`, which releases the GIL on every
call, so blocking calls (sends, queries, shutdown) let other Python threads run.
"""

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    byref,
    c_bool,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

#: The one place the expected C ABI version lives: RMQ_VERSION_NUMBER of include/rmq.h
#: (MAJOR * 1000000 + MINOR * 1000 + PATCH).
EXPECTED_VERSION_NUMBER = 1_000

#: Environment variable naming the library file to load.
LIBRARY_ENV = "RMQ_LIBRARY"

if sys.platform == "darwin":
    _LIB_FILE = "librmq.dylib"
elif sys.platform == "win32":
    _LIB_FILE = "rmq.dll"
else:
    _LIB_FILE = "librmq.so"

status_t = c_int32
send_status_t = c_int32
handle_t = c_void_p  # rmq_config_t*, rmq_message_t*, rmq_producer_t*, rmq_send_result_t*
_out_handle = POINTER(c_void_p)
_out_view = POINTER(c_void_p)  # const char ** / const uint8_t ** (not NUL-terminated)
_out_size = POINTER(c_size_t)


class ConfigKeyT(Structure):
    """rmq_config_key_t."""

    _fields_ = [("name", c_char_p), ("default_value", c_char_p), ("description", c_char_p)]


class StatusDescT(Structure):
    """rmq_status_desc_t."""

    _fields_ = [("status", status_t), ("name", c_char_p), ("description", c_char_p)]


class SendCallbackParamsT(Structure):
    """rmq_send_callback_params_t (borrowed until the callback returns)."""

    _fields_ = [
        ("status", status_t),
        ("result", c_void_p),
        ("error_message", c_char_p),
        ("broker_code", c_int32),
    ]


class CompletionT(Structure):
    """rmq_completion_t: one result of rmq_completion_queue_poll (a plain value)."""

    _fields_ = [
        ("user_tag", c_uint64),
        ("status", status_t),
        ("broker_code", c_int32),
        ("send_status", send_status_t),
        ("queue_id", c_int32),
        ("queue_offset", c_int64),
        ("msg_id", ctypes.c_char * 64),
        ("offset_msg_id", ctypes.c_char * 64),
        ("topic", ctypes.c_char * 128),
        ("broker_name", ctypes.c_char * 128),
        ("error_message", ctypes.c_char * 256),
    ]


#: rmq_send_callback_t
SEND_CALLBACK = CFUNCTYPE(None, POINTER(SendCallbackParamsT), c_void_p)


class RequestCallbackParamsT(Structure):
    """rmq_request_callback_params_t (the reply is the callback's to free)."""

    _fields_ = [
        ("status", status_t),
        ("reply", c_void_p),
        ("error_message", c_char_p),
        ("broker_code", c_int32),
    ]


#: rmq_request_callback_t
REQUEST_CALLBACK = CFUNCTYPE(None, POINTER(RequestCallbackParamsT), c_void_p)


class MessageQueueT(Structure):
    """rmq_message_queue_t (views borrowed as the header says)."""

    _fields_ = [
        ("topic", c_void_p),
        ("topic_len", c_size_t),
        ("broker_name", c_void_p),
        ("broker_name_len", c_size_t),
        ("queue_id", c_int32),
    ]


#: rmq_queue_select_fn
QUEUE_SELECT_FN = CFUNCTYPE(c_int32, POINTER(MessageQueueT), c_size_t, c_void_p, c_void_p)


class QueueSelectorT(Structure):
    """rmq_queue_selector_t."""

    _fields_ = [
        ("kind", c_int32),
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("select", QUEUE_SELECT_FN),
        ("arg", c_void_p),
    ]


class SendResultViewT(Structure):
    """rmq_send_result_view_t (views borrowed while the result lives)."""

    _fields_ = [
        ("status", c_int32),
        ("msg_id", c_void_p),
        ("msg_id_len", c_size_t),
        ("offset_msg_id", c_void_p),
        ("offset_msg_id_len", c_size_t),
        ("topic", c_void_p),
        ("topic_len", c_size_t),
        ("broker_name", c_void_p),
        ("broker_name_len", c_size_t),
        ("queue_id", c_int32),
        ("queue_offset", c_int64),
        ("transaction_id", c_void_p),
        ("transaction_id_len", c_size_t),
        ("region_id", c_void_p),
        ("region_id_len", c_size_t),
    ]


class LogRecordT(Structure):
    """rmq_log_record_t (borrowed until the logger returns)."""

    _fields_ = [("level", c_int32), ("target", c_char_p), ("message", c_char_p)]


#: rmq_log_callback_t
LOG_CALLBACK = CFUNCTYPE(None, POINTER(LogRecordT), c_void_p)


class ConsumeContextT(Structure):
    """rmq_consume_context_t (borrowed until the listener returns)."""

    _fields_ = [("delay_level", c_int32)]


consume_status_t = c_int32


class PropertyViewT(Structure):
    """rmq_property_view_t (borrowed from its batch)."""

    _fields_ = [("name", c_void_p), ("name_len", c_size_t), ("value", c_void_p), ("value_len", c_size_t)]


class ReceivedViewT(Structure):
    """rmq_received_view_t: every field of a polled message (borrowed from its batch)."""

    _fields_ = [
        ("message", c_void_p),
        ("topic", c_void_p),
        ("topic_len", c_size_t),
        ("tags", c_void_p),
        ("tags_len", c_size_t),
        ("keys", c_void_p),
        ("keys_len", c_size_t),
        ("body", c_void_p),
        ("body_len", c_size_t),
        ("msg_id", c_void_p),
        ("msg_id_len", c_size_t),
        ("offset_msg_id", c_void_p),
        ("offset_msg_id_len", c_size_t),
        ("broker_name", c_void_p),
        ("broker_name_len", c_size_t),
        ("properties", POINTER(PropertyViewT)),
        ("property_count", c_size_t),
        ("queue_offset", c_int64),
        ("born_timestamp", c_int64),
        ("store_timestamp", c_int64),
        ("queue_id", c_int32),
        ("reconsume_times", c_int32),
    ]

#: rmq_message_listener_t: (const rmq_received_message_t *const *messages, size_t count,
#: rmq_consume_context_t *context, void *user_data) -> rmq_consume_status_t
MESSAGE_LISTENER = CFUNCTYPE(consume_status_t, POINTER(c_void_p), c_size_t, POINTER(ConsumeContextT), c_void_p)

transaction_state_t = c_int32
#: rmq_transaction_checker_t: (const rmq_received_message_t *message, void *user_data)
TRANSACTION_CHECKER = CFUNCTYPE(transaction_state_t, c_void_p, c_void_p)
#: rmq_local_transaction_t: (const rmq_message_t *message, const rmq_send_result_t *result,
#: void *arg)
LOCAL_TRANSACTION = CFUNCTYPE(transaction_state_t, c_void_p, c_void_p, c_void_p)


class ConsumeOrderlyContextT(Structure):
    """rmq_consume_orderly_context_t (borrowed until the orderly listener returns)."""

    _fields_ = [("suspend_millis", c_int64)]


#: rmq_orderly_listener_t: as MESSAGE_LISTENER with an rmq_consume_orderly_context_t.
ORDERLY_LISTENER = CFUNCTYPE(
    consume_status_t, POINTER(c_void_p), c_size_t, POINTER(ConsumeOrderlyContextT), c_void_p
)

#: name -> (restype, argtypes), in the order of include/rmq.h.
SIGNATURES = {
    "rmq_last_error_message": (c_char_p, []),
    "rmq_last_error_status": (status_t, []),
    "rmq_last_error_broker_code": (c_int32, []),
    "rmq_config_create": (handle_t, []),
    "rmq_config_destroy": (None, [handle_t]),
    "rmq_config_set": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_config_get": (status_t, [handle_t, c_char_p, c_void_p, c_size_t, _out_size]),
    "rmq_config_keys": (POINTER(ConfigKeyT), [_out_size]),
    "rmq_message_create": (handle_t, []),
    "rmq_message_destroy": (None, [handle_t]),
    "rmq_message_set_topic": (status_t, [handle_t, c_char_p]),
    "rmq_message_set_topic_n": (status_t, [handle_t, c_char_p, c_size_t]),
    "rmq_message_set_tags": (status_t, [handle_t, c_char_p]),
    "rmq_message_set_tags_n": (status_t, [handle_t, c_char_p, c_size_t]),
    "rmq_message_set_keys": (status_t, [handle_t, c_char_p]),
    "rmq_message_set_keys_n": (status_t, [handle_t, c_char_p, c_size_t]),
    "rmq_message_set_body": (status_t, [handle_t, c_void_p, c_size_t]),
    "rmq_message_set_property": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_message_set_property_n": (status_t, [handle_t, c_char_p, c_size_t, c_char_p, c_size_t]),
    "rmq_message_topic": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_tags": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_keys": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_body": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_property": (status_t, [handle_t, c_char_p, _out_view, _out_size]),
    "rmq_message_property_count": (status_t, [handle_t, _out_size]),
    "rmq_message_property_at": (
        status_t,
        [handle_t, c_size_t, _out_view, _out_size, _out_view, _out_size],
    ),
    "rmq_message_user_property_count": (status_t, [handle_t, _out_size]),
    "rmq_message_user_property_at": (
        status_t,
        [handle_t, c_size_t, _out_view, _out_size, _out_view, _out_size],
    ),
    "rmq_message_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_offset_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_message_queue_id": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_message_queue_offset": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_message_store_timestamp": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_message_born_timestamp": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_message_set_delay_level": (status_t, [handle_t, c_int32]),
    "rmq_message_delay_level": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_message_set_delay_ms": (status_t, [handle_t, c_int64]),
    "rmq_message_set_delay_sec": (status_t, [handle_t, c_int64]),
    "rmq_message_set_deliver_time_ms": (status_t, [handle_t, c_int64]),
    "rmq_producer_create": (status_t, [handle_t, _out_handle]),
    "rmq_producer_start": (status_t, [handle_t]),
    "rmq_producer_send_sync": (status_t, [handle_t, handle_t, _out_handle]),
    "rmq_producer_send_async": (status_t, [handle_t, handle_t, SEND_CALLBACK, c_void_p]),
    "rmq_producer_send_oneway": (status_t, [handle_t, handle_t]),
    "rmq_completion_queue_new": (status_t, [c_size_t, _out_handle]),
    "rmq_producer_send_async_queued": (status_t, [handle_t, handle_t, handle_t, c_uint64]),
    "rmq_completion_queue_poll": (
        status_t,
        [handle_t, POINTER(CompletionT), c_size_t, c_int32, _out_size],
    ),
    "rmq_completion_queue_fd": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_completion_queue_counts": (status_t, [handle_t, _out_size, _out_size]),
    "rmq_completion_queue_destroy": (status_t, [handle_t]),
    "rmq_producer_view_message": (status_t, [handle_t, c_char_p, _out_handle]),
    "rmq_producer_query_message": (
        status_t,
        [handle_t, c_char_p, c_char_p, c_int32, c_int64, c_int64, _out_handle, c_size_t, _out_size],
    ),
    "rmq_producer_send_batch": (status_t, [handle_t, POINTER(c_void_p), c_size_t, _out_handle]),
    "rmq_producer_send_batch_async": (
        status_t,
        [handle_t, POINTER(c_void_p), c_size_t, SEND_CALLBACK, c_void_p],
    ),
    "rmq_producer_split_batch": (
        status_t,
        [handle_t, POINTER(c_void_p), c_size_t, POINTER(c_size_t), c_size_t, _out_size],
    ),
    "rmq_producer_send_sync_select": (
        status_t,
        [handle_t, handle_t, POINTER(QueueSelectorT), _out_handle],
    ),
    "rmq_producer_send_async_select": (
        status_t,
        [handle_t, handle_t, POINTER(QueueSelectorT), SEND_CALLBACK, c_void_p],
    ),
    "rmq_producer_send_sync_to_queue": (
        status_t,
        [handle_t, handle_t, POINTER(MessageQueueT), _out_handle],
    ),
    "rmq_producer_send_async_to_queue": (
        status_t,
        [handle_t, handle_t, POINTER(MessageQueueT), SEND_CALLBACK, c_void_p],
    ),
    "rmq_producer_shutdown": (status_t, [handle_t]),
    "rmq_producer_destroy": (status_t, [handle_t]),
    "rmq_send_result_status": (status_t, [handle_t, POINTER(send_status_t)]),
    "rmq_send_result_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_send_result_offset_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_send_result_topic": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_send_result_broker_name": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_send_result_queue_id": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_send_result_queue_offset": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_send_result_message_count": (status_t, [handle_t, _out_size]),
    "rmq_send_result_msg_id_at": (status_t, [handle_t, c_size_t, _out_view, _out_size]),
    "rmq_send_result_offset_msg_id_at": (status_t, [handle_t, c_size_t, _out_view, _out_size]),
    "rmq_send_result_clone": (status_t, [handle_t, _out_handle]),
    "rmq_send_result_get": (status_t, [handle_t, POINTER(SendResultViewT)]),
    "rmq_send_result_destroy": (None, [handle_t]),
    "rmq_producer_request": (status_t, [handle_t, handle_t, c_int64, _out_handle]),
    "rmq_producer_request_async": (status_t, [handle_t, handle_t, c_int64, REQUEST_CALLBACK, c_void_p]),
    "rmq_received_message_create_reply": (status_t, [handle_t, c_void_p, c_size_t, _out_handle]),
    "rmq_message_create_reply": (status_t, [c_char_p, c_size_t, c_void_p, c_size_t, _out_handle]),
    "rmq_push_consumer_create": (status_t, [handle_t, _out_handle]),
    "rmq_push_consumer_subscribe": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_push_consumer_subscribe_sql92": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_push_consumer_set_listener": (status_t, [handle_t, MESSAGE_LISTENER, c_void_p]),
    "rmq_push_consumer_set_orderly_listener": (status_t, [handle_t, ORDERLY_LISTENER, c_void_p]),
    "rmq_push_consumer_start": (status_t, [handle_t]),
    "rmq_push_consumer_set_poll_mode": (status_t, [handle_t]),
    "rmq_push_consumer_poll": (status_t, [handle_t, c_size_t, c_int64, _out_handle]),
    "rmq_received_batch_count": (status_t, [handle_t, _out_size]),
    "rmq_received_batch_at": (status_t, [handle_t, c_size_t, _out_handle]),
    "rmq_received_batch_views": (status_t, [handle_t, POINTER(POINTER(ReceivedViewT)), _out_size]),
    "rmq_received_batch_ack": (status_t, [handle_t]),
    "rmq_received_batch_ack_each": (status_t, [handle_t, POINTER(consume_status_t), POINTER(c_int32), c_size_t]),
    "rmq_received_batch_destroy": (status_t, [handle_t]),
    "rmq_push_consumer_shutdown": (status_t, [handle_t]),
    "rmq_push_consumer_destroy": (status_t, [handle_t]),
    "rmq_received_message_topic": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_tags": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_keys": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_body": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_offset_msg_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_broker_name": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_received_message_property": (status_t, [handle_t, c_char_p, _out_view, _out_size]),
    "rmq_received_message_property_count": (status_t, [handle_t, _out_size]),
    "rmq_received_message_property_at": (
        status_t,
        [handle_t, c_size_t, _out_view, _out_size, _out_view, _out_size],
    ),
    "rmq_received_message_queue_id": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_received_message_queue_offset": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_received_message_reconsume_times": (status_t, [handle_t, POINTER(c_int32)]),
    "rmq_received_message_born_timestamp": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_received_message_store_timestamp": (status_t, [handle_t, POINTER(c_int64)]),
    "rmq_lite_pull_consumer_create": (status_t, [handle_t, _out_handle]),
    "rmq_lite_pull_consumer_subscribe": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_lite_pull_consumer_subscribe_sql92": (status_t, [handle_t, c_char_p, c_char_p]),
    "rmq_lite_pull_consumer_assign": (status_t, [handle_t, POINTER(MessageQueueT), c_size_t]),
    "rmq_lite_pull_consumer_start": (status_t, [handle_t]),
    "rmq_lite_pull_consumer_fetch_message_queues": (status_t, [handle_t, c_char_p, _out_handle]),
    "rmq_lite_pull_consumer_assignment": (status_t, [handle_t, _out_handle]),
    "rmq_message_queue_list_views": (status_t, [handle_t, POINTER(POINTER(MessageQueueT)), _out_size]),
    "rmq_message_queue_list_destroy": (status_t, [handle_t]),
    "rmq_lite_pull_consumer_poll": (status_t, [handle_t, c_int64, _out_handle]),
    "rmq_lite_pull_consumer_commit": (status_t, [handle_t]),
    "rmq_lite_pull_consumer_commit_offsets": (
        status_t,
        [handle_t, POINTER(MessageQueueT), POINTER(c_int64), c_size_t],
    ),
    "rmq_lite_pull_consumer_committed": (status_t, [handle_t, POINTER(MessageQueueT), POINTER(c_int64)]),
    "rmq_lite_pull_consumer_seek": (status_t, [handle_t, POINTER(MessageQueueT), c_int64]),
    "rmq_lite_pull_consumer_seek_to_begin": (status_t, [handle_t, POINTER(MessageQueueT)]),
    "rmq_lite_pull_consumer_seek_to_end": (status_t, [handle_t, POINTER(MessageQueueT)]),
    "rmq_lite_pull_consumer_seek_to_timestamp": (status_t, [handle_t, POINTER(MessageQueueT), c_int64]),
    "rmq_lite_pull_consumer_offset_for_timestamp": (
        status_t,
        [handle_t, POINTER(MessageQueueT), c_int64, POINTER(c_int64)],
    ),
    "rmq_lite_pull_consumer_pause": (status_t, [handle_t, POINTER(MessageQueueT), c_size_t]),
    "rmq_lite_pull_consumer_resume": (status_t, [handle_t, POINTER(MessageQueueT), c_size_t]),
    "rmq_lite_pull_consumer_shutdown": (status_t, [handle_t]),
    "rmq_lite_pull_consumer_destroy": (status_t, [handle_t]),
    "rmq_status_descs": (POINTER(StatusDescT), [_out_size]),
    "rmq_status_name": (c_char_p, [status_t]),
    "rmq_send_status_name": (c_char_p, [send_status_t]),
    "rmq_status_str": (c_char_p, [status_t]),
    "rmq_status_is_retriable": (c_bool, [status_t]),
    "rmq_set_logger": (status_t, [LOG_CALLBACK, c_void_p, c_int32]),
    "rmq_log_dropped": (c_uint64, []),
    "rmq_metrics_prometheus": (status_t, [c_void_p, c_size_t, _out_size]),
    "rmq_metrics_value": (status_t, [c_char_p, c_char_p, c_char_p, POINTER(c_uint64)]),
    "rmq_trace_dropped": (c_uint64, []),
    "rmq_transaction_state_name": (c_char_p, [transaction_state_t]),
    "rmq_transaction_producer_create": (status_t, [handle_t, TRANSACTION_CHECKER, c_void_p, _out_handle]),
    "rmq_transaction_producer_start": (status_t, [handle_t]),
    "rmq_transaction_producer_send": (
        status_t,
        [handle_t, handle_t, LOCAL_TRANSACTION, c_void_p, POINTER(transaction_state_t), _out_handle],
    ),
    "rmq_transaction_producer_shutdown": (status_t, [handle_t]),
    "rmq_transaction_producer_destroy": (status_t, [handle_t]),
    "rmq_send_result_transaction_id": (status_t, [handle_t, _out_view, _out_size]),
    "rmq_version": (c_char_p, []),
    "rmq_version_number": (c_uint32, []),
}


def _candidates():
    """$RMQ_LIBRARY alone when set; else the library inside the installed package (the wheel
    puts it there as ``_librmq*``); else the build of the repository this file sits in."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    bundled = sorted(here.glob("_librmq*.so")) + sorted(here.glob("_librmq*.pyd"))
    bundled += sorted(here.glob("_librmq*.dylib"))
    repo = here.parent.parent.parent
    return bundled + [repo / "target" / "release" / _LIB_FILE, repo / "target" / "debug" / _LIB_FILE]


def _load():
    tried = []
    for path in _candidates():
        if not path.is_file():
            tried.append(f"{path} (no such file)")
            continue
        try:
            return ctypes.CDLL(str(path)), path
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError(
        "rmq: cannot load the rmq C library; tried:\n  "
        + "\n  ".join(tried)
        + "\nInstall the package with `pip install ./bindings/python` (it builds the library"
        f" into the wheel), or build it with `cargo build --release`, or set {LIBRARY_ENV} to"
        " the full path of the library file."
    )


lib, library_path = _load()

for _name, (_restype, _argtypes) in SIGNATURES.items():
    try:
        _fn = getattr(lib, _name)
    except AttributeError:
        raise ImportError(f"rmq: {library_path} has no function {_name}; is it an old build?") from None
    _fn.restype = _restype
    _fn.argtypes = _argtypes
del _name, _restype, _argtypes, _fn

version_number = lib.rmq_version_number()
version = lib.rmq_version().decode()
if version_number != EXPECTED_VERSION_NUMBER:
    raise ImportError(
        f"rmq: {library_path} is C ABI version {version} ({version_number}), "
        f"but this package expects {EXPECTED_VERSION_NUMBER}"
    )


def text(raw: bytes) -> str:
    """Decodes UTF-8 text coming out of the library."""
    return raw.decode("utf-8", errors="replace")


def view(fn, *args) -> bytes:
    """Calls an ``rmq_*(..., const char **out, size_t *out_len)`` getter; returns a copy of the
    view. Raises via :func:`errors.check`; callers hold the owning object's lock."""
    from .errors import check

    ptr = c_void_p()
    length = c_size_t()
    check(fn(*args, byref(ptr), byref(length)))
    if not length.value:
        return b""
    return ctypes.string_at(ptr.value, length.value)


def text_n(value, what: str):
    """A Python ``str`` as ``(UTF-8 bytes, length)`` for the library's pointer + length (``_n``)
    functions. Nothing is cut: a NUL inside reaches the library, which refuses it with
    RMQ_ERR_INVALID_ARGUMENT like the other bytes its rules forbid. TypeError for non-str."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    return raw, len(raw)


def c_str(value, what: str) -> bytes:
    """A Python ``str`` as NUL-terminated UTF-8 for C; TypeError/ValueError before any C call.
    For arguments the library only takes NUL-terminated (configuration, ids, queries): a NUL
    inside would make C read a shorter string, so it is refused here."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value.encode("utf-8")


class Closeable:
    """close() on leaving a with-block and, as a safety net, on garbage collection."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
