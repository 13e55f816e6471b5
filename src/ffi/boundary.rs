//! Panic boundary, last-error bookkeeping and argument conversion helpers.
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::*;

/// An error on its way to C: a status and a message for `rmq_last_error_message`.
pub(crate) struct FfiError {
    pub status: rmq_status_t,
    pub message: String,
    /// The broker's own response code when the broker refused; 0 otherwise.
    pub broker_code: i32,
}

impl FfiError {
    pub fn new(status: rmq_status_t, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
            broker_code: 0,
        }
    }
}

impl From<crate::Error> for FfiError {
    fn from(e: crate::Error) -> FfiError {
        FfiError {
            status: status_of(&e),
            message: e.to_string(),
            broker_code: e.response_code().unwrap_or(0),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

thread_local! {
    /// (status, message, broker response code or 0) of the thread's last failed call.
    static LAST_ERROR: RefCell<(rmq_status_t, CString, i32)> =
        RefCell::new((RMQ_OK, CString::default(), 0));
}

pub(crate) fn set_last_error(status: rmq_status_t, message: &str) {
    set_last_error_with_code(status, message, 0);
}

fn set_last_error_with_code(status: rmq_status_t, message: &str, broker_code: i32) {
    let msg = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = (status, msg, broker_code));
}

fn clear_last_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if e.0 != RMQ_OK {
            *e = (RMQ_OK, CString::default(), 0);
        }
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (panic caught at the C boundary): {detail}")
}

/// Runs an exported function's body: maps errors to a status and the last error, and turns a
/// panic into `RMQ_ERR_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> rmq_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            clear_last_error();
            RMQ_OK
        }
        Ok(Err(e)) => {
            set_last_error_with_code(e.status, &e.message, e.broker_code);
            e.status
        }
        Err(p) => {
            set_last_error(RMQ_ERR_PANIC, &panic_message(&*p));
            RMQ_ERR_PANIC
        }
    }
}

/// Like `guard` for functions that return a value; `fallback` on error or panic.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> FfiResult<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => {
            clear_last_error();
            v
        }
        Ok(Err(e)) => {
            set_last_error_with_code(e.status, &e.message, e.broker_code);
            fallback
        }
        Err(p) => {
            set_last_error(RMQ_ERR_PANIC, &panic_message(&*p));
            fallback
        }
    }
}

/// A required NUL-terminated UTF-8 string argument.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(FfiError::new(
            RMQ_ERR_NULL_POINTER,
            format!("{what} is NULL"),
        ));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| FfiError::new(RMQ_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8")))
}

/// An optional string argument: NULL reads as "".
pub(crate) unsafe fn arg_str_or_empty<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        Ok("")
    } else {
        arg_str(p, what)
    }
}

/// Bytes as pointer + length; NULL with length 0 is empty, never a slice from NULL. A length
/// over `isize::MAX` cannot describe a buffer: RMQ_ERR_INVALID_ARGUMENT, memory untouched.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > isize::MAX as usize {
        return Err(FfiError::new(
            RMQ_ERR_INVALID_ARGUMENT,
            format!("length {len} of {what} is over isize::MAX, so it cannot be a buffer"),
        ));
    }
    if p.is_null() {
        return Err(FfiError::new(
            RMQ_ERR_NULL_POINTER,
            format!("{what} is NULL with a length of {len}"),
        ));
    }
    // SAFETY: non-NULL, len <= isize::MAX; the caller promises len readable bytes at p.
    Ok(std::slice::from_raw_parts(p, len))
}

/// An array of `count` values at `p` (NULL only with count 0). A count whose array would span
/// more than `isize::MAX` bytes cannot describe one: RMQ_ERR_INVALID_ARGUMENT, memory untouched.
pub(crate) unsafe fn arg_array<'a, T>(p: *const T, count: usize, what: &str) -> FfiResult<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if count > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(FfiError::new(
            RMQ_ERR_INVALID_ARGUMENT,
            format!("count {count} of {what} is too large to be an array"),
        ));
    }
    if p.is_null() {
        return Err(FfiError::new(
            RMQ_ERR_NULL_POINTER,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: non-NULL, the span fits isize; the caller promises `count` readable values at p.
    Ok(std::slice::from_raw_parts(p, count))
}

/// A UTF-8 string as pointer + length (no NUL terminator needed; NULL with length 0 is "").
/// A length over `max` is refused before the memory is read. NUL and separator bytes are left
/// to the core's text rule, so both C entry points of a setter give the same answer.
pub(crate) unsafe fn arg_text_n<'a>(
    p: *const c_char,
    len: usize,
    what: &str,
    max: usize,
) -> FfiResult<&'a str> {
    if len > max {
        // Worded as the core's own length check, so both setters report it alike.
        return Err(crate::Error::InvalidArgument(format!(
            "{what} is {len} bytes, longer than {max}"
        ))
        .into());
    }
    let bytes = arg_bytes(p as *const u8, len, what)?;
    std::str::from_utf8(bytes)
        .map_err(|_| FfiError::new(RMQ_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8")))
}

/// A copy of `data` in memory of its own. Allocation failure is RMQ_ERR_RESOURCE, never an
/// abort of the process.
pub(crate) fn copy_bytes(data: &[u8], what: &str) -> FfiResult<bytes::Bytes> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len()).map_err(|_| {
        FfiError::new(
            RMQ_ERR_RESOURCE,
            format!("cannot allocate {} bytes for a copy of {what}", data.len()),
        )
    })?;
    v.extend_from_slice(data);
    Ok(v.into())
}

pub(crate) fn out_ptr<T>(p: *mut T, what: &str) -> FfiResult<*mut T> {
    if p.is_null() {
        Err(FfiError::new(
            RMQ_ERR_NULL_POINTER,
            format!("{what} is NULL"),
        ))
    } else {
        Ok(p)
    }
}

/// Writes a borrowed `{pointer, length}` view of `s`.
pub(crate) unsafe fn write_str(s: &str, out: *mut *const c_char, out_len: *mut usize) -> FfiResult {
    let out = out_ptr(out, "output pointer")?;
    let out_len = out_ptr(out_len, "output length pointer")?;
    // A non-NULL pointer even for "", so callers can pass it on without checks.
    *out = if s.is_empty() {
        c"".as_ptr()
    } else {
        s.as_ptr() as *const c_char
    };
    *out_len = s.len();
    Ok(())
}

/// The calling thread's last error message: NUL-terminated, "" after a successful call.
/// Borrowed: valid until the next rmq_ call on this thread. Never NULL.
#[no_mangle]
pub extern "C" fn rmq_last_error_message() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().1.as_ptr())
}

/// The broker's own response code of the calling thread's last failed call when a broker
/// refused it (any code, also those outside 1..9999 that map to RMQ_ERR_BROKER_OTHER); 0 when
/// the last call succeeded or failed for another reason.
#[no_mangle]
pub extern "C" fn rmq_last_error_broker_code() -> i32 {
    LAST_ERROR.with(|e| e.borrow().2)
}

/// The status of the calling thread's last failed call, RMQ_OK after a successful one.
#[no_mangle]
pub extern "C" fn rmq_last_error_status() -> rmq_status_t {
    LAST_ERROR.with(|e| e.borrow().0)
}
