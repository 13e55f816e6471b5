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
    #[error("unknown configuration key '{0}'")]
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
    /// A local resource ran out (memory, file descriptors, threads).
    #[error("out of resources: {0}")]
    Resource(String),
    /// The handle was created before fork() in the parent process.
    #[error(
        "the handle was created before fork() in the parent process; create a new one in the child"
    )]
    Forked,
    /// Shutdown cancelled the operation before it completed.
    #[error("cancelled by shutdown: {0}")]
    Cancelled(String),
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
        Error::Broker {
            code,
            name: response_code_name(code),
            remark: remark.into(),
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
