//! rmq: an Apache RocketMQ client speaking the classic remoting protocol, with a Rust API and a
//! C ABI (`include/rmq.h`) that the Python and Go packages wrap.
//!
//! Layout: `remoting` (codec, connections), `protocol` (codes, headers, bodies, messages),
//! `client` (instance: routes, name servers, heartbeats), `producer`, and `ffi` (the only place
//! with `extern "C"`).
pub mod client;
pub mod config;
pub mod consumer;
pub mod error;
pub mod executor;
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
pub mod metrics;
pub mod producer;
pub mod protocol;
pub mod remoting;
pub mod runtime;
pub mod single_flight;
pub mod suggest;
pub mod trace;

pub use client::MessageQueue;
pub use config::{ClientConfig, Config, ConsumerConfig, ProducerConfig};
pub use consumer::{
    ConsumeResult, ExpressionType, LitePullConsumer, OrderlyResult, PushConsumer, ReceivedBatch,
};
pub use error::{Error, Result};
pub use producer::completion_queue::{Completed, CompletionQueue};
pub use producer::{
    LocalTransactionState, Producer, QueueSelector, SendResult, SendStatus, TransactionProducer,
    TransactionSendResult,
};
pub use protocol::message::{Message, MessageExt};
