//! The library's log records, delivered to a C callback (rmq_set_logger).
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::boundary::{guard, guard_value, FfiError};
use super::callback::UserData;
use super::status::*;
use crate::log::{self, Level, Record};

/// Severity of a log record; a logger receives the records at its level and more severe ones.
pub type rmq_log_level_t = i32;
/// No records (as a logger level: the logger is removed).
pub const RMQ_LOG_OFF: rmq_log_level_t = 0;
/// Failures the library could not handle.
pub const RMQ_LOG_ERROR: rmq_log_level_t = 1;
/// Connection losses, failed route refreshes, send retries, no name server answering at start.
pub const RMQ_LOG_WARN: rmq_log_level_t = 2;
/// Connections re-established, route changes.
pub const RMQ_LOG_INFO: rmq_log_level_t = 3;
/// Connections made and closed on purpose, first routes of topics.
pub const RMQ_LOG_DEBUG: rmq_log_level_t = 4;
/// Everything.
pub const RMQ_LOG_TRACE: rmq_log_level_t = 5;

/// One log record, borrowed until the logger returns.
#[repr(C)]
pub struct rmq_log_record_t {
    /// RMQ_LOG_ERROR .. RMQ_LOG_TRACE.
    pub level: rmq_log_level_t,
    /// NUL-terminated part of the library the record comes from, e.g. "rmq::remoting".
    pub target: *const c_char,
    /// NUL-terminated UTF-8 message, without a trailing newline.
    pub message: *const c_char,
}

/// Receives log records on the library's log thread ("rmq-log"): one record at a time, never on
/// an I/O thread or a caller's thread, never while the library holds a lock. It may call rmq_
/// functions, rmq_set_logger included.
pub type rmq_log_callback_t =
    Option<unsafe extern "C" fn(record: *const rmq_log_record_t, user_data: *mut c_void)>;

struct CLogger {
    callback: unsafe extern "C" fn(*const rmq_log_record_t, *mut c_void),
    user_data: UserData,
}
// SAFETY: the header makes the caller responsible for user_data's thread safety; the logger
// only runs on the log thread.
unsafe impl Sync for CLogger {}

impl CLogger {
    fn log(&self, r: &Record) {
        let target = CString::new(r.target).unwrap_or_default();
        let message = CString::new(r.message.replace('\0', "\\0")).unwrap_or_default();
        let record = rmq_log_record_t {
            level: r.level as rmq_log_level_t,
            target: target.as_ptr(),
            message: message.as_ptr(),
        };
        // SAFETY: the caller of rmq_set_logger gave a valid function; the record and its
        // strings live until it returns.
        unsafe { (self.callback)(&record, self.user_data.0) };
    }
}

/// Sets the process's logger: `callback` receives the library's records of `level` and more
/// severe ones (RMQ_LOG_ERROR .. RMQ_LOG_TRACE), with `user_data`, on the log thread "rmq-log".
/// Without a logger the library prints nothing and writes no files, unless the environment
/// variable RMQ_LOG_LEVEL or the key client.log-level asks for records (then they go to
/// standard error); both also raise the level given here.
///
/// Records wait in a bounded queue; when the logger does not keep up, new records are dropped
/// and counted (rmq_log_dropped) and a warning says so. A NULL callback or RMQ_LOG_OFF removes
/// the logger. When this returns, the previous logger is not running and will not be called
/// again (except when called from that logger itself), so its user_data may be freed.
/// RMQ_ERR_INVALID_ARGUMENT for a level outside RMQ_LOG_OFF .. RMQ_LOG_TRACE.
#[no_mangle]
pub extern "C" fn rmq_set_logger(
    callback: rmq_log_callback_t,
    user_data: *mut c_void,
    level: rmq_log_level_t,
) -> rmq_status_t {
    guard(|| {
        let lvl = match level {
            RMQ_LOG_OFF => None,
            _ => Some(
                u8::try_from(level)
                    .ok()
                    .and_then(Level::from_u8)
                    .ok_or_else(|| {
                        FfiError::new(
                            RMQ_ERR_INVALID_ARGUMENT,
                            format!("log level {level} is not one of RMQ_LOG_OFF (0) .. RMQ_LOG_TRACE (5)"),
                        )
                    })?,
            ),
        };
        let sink = match (callback, lvl) {
            (Some(callback), Some(lvl)) => {
                let logger = Arc::new(CLogger {
                    callback,
                    user_data: UserData(user_data),
                });
                Some((Arc::new(move |r: &Record| logger.log(r)) as log::Sink, lvl))
            }
            _ => None,
        };
        log::set_sink(sink);
        Ok(())
    })
}

/// Log records dropped since the process started because the logger did not keep up.
#[no_mangle]
pub extern "C" fn rmq_log_dropped() -> u64 {
    guard_value(0, || Ok(log::dropped()))
}
