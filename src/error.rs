//! The core error type. No C types here: the FFI layer maps these to `rmq_status_t` in one place.
use std::io;

use crate::protocol::code::{response_code_name, SEND_RETRY_RESPONSE_CODES};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is malformed (empty topic, reserved property name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The object is in the wrong lifecycle state for the call (not started, shut down, ...).
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("unknown configuration key '{0}'{hint}", hint = crate::suggest::config_key_hint(.0))]
    UnknownConfigKey(String),
    #[error("invalid value '{value}' for configuration key '{key}': {reason}")]
    InvalidConfigValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("message body is {size} bytes, over the {max}-byte limit (max-message-size)")]
    MessageTooLarge { size: usize, max: usize },
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("connection to {addr} closed: {reason}")]
    ConnectionClosed { addr: String, reason: String },
    #[error("i/o error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no route for topic '{topic}': {reason}")]
    RouteNotFound { topic: String, reason: String },
    /// A local resource ran out: memory, file descriptors, threads.
    #[error("out of resources: {0}")]
    Resource(String),
    /// The object was made before fork() in the parent process; make a new one in the child.
    #[error("this object was created in the parent process before fork(); create a new one in the child")]
    Forked,
    /// Shutdown came before the operation completed.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The queue selector of an ordered send failed: it chose an index outside the queue list,
    /// or it panicked (in Python: raised; in Go: panicked).
    #[error("queue selector failed: {0}")]
    QueueSelector(String),
    /// The window of async sends in flight (producer.max-in-flight-async-sends) is full and the
    /// send was refused rather than wait: fail-fast policy, a library thread, or the wait for a
    /// free slot took the whole send timeout.
    #[error("too many async sends in flight: {0}")]
    InFlightFull(String),
    #[error("{addr} answered {name} ({code}): {remark}")]
    Broker {
        code: i32,
        name: &'static str,
        remark: String,
        addr: String,
    },
}

impl Error {
    pub fn broker(code: i32, remark: impl Into<String>, addr: impl Into<String>) -> Self {
        let mut remark = remark.into();
        if let Some(hint) = crate::remoting::acl::refusal_hint(code, &remark) {
            remark = format!("{} ({hint})", remark.trim_end_matches('.'));
        }
        Error::Broker {
            code,
            name: response_code_name(code),
            remark,
            addr: addr.into(),
        }
    }

    /// The broker's response code, for errors the broker answered.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The same error again, for callers that share one outcome (single-flight lookups).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::InvalidState(m) => Error::InvalidState(m.clone()),
            Error::UnknownConfigKey(k) => Error::UnknownConfigKey(k.clone()),
            Error::InvalidConfigValue { key, value, reason } => Error::InvalidConfigValue {
                key: key.clone(),
                value: value.clone(),
                reason: reason.clone(),
            },
            Error::MessageTooLarge { size, max } => Error::MessageTooLarge {
                size: *size,
                max: *max,
            },
            Error::Timeout(m) => Error::Timeout(m.clone()),
            Error::Connect { addr, reason } => Error::Connect {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::ConnectionClosed { addr, reason } => Error::ConnectionClosed {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Error::Io { addr, source } => Error::Io {
                addr: addr.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::RouteNotFound { topic, reason } => Error::RouteNotFound {
                topic: topic.clone(),
                reason: reason.clone(),
            },
            Error::Resource(m) => Error::Resource(m.clone()),
            Error::Forked => Error::Forked,
            Error::QueueSelector(m) => Error::QueueSelector(m.clone()),
            Error::InFlightFull(m) => Error::InFlightFull(m.clone()),
            Error::Cancelled(m) => Error::Cancelled(m.clone()),
            Error::Broker {
                code,
                name,
                remark,
                addr,
            } => Error::Broker {
                code: *code,
                name,
                remark: remark.clone(),
                addr: addr.clone(),
            },
        }
    }

    /// Failures of the transport rather than answers: a retry elsewhere may succeed.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Timeout(_)
                | Error::Connect { .. }
                | Error::ConnectionClosed { .. }
                | Error::Io { .. }
        )
    }

    /// Whether trying again (on another broker) may succeed, as the Java producer decides.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Broker { code, .. } => SEND_RETRY_RESPONSE_CODES.contains(code),
            Error::RouteNotFound { .. } => true,
            e => e.is_transport(),
        }
    }
}
