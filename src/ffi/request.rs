//! rmq_producer_request*, and the responder's rmq_*_create_reply: request-reply over C.
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::boundary::*;
use super::callback::UserData;
use super::consumer::{rmq_received_message_t, RECEIVED};
use super::message::{body_arg, rmq_message_t, FfiMessage, MESSAGES};
use super::producer::{producer_of, rmq_producer_t, FfiProducer};
use super::status::*;
use crate::producer::request::{create_reply, create_reply_from_properties, PreparedRequest};
use crate::protocol::message::{Message, MessageExt};

/// What a request callback receives.
#[repr(C)]
pub struct rmq_request_callback_params_t {
    /// RMQ_OK with a reply; RMQ_ERR_TIMEOUT when no reply came in time (error_message says so);
    /// RMQ_ERR_CANCELLED when the producer shut down first; or why the request could not be sent.
    pub status: rmq_status_t,
    /// The reply when status is RMQ_OK, else NULL. Owned by the callback: it must eventually
    /// free it with rmq_message_destroy (it may keep it past the callback, on any thread).
    pub reply: *mut rmq_message_t,
    /// NUL-terminated error message; "" when status is RMQ_OK. Borrowed until the callback
    /// returns. Never NULL.
    pub error_message: *const c_char,
    /// The broker's own response code when a broker refused the request's send; 0 otherwise.
    pub broker_code: i32,
}

/// Request completion. Runs exactly once per request that rmq_producer_request_async accepted,
/// on a callback thread of the producer's client instance ("rmq-callback-N"), as an async
/// send's callback: never on an I/O thread, never while the library holds a lock. Shutdown
/// completes pending requests with RMQ_ERR_CANCELLED.
pub type rmq_request_callback_t = Option<
    unsafe extern "C" fn(params: *const rmq_request_callback_params_t, user_data: *mut c_void),
>;

fn timeout_of(timeout_ms: i64) -> FfiResult<Duration> {
    if timeout_ms <= 0 {
        return Err(crate::Error::InvalidArgument(format!(
            "request timeout must be at least 1 ms, not {timeout_ms}"
        ))
        .into());
    }
    Ok(Duration::from_millis(timeout_ms as u64))
}

/// Checks and encodes the request under the message's lock, released before anything is sent.
fn prepare(
    p: &FfiProducer,
    message: *const rmq_message_t,
    timeout_ms: i64,
) -> FfiResult<PreparedRequest> {
    let timeout = timeout_of(timeout_ms)?;
    let m: Arc<Mutex<FfiMessage>> = MESSAGES.get(message)?;
    let m = m.lock();
    Ok(p.producer.prepare_request(&m.message, timeout)?)
}

fn adopt(reply: MessageExt) -> *mut rmq_message_t {
    MESSAGES.insert(Arc::new(Mutex::new(FfiMessage::from_stored(reply))))
}

/// Sends `request` (borrowed for the call; not changed) as a request and waits at most
/// `timeout_ms` (> 0) for its reply, which a responder sends with a message made by
/// rmq_received_message_create_reply (or a Java responder with MessageUtil.createReplyMessage).
/// The request carries the properties CORRELATION_ID, REPLY_TO_CLIENT and TTL, as Java's
/// DefaultMQProducer.request. Blocks the calling thread.
/// Returns RMQ_ERR_TIMEOUT when no reply came in time ("... was sent, but no reply came within
/// N ms"), RMQ_ERR_CANCELLED when the producer shut down meanwhile, or the send's error.
/// Ownership: on success *out_reply is owned by the caller; free it with rmq_message_destroy.
/// Read it with the rmq_message_ getters (body, properties, topic "<cluster>_REPLY_TOPIC",
/// born and store timestamps).
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_request(
    producer: *mut rmq_producer_t,
    request: *const rmq_message_t,
    timeout_ms: i64,
    out_reply: *mut *mut rmq_message_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_reply, "out_reply")?;
        let p = producer_of(producer)?;
        let prepared = prepare(&p, request, timeout_ms)?;
        let reply = p.producer.request_prepared_blocking(&prepared)?;
        *out = adopt(reply);
        Ok(())
    })
}

/// rmq_producer_request in the background: returns at once; `callback` runs exactly once with
/// the reply or the error (see rmq_request_callback_t), with `user_data`, which must be safe to
/// use from that thread. A pending request holds a slot of producer.max-in-flight-async-sends
/// as an async send does. Invalid input or a producer that is not running fail here, and the
/// callback is then not called. `request` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_request_async(
    producer: *mut rmq_producer_t,
    request: *const rmq_message_t,
    timeout_ms: i64,
    callback: rmq_request_callback_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let Some(callback) = callback else {
            return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "callback is NULL"));
        };
        let p = producer_of(producer)?;
        let prepared = prepare(&p, request, timeout_ms)?;
        let user_data = UserData(user_data);
        p.producer
            .request_prepared_with_callback(prepared, move |outcome| {
                let user_data = user_data;
                // SAFETY: the caller supplied this callback for exactly this use.
                unsafe { run_request_callback(callback, outcome, user_data.0) };
            })?;
        Ok(())
    })
}

unsafe fn run_request_callback(
    callback: unsafe extern "C" fn(*const rmq_request_callback_params_t, *mut c_void),
    outcome: crate::Result<MessageExt>,
    user_data: *mut c_void,
) {
    match outcome {
        Ok(reply) => {
            let params = rmq_request_callback_params_t {
                status: RMQ_OK,
                reply: adopt(reply),
                error_message: c"".as_ptr(),
                broker_code: 0,
            };
            callback(&params, user_data);
        }
        Err(e) => {
            let message = CString::new(e.to_string().replace('\0', "\\0")).unwrap_or_default();
            let params = rmq_request_callback_params_t {
                status: status_of(&e),
                reply: std::ptr::null_mut(),
                error_message: message.as_ptr(),
                broker_code: e.response_code().unwrap_or(0),
            };
            callback(&params, user_data);
        }
    }
}

fn made(reply: Message, out: *mut *mut rmq_message_t) -> FfiResult {
    // SAFETY: checked non-NULL by the callers.
    unsafe {
        *out = MESSAGES.insert(Arc::new(Mutex::new(FfiMessage {
            message: reply,
            stored: None,
        })))
    };
    Ok(())
}

/// The responder's side: builds the reply to `request` (a message a listener received) with
/// `body_len` bytes at `body` (borrowed for the call): topic "<cluster>_REPLY_TOPIC" of the
/// cluster that stored the request, MSG_TYPE=reply, and the request's CORRELATION_ID,
/// REPLY_TO_CLIENT and TTL, as Java's MessageUtil.createReplyMessage. Send it with any started
/// producer (rmq_producer_send_sync, which answers once the broker has pushed it to the
/// requester). A message that is not a request is RMQ_ERR_INVALID_ARGUMENT.
/// Ownership: on success *out_reply is owned by the caller; free it with rmq_message_destroy.
/// `request` need only be valid for this call.
#[no_mangle]
pub unsafe extern "C" fn rmq_received_message_create_reply(
    request: *const rmq_received_message_t,
    body: *const u8,
    body_len: usize,
    out_reply: *mut *mut rmq_message_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_reply, "out_reply")?;
        let body = body_arg(body, body_len, "body")?;
        let m = RECEIVED.get(request)?;
        made(create_reply(&m.message, body)?, out)
    })
}

/// rmq_received_message_create_reply for a request known by its properties only:
/// `properties_len` bytes at `properties` (borrowed for the call) in the broker's encoding,
/// "name" 0x01 "value" 0x02 for each property (as rmq_received_message_property_at lists them).
/// For programs and bindings that keep copies of received messages.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_create_reply(
    properties: *const c_char,
    properties_len: usize,
    body: *const u8,
    body_len: usize,
    out_reply: *mut *mut rmq_message_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_reply, "out_reply")?;
        let props = arg_text_n(
            properties,
            properties_len,
            "properties",
            crate::protocol::message::PROPERTIES_MAX_LENGTH,
        )?;
        let body = body_arg(body, body_len, "body")?;
        made(create_reply_from_properties(props, body)?, out)
    })
}
