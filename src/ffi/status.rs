//! `rmq_status_t`: fixed numbers that never change meaning. Ranges: 0 OK; 1-99 caller errors;
//! 100-199 local I/O and timeouts; 900-999 internal; 10000 + code for broker response codes.
//! A retired number stays reserved here as a comment.
use std::ffi::{c_char, CString};

use once_cell::sync::Lazy;

use crate::error::Error;
use crate::protocol::code::{RESPONSE_CODES, SEND_RETRY_RESPONSE_CODES};

/// Result of every fallible rmq_ function. See RMQ_OK and the RMQ_ERR_ constants.
pub type rmq_status_t = i32;

/// Success.
pub const RMQ_OK: rmq_status_t = 0;
/// An argument has a wrong value (empty topic, reserved property name, bad message id, ...).
pub const RMQ_ERR_INVALID_ARGUMENT: rmq_status_t = 1;
/// A required pointer argument is NULL.
pub const RMQ_ERR_NULL_POINTER: rmq_status_t = 2;
/// A handle is not live: destroyed already, never created, or of another type.
pub const RMQ_ERR_INVALID_HANDLE: rmq_status_t = 3;
/// A string argument is not valid UTF-8.
pub const RMQ_ERR_INVALID_UTF8: rmq_status_t = 4;
/// The object's lifecycle does not allow the call (start twice, send before start or after shutdown).
pub const RMQ_ERR_INVALID_STATE: rmq_status_t = 5;
/// rmq_config_set was given a key that is not in rmq_config_keys().
pub const RMQ_ERR_UNKNOWN_CONFIG_KEY: rmq_status_t = 6;
/// rmq_config_set was given a value the key does not accept.
pub const RMQ_ERR_INVALID_CONFIG_VALUE: rmq_status_t = 7;
/// The message body is larger than producer.max-message-size.
pub const RMQ_ERR_MESSAGE_TOO_LARGE: rmq_status_t = 8;
/// The requested item (property, message id, ...) is absent.
pub const RMQ_ERR_NOT_FOUND: rmq_status_t = 9;
/// The caller's buffer is too small; the needed length was written.
pub const RMQ_ERR_BUFFER_TOO_SMALL: rmq_status_t = 10;
/// The handle was created before fork() in the parent process; create a new one in the child.
pub const RMQ_ERR_FORKED: rmq_status_t = 11;
/// An ordered send's queue selector failed: it returned an index outside the queue list, or it
/// raised (Python) or panicked (Go, Rust). Nothing was sent.
pub const RMQ_ERR_QUEUE_SELECTOR: rmq_status_t = 12;
/// No answer within the time budget.
pub const RMQ_ERR_TIMEOUT: rmq_status_t = 100;
/// A TCP connection could not be opened.
pub const RMQ_ERR_CONNECT: rmq_status_t = 101;
/// The connection closed while the request was in flight.
pub const RMQ_ERR_CONNECTION_CLOSED: rmq_status_t = 102;
/// A socket read or write failed.
pub const RMQ_ERR_IO: rmq_status_t = 103;
/// The peer sent something that does not decode.
pub const RMQ_ERR_PROTOCOL: rmq_status_t = 104;
/// No route for the topic (unknown to the name server and no auto-create template).
pub const RMQ_ERR_ROUTE_NOT_FOUND: rmq_status_t = 105;
/// A local resource ran out (memory, file descriptors, threads).
pub const RMQ_ERR_RESOURCE: rmq_status_t = 106;
/// The operation was cancelled by shutdown before it completed.
pub const RMQ_ERR_CANCELLED: rmq_status_t = 107;
/// The producer's window of async sends in flight (producer.max-in-flight-async-sends) is full:
/// the send was refused at once (producer.block-when-in-flight-full=false, or called from a
/// library callback thread) or no slot freed within producer.send-message-timeout. Nothing was
/// sent; trying again later may succeed.
pub const RMQ_ERR_IN_FLIGHT_FULL: rmq_status_t = 108;
/// A bug in rmq: a panic was caught at the C boundary.
pub const RMQ_ERR_PANIC: rmq_status_t = 900;
/// Broker answers map to RMQ_ERR_BROKER_BASE + the broker's response code.
pub const RMQ_ERR_BROKER_BASE: rmq_status_t = 10000;
/// A broker answer whose response code is outside 1..9999; rmq_last_error_broker_code() (or
/// broker_code of rmq_send_callback_params_t) has the code itself.
pub const RMQ_ERR_BROKER_OTHER: rmq_status_t = 19999;
/// Broker SYSTEM_ERROR (1).
pub const RMQ_ERR_BROKER_SYSTEM_ERROR: rmq_status_t = 10001;
/// Broker SYSTEM_BUSY (2): flow control; retriable.
pub const RMQ_ERR_BROKER_SYSTEM_BUSY: rmq_status_t = 10002;
/// Broker REQUEST_CODE_NOT_SUPPORTED (3).
pub const RMQ_ERR_BROKER_REQUEST_CODE_NOT_SUPPORTED: rmq_status_t = 10003;
/// Broker MESSAGE_ILLEGAL (13).
pub const RMQ_ERR_BROKER_MESSAGE_ILLEGAL: rmq_status_t = 10013;
/// Broker NO_PERMISSION (16).
pub const RMQ_ERR_BROKER_NO_PERMISSION: rmq_status_t = 10016;
/// Broker TOPIC_NOT_EXIST (17).
pub const RMQ_ERR_BROKER_TOPIC_NOT_EXIST: rmq_status_t = 10017;

/// Local statuses: (status, name, description).
const LOCAL_STATUSES: &[(rmq_status_t, &str, &str)] = &[
    (RMQ_OK, "RMQ_OK", "success"),
    (
        RMQ_ERR_INVALID_ARGUMENT,
        "RMQ_ERR_INVALID_ARGUMENT",
        "invalid argument",
    ),
    (
        RMQ_ERR_NULL_POINTER,
        "RMQ_ERR_NULL_POINTER",
        "NULL pointer argument",
    ),
    (
        RMQ_ERR_INVALID_HANDLE,
        "RMQ_ERR_INVALID_HANDLE",
        "handle is not live (destroyed, never created, or of another type)",
    ),
    (
        RMQ_ERR_INVALID_UTF8,
        "RMQ_ERR_INVALID_UTF8",
        "string is not valid UTF-8",
    ),
    (
        RMQ_ERR_INVALID_STATE,
        "RMQ_ERR_INVALID_STATE",
        "call not allowed in the object's current state",
    ),
    (
        RMQ_ERR_UNKNOWN_CONFIG_KEY,
        "RMQ_ERR_UNKNOWN_CONFIG_KEY",
        "unknown configuration key",
    ),
    (
        RMQ_ERR_INVALID_CONFIG_VALUE,
        "RMQ_ERR_INVALID_CONFIG_VALUE",
        "invalid configuration value",
    ),
    (
        RMQ_ERR_MESSAGE_TOO_LARGE,
        "RMQ_ERR_MESSAGE_TOO_LARGE",
        "message body over max-message-size",
    ),
    (RMQ_ERR_NOT_FOUND, "RMQ_ERR_NOT_FOUND", "not found"),
    (
        RMQ_ERR_BUFFER_TOO_SMALL,
        "RMQ_ERR_BUFFER_TOO_SMALL",
        "buffer too small",
    ),
    (
        RMQ_ERR_FORKED,
        "RMQ_ERR_FORKED",
        "handle created before fork() in the parent process",
    ),
    (
        RMQ_ERR_QUEUE_SELECTOR,
        "RMQ_ERR_QUEUE_SELECTOR",
        "the queue selector returned an index out of range, raised or panicked",
    ),
    (RMQ_ERR_TIMEOUT, "RMQ_ERR_TIMEOUT", "timed out"),
    (RMQ_ERR_CONNECT, "RMQ_ERR_CONNECT", "cannot connect"),
    (
        RMQ_ERR_CONNECTION_CLOSED,
        "RMQ_ERR_CONNECTION_CLOSED",
        "connection closed",
    ),
    (RMQ_ERR_IO, "RMQ_ERR_IO", "socket I/O error"),
    (RMQ_ERR_PROTOCOL, "RMQ_ERR_PROTOCOL", "protocol error"),
    (
        RMQ_ERR_ROUTE_NOT_FOUND,
        "RMQ_ERR_ROUTE_NOT_FOUND",
        "no route for the topic",
    ),
    (
        RMQ_ERR_RESOURCE,
        "RMQ_ERR_RESOURCE",
        "a local resource ran out (memory, file descriptors, threads)",
    ),
    (
        RMQ_ERR_CANCELLED,
        "RMQ_ERR_CANCELLED",
        "cancelled by shutdown before it completed",
    ),
    (
        RMQ_ERR_IN_FLIGHT_FULL,
        "RMQ_ERR_IN_FLIGHT_FULL",
        "too many async sends in flight (producer.max-in-flight-async-sends)",
    ),
    (
        RMQ_ERR_PANIC,
        "RMQ_ERR_PANIC",
        "internal error (panic caught at the C boundary)",
    ),
    (
        RMQ_ERR_BROKER_OTHER,
        "RMQ_ERR_BROKER_OTHER",
        "broker answered an unlisted response code",
    ),
];

/// The only place a core error becomes a status.
pub(crate) fn status_of(e: &Error) -> rmq_status_t {
    match e {
        Error::InvalidArgument(_) => RMQ_ERR_INVALID_ARGUMENT,
        Error::InvalidState(_) => RMQ_ERR_INVALID_STATE,
        Error::UnknownConfigKey(_) => RMQ_ERR_UNKNOWN_CONFIG_KEY,
        Error::InvalidConfigValue { .. } => RMQ_ERR_INVALID_CONFIG_VALUE,
        Error::MessageTooLarge { .. } => RMQ_ERR_MESSAGE_TOO_LARGE,
        Error::Timeout(_) => RMQ_ERR_TIMEOUT,
        Error::Connect { .. } => RMQ_ERR_CONNECT,
        Error::ConnectionClosed { .. } => RMQ_ERR_CONNECTION_CLOSED,
        Error::Io { .. } => RMQ_ERR_IO,
        Error::Protocol(_) => RMQ_ERR_PROTOCOL,
        Error::RouteNotFound { .. } => RMQ_ERR_ROUTE_NOT_FOUND,
        Error::Resource(_) => RMQ_ERR_RESOURCE,
        Error::Forked => RMQ_ERR_FORKED,
        Error::Cancelled(_) => RMQ_ERR_CANCELLED,
        Error::QueueSelector(_) => RMQ_ERR_QUEUE_SELECTOR,
        Error::InFlightFull(_) => RMQ_ERR_IN_FLIGHT_FULL,
        Error::Broker { code, .. } => broker_status(*code),
    }
}

fn broker_status(code: i32) -> rmq_status_t {
    if (1..10000).contains(&code) {
        RMQ_ERR_BROKER_BASE + code
    } else {
        RMQ_ERR_BROKER_OTHER
    }
}

/// One row of the status table (rmq_status_descs).
#[repr(C)]
pub struct rmq_status_desc_t {
    pub status: rmq_status_t,
    /// Static NUL-terminated name, e.g. "RMQ_ERR_TIMEOUT".
    pub name: *const c_char,
    /// Static NUL-terminated description.
    pub description: *const c_char,
}

// SAFETY: the pointers refer to leaked, immutable, process-lifetime strings.
unsafe impl Send for rmq_status_desc_t {}
unsafe impl Sync for rmq_status_desc_t {}

struct StatusTable {
    rows: Vec<rmq_status_desc_t>,
    unknown: CString,
}

static TABLE: Lazy<StatusTable> = Lazy::new(|| {
    let leak = |s: String| CString::new(s).unwrap().into_raw() as *const c_char;
    let mut rows: Vec<rmq_status_desc_t> = LOCAL_STATUSES
        .iter()
        .map(|(status, name, desc)| rmq_status_desc_t {
            status: *status,
            name: leak(name.to_string()),
            description: leak(desc.to_string()),
        })
        .collect();
    for (code, name) in RESPONSE_CODES.iter().filter(|(c, _)| *c != 0) {
        rows.push(rmq_status_desc_t {
            status: broker_status(*code),
            name: leak(format!("RMQ_ERR_BROKER_{name}")),
            description: leak(format!("broker answered {name} ({code})")),
        });
    }
    StatusTable {
        rows,
        unknown: CString::new("RMQ_ERR_UNKNOWN").unwrap(),
    }
});

fn row(status: rmq_status_t) -> Option<&'static rmq_status_desc_t> {
    TABLE.rows.iter().find(|r| r.status == status)
}

/// Every status with its name and description, for generating bindings and messages.
/// Returns a static array (never free it) and writes its length to *out_count.
#[no_mangle]
pub unsafe extern "C" fn rmq_status_descs(out_count: *mut usize) -> *const rmq_status_desc_t {
    if !out_count.is_null() {
        *out_count = TABLE.rows.len();
    }
    TABLE.rows.as_ptr()
}

/// Static NUL-terminated name of a status ("RMQ_ERR_TIMEOUT"); "RMQ_ERR_UNKNOWN" if unlisted.
#[no_mangle]
pub extern "C" fn rmq_status_name(status: rmq_status_t) -> *const c_char {
    row(status)
        .map(|r| r.name)
        .unwrap_or(TABLE.unknown.as_ptr())
}

/// Static NUL-terminated description of a status; "RMQ_ERR_UNKNOWN" if unlisted.
#[no_mangle]
pub extern "C" fn rmq_status_str(status: rmq_status_t) -> *const c_char {
    row(status)
        .map(|r| r.description)
        .unwrap_or(TABLE.unknown.as_ptr())
}

/// Whether trying the same call again (later, or on another broker) may succeed: timeouts,
/// connection failures, a full in-flight window, and the broker answers the Java producer
/// retries.
#[no_mangle]
pub extern "C" fn rmq_status_is_retriable(status: rmq_status_t) -> bool {
    matches!(
        status,
        RMQ_ERR_TIMEOUT
            | RMQ_ERR_CONNECT
            | RMQ_ERR_CONNECTION_CLOSED
            | RMQ_ERR_IO
            | RMQ_ERR_ROUTE_NOT_FOUND
            | RMQ_ERR_IN_FLIGHT_FULL
    ) || SEND_RETRY_RESPONSE_CODES
        .iter()
        .any(|c| broker_status(*c) == status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn named_broker_constants_follow_the_formula() {
        for (constant, code) in [
            (RMQ_ERR_BROKER_SYSTEM_ERROR, 1),
            (RMQ_ERR_BROKER_SYSTEM_BUSY, 2),
            (RMQ_ERR_BROKER_REQUEST_CODE_NOT_SUPPORTED, 3),
            (RMQ_ERR_BROKER_MESSAGE_ILLEGAL, 13),
            (RMQ_ERR_BROKER_NO_PERMISSION, 16),
            (RMQ_ERR_BROKER_TOPIC_NOT_EXIST, 17),
        ] {
            assert_eq!(constant, RMQ_ERR_BROKER_BASE + code);
            let name = unsafe { CStr::from_ptr(rmq_status_name(constant)) }
                .to_str()
                .unwrap();
            assert_eq!(
                name,
                format!(
                    "RMQ_ERR_BROKER_{}",
                    crate::protocol::code::response_code_name(code)
                )
            );
        }
    }

    #[test]
    fn table_has_unique_statuses_and_names() {
        let mut seen = std::collections::HashSet::new();
        for r in &TABLE.rows {
            assert!(seen.insert(r.status), "duplicate status {}", r.status);
        }
        assert!(rmq_status_is_retriable(RMQ_ERR_BROKER_SYSTEM_BUSY));
        assert!(!rmq_status_is_retriable(RMQ_ERR_BROKER_MESSAGE_ILLEGAL));
        assert!(!rmq_status_is_retriable(RMQ_ERR_INVALID_ARGUMENT));
        for s in [RMQ_ERR_FORKED, RMQ_ERR_RESOURCE, RMQ_ERR_CANCELLED] {
            assert!(!rmq_status_is_retriable(s));
            assert!(row(s).is_some(), "{s} is not in the table");
        }
        assert_eq!(status_of(&Error::Forked), RMQ_ERR_FORKED);
        assert_eq!(status_of(&Error::Resource("x".into())), RMQ_ERR_RESOURCE);
        assert_eq!(status_of(&Error::Cancelled("x".into())), RMQ_ERR_CANCELLED);
        assert!(!Error::Forked.is_retriable() && !Error::Cancelled("x".into()).is_retriable());
        let unknown = unsafe { CStr::from_ptr(rmq_status_name(4242)) };
        assert_eq!(unknown.to_str().unwrap(), "RMQ_ERR_UNKNOWN");
    }
}
