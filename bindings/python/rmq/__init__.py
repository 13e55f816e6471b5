"""rmq: Apache RocketMQ client for Python, a thin ctypes wrapper over librmq's C ABI.

    import rmq
    with rmq.Producer({"name-server": "127.0.0.1:9876", "producer.group": "G"}) as p:
        r = p.send(rmq.Message("TopicA", b"hello", tags="t", keys=["k1"]))
        print(r.msg_id, r.offset_msg_id, r.queue_id, r.queue_offset)

The native library is the one installed inside the package (``pip install ./bindings/python``
builds it into the wheel). $RMQ_LIBRARY, when set, names another library file to load instead;
in a source checkout without an installed wheel, the repository's target/release build is used.
"""

from . import _ffi
from ._config import Config, ConfigKey, config_keys
from .errors import (
    STATUS_TABLE,
    BrokerError,
    ConfigError,
    ForkedError,
    InternalError,
    InvalidArgumentError,
    InvalidHandleError,
    InvalidStateError,
    MessageTooLargeError,
    NotFoundError,
    OperationCancelledError,
    ResourceError,
    RmqConnectionError,
    RmqError,
    RmqTimeoutError,
    Status,
    TransportError,
    error_for,
    is_retriable,
    status_name,
)
from ._log import log_records_dropped, set_log_level
from .metrics import metrics_text, metrics_value, trace_records_dropped
from .consumer import (
    ConsumeOrderlyStatus,
    ConsumeStatus,
    PushConsumer,
    ReceivedBatch,
    ReceivedMessage,
    ReconsumeLater,
    SuspendCurrentQueue,
)
from .lite_pull import LitePullConsumer
from .message import Message
from .ordered import HashSelector, MessageQueue, RandomSelector, RoundRobinSelector
from .producer import Producer, SendFuture, SendResult, SendStatus
from .completion_queue import Completion, CompletionQueue
from .transaction import TransactionProducer, TransactionSendResult, TransactionState
from .request import RequestFuture, create_reply

#: Version of the loaded C library, e.g. "0.1.0", and its number (MAJOR*1000000+MINOR*1000+PATCH).
library_version = _ffi.version
library_version_number = _ffi.version_number
#: Path of the loaded C library.
library_path = str(_ffi.library_path)

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "Completion",
    "CompletionQueue",
    "Config",
    "ConfigError",
    "ConfigKey",
    "ConsumeOrderlyStatus",
    "ConsumeStatus",
    "ForkedError",
    "HashSelector",
    "InternalError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "InvalidStateError",
    "LitePullConsumer",
    "Message",
    "MessageQueue",
    "MessageTooLargeError",
    "NotFoundError",
    "OperationCancelledError",
    "Producer",
    "PushConsumer",
    "ReceivedBatch",
    "ReceivedMessage",
    "ReconsumeLater",
    "RequestFuture",
    "ResourceError",
    "RandomSelector",
    "RmqConnectionError",
    "RmqError",
    "RmqTimeoutError",
    "RoundRobinSelector",
    "STATUS_TABLE",
    "SendFuture",
    "SendResult",
    "SendStatus",
    "Status",
    "SuspendCurrentQueue",
    "TransactionProducer",
    "TransactionSendResult",
    "TransactionState",
    "TransportError",
    "config_keys",
    "create_reply",
    "error_for",
    "log_records_dropped",
    "metrics_text",
    "metrics_value",
    "is_retriable",
    "library_path",
    "library_version",
    "library_version_number",
    "set_log_level",
    "status_name",
    "trace_records_dropped",
]
