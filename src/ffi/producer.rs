//! rmq_producer_* and rmq_send_result_*.
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use parking_lot::Mutex;

use super::boundary::*;
use super::callback::UserData;
use super::config::{rmq_config_t, CONFIGS};
use super::handles::Registry;
use super::message::{rmq_message_t, FfiMessage, MESSAGES};
use super::status::*;
use crate::producer::{PreparedSend, Producer, SendResult, SendStatus};

/// A producer. Every rmq_producer_ function may be called from any thread, concurrently.
pub struct rmq_producer_t {
    _private: [u8; 0],
}

/// The outcome of a successful send. Immutable; safe to read from several threads.
pub struct rmq_send_result_t {
    _private: [u8; 0],
}

/// Store status of a successful send (rmq_send_result_status).
pub type rmq_send_status_t = i32;
/// Stored (and flushed/replicated as the broker is configured).
pub const RMQ_SEND_OK: rmq_send_status_t = 0;
/// Stored, but the flush to disk timed out (SYNC_FLUSH brokers).
pub const RMQ_SEND_FLUSH_DISK_TIMEOUT: rmq_send_status_t = 1;
/// Stored, but replication to the slave timed out (SYNC_MASTER brokers).
pub const RMQ_SEND_FLUSH_SLAVE_TIMEOUT: rmq_send_status_t = 2;
/// Stored, but no slave was available (SYNC_MASTER brokers).
pub const RMQ_SEND_SLAVE_NOT_AVAILABLE: rmq_send_status_t = 3;

/// Static NUL-terminated name of a send status ("SEND_OK", "FLUSH_DISK_TIMEOUT",
/// "FLUSH_SLAVE_TIMEOUT", "SLAVE_NOT_AVAILABLE"); "UNKNOWN" for any other value.
#[no_mangle]
pub extern "C" fn rmq_send_status_name(status: rmq_send_status_t) -> *const c_char {
    match status {
        RMQ_SEND_OK => c"SEND_OK".as_ptr(),
        RMQ_SEND_FLUSH_DISK_TIMEOUT => c"FLUSH_DISK_TIMEOUT".as_ptr(),
        RMQ_SEND_FLUSH_SLAVE_TIMEOUT => c"FLUSH_SLAVE_TIMEOUT".as_ptr(),
        RMQ_SEND_SLAVE_NOT_AVAILABLE => c"SLAVE_NOT_AVAILABLE".as_ptr(),
        _ => c"UNKNOWN".as_ptr(),
    }
}

/// What an async send callback receives. Everything in it is borrowed until the callback
/// returns; copy what you need, or keep the result with rmq_send_result_clone.
#[repr(C)]
pub struct rmq_send_callback_params_t {
    /// RMQ_OK, or why the send failed.
    pub status: rmq_status_t,
    /// The send result when status is RMQ_OK, else NULL.
    pub result: *const rmq_send_result_t,
    /// NUL-terminated error message; "" when status is RMQ_OK. Never NULL.
    pub error_message: *const c_char,
    /// The broker's own response code when a broker refused the send (any code, also those
    /// outside 1..9999 that map to RMQ_ERR_BROKER_OTHER); 0 otherwise.
    pub broker_code: i32,
}

/// Async send completion. Runs exactly once per send that rmq_producer_send_async accepted, on a
/// callback thread of the producer's client instance ("rmq-callback-N"; one thread unless
/// client.callback-executor-threads says more, so by default callbacks run one at a time in
/// completion order), never on an I/O thread and never while the library holds a lock. After
/// shutdown, pending sends complete with RMQ_ERR_CANCELLED. It may call rmq_ functions,
/// including rmq_producer_destroy of another producer (which then runs the callbacks it waits
/// for on this thread); destroying its own producer from here fails with RMQ_ERR_INVALID_STATE.
pub type rmq_send_callback_t =
    Option<unsafe extern "C" fn(params: *const rmq_send_callback_params_t, user_data: *mut c_void)>;

pub(crate) struct FfiProducer {
    pub(crate) producer: Producer,
}

static PRODUCERS: Registry<FfiProducer> = Registry::new("producer");

/// A live producer handle of this process: one made before fork() is RMQ_ERR_FORKED in the child.
pub(crate) fn producer_of(handle: *const rmq_producer_t) -> FfiResult<Arc<FfiProducer>> {
    let p = PRODUCERS.get(handle)?;
    if p.producer.is_forked() {
        return Err(crate::Error::Forked.into());
    }
    Ok(p)
}
pub(crate) static RESULTS: Registry<SendResult> = Registry::new("send result");

/// Creates a producer from `config` (borrowed for the call; the producer copies it).
/// `producer.group` and `name-server` must be set. Nothing is sent until rmq_producer_start.
/// Ownership: on success *out_producer is owned by the caller; free it with rmq_producer_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_create(
    config: *const rmq_config_t,
    out_producer: *mut *mut rmq_producer_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_producer, "out_producer")?;
        let cfg = CONFIGS.get(config)?;
        let producer_config = cfg.lock().producer_config()?;
        let producer = Producer::new(producer_config)?;
        *out = PRODUCERS.insert(Arc::new(FfiProducer { producer }));
        Ok(())
    })
}

/// Starts the producer (route refresh and heartbeat timers). A second start, or a start after
/// shutdown, fails with RMQ_ERR_INVALID_STATE.
#[no_mangle]
pub extern "C" fn rmq_producer_start(producer: *mut rmq_producer_t) -> rmq_status_t {
    guard(|| {
        producer_of(producer)?.producer.start()?;
        Ok(())
    })
}

/// Checks and encodes the message under its lock, released before anything is sent: another
/// thread may read or change the message while the send is on the wire.
pub(crate) fn prepare(p: &FfiProducer, message: *const rmq_message_t) -> FfiResult<PreparedSend> {
    let m: Arc<Mutex<FfiMessage>> = MESSAGES.get(message)?;
    let m = m.lock();
    Ok(p.producer.prepare(&m.message)?)
}

/// Sends `message` (borrowed for the call) and waits for the broker's answer, retrying on
/// another broker within producer.send-message-timeout. Blocks the calling thread; do not call
/// it from a thread that must not block.
/// Ownership: on success *out_result is owned by the caller; free it with
/// rmq_send_result_destroy. `out_result` may be NULL if the result is not wanted.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_sync(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    out_result: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        let result = p.producer.send_prepared_blocking(&prepared)?;
        if !out_result.is_null() {
            *out_result = RESULTS.insert(Arc::new(result));
        }
        Ok(())
    })
}

/// Sends `message` (borrowed for the call; the library copies what it needs) without waiting.
/// On RMQ_OK, `callback` runs exactly once later with the outcome and `user_data`; on any other
/// status nothing was sent and the callback never runs. `callback` must not be NULL.
/// `user_data` is passed through untouched; it must stay valid until the callback has run.
/// A transport failure is retried on another broker (producer.retry-times-when-send-async-failed).
/// In-flight window: each accepted send holds a slot of producer.max-in-flight-async-sends until
/// its callback has returned. With the window full this call waits for a slot (at most
/// producer.send-message-timeout) or, with producer.block-when-in-flight-full=false, fails at
/// once; both fail with RMQ_ERR_IN_FLIGHT_FULL. Called from a library thread (a send callback),
/// it never waits: a full window is RMQ_ERR_IN_FLIGHT_FULL at once, since the slot it would wait
/// for may be its own.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_async(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    callback: rmq_send_callback_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let callback = send_callback(callback, user_data)?;
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        p.producer.send_prepared_with_callback(prepared, callback)?;
        Ok(())
    })
}

/// The core callback that hands an async send's outcome to a C callback and its user_data.
pub(crate) fn send_callback(
    callback: rmq_send_callback_t,
    user_data: *mut c_void,
) -> FfiResult<impl FnOnce(crate::Result<SendResult>) + Send + 'static> {
    let Some(callback) = callback else {
        return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "callback is NULL"));
    };
    let user_data = UserData(user_data);
    Ok(move |outcome| {
        let user_data = user_data;
        // SAFETY: the caller supplied this callback for exactly this use.
        unsafe { run_send_callback(callback, outcome, user_data.0) };
    })
}

unsafe fn run_send_callback(
    callback: unsafe extern "C" fn(*const rmq_send_callback_params_t, *mut c_void),
    outcome: crate::Result<SendResult>,
    user_data: *mut c_void,
) {
    match outcome {
        Ok(result) => {
            let handle: *mut rmq_send_result_t = RESULTS.insert(Arc::new(result));
            let params = rmq_send_callback_params_t {
                status: RMQ_OK,
                result: handle,
                error_message: c"".as_ptr(),
                broker_code: 0,
            };
            callback(&params, user_data);
            RESULTS.remove(handle);
        }
        Err(e) => {
            let status = status_of(&e);
            let message = CString::new(e.to_string().replace('\0', "\\0")).unwrap_or_default();
            let params = rmq_send_callback_params_t {
                status,
                result: std::ptr::null(),
                error_message: message.as_ptr(),
                broker_code: e.response_code().unwrap_or(0),
            };
            callback(&params, user_data);
        }
    }
}

/// Sends `message` (borrowed for the call) once, without waiting for or learning the outcome.
/// Blocks only while the topic route is first fetched or the connection first opened. A busy
/// broker may drop oneway messages.
#[no_mangle]
pub extern "C" fn rmq_producer_send_oneway(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
) -> rmq_status_t {
    guard(|| {
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        p.producer.send_prepared_oneway_blocking(&prepared)?;
        Ok(())
    })
}

/// Reads a stored message back from its broker by offset message id (rmq_send_result_offset_msg_id;
/// NUL-terminated, borrowed for the call), like Java's viewMessage. Blocks.
/// Ownership: on success *out_message is owned by the caller; free it with rmq_message_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_view_message(
    producer: *mut rmq_producer_t,
    offset_msg_id: *const c_char,
    out_message: *mut *mut rmq_message_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_message, "out_message")?;
        let p = producer_of(producer)?;
        let id = arg_str(offset_msg_id, "offset_msg_id")?;
        let ext = p.producer.view_message_blocking(id)?;
        *out = MESSAGES.insert(Arc::new(Mutex::new(FfiMessage::from_stored(ext))));
        Ok(())
    })
}

/// Finds stored messages of `topic` whose keys contain `key` (both NUL-terminated, borrowed for
/// the call), stored between `begin_timestamp_ms` and `end_timestamp_ms`, at most `max_num` per
/// broker, as Java's queryMessage. The broker indexes keys shortly after storing: a message sent
/// a moment ago may not be found yet. Blocks.
/// Writes the number found to *out_count and, when it is at most `capacity`, that many message
/// handles to `out_messages`. When more were found than fit, nothing is written to
/// `out_messages`, *out_count still says how many were found, and the call fails with
/// RMQ_ERR_BUFFER_TOO_SMALL (call again with that capacity; brokers may have stored more by
/// then). `out_messages` may be NULL when `capacity` is 0. Ownership: each handle written is
/// owned by the caller; free each with rmq_message_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_query_message(
    producer: *mut rmq_producer_t,
    topic: *const c_char,
    key: *const c_char,
    max_num: i32,
    begin_timestamp_ms: i64,
    end_timestamp_ms: i64,
    out_messages: *mut *mut rmq_message_t,
    capacity: usize,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out_count = out_ptr(out_count, "out_count")?;
        if capacity > 0 {
            out_ptr(out_messages, "out_messages")?;
        }
        let p = producer_of(producer)?;
        let topic = arg_str(topic, "topic")?;
        let key = arg_str(key, "key")?;
        let found = p.producer.query_message_blocking(
            topic,
            key,
            max_num,
            begin_timestamp_ms,
            end_timestamp_ms,
        )?;
        *out_count = found.len();
        if found.len() > capacity {
            return Err(FfiError::new(
                RMQ_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} messages found, room for {capacity}; *out_count has the number found",
                    found.len()
                ),
            ));
        }
        for (i, ext) in found.into_iter().enumerate() {
            *out_messages.add(i) =
                MESSAGES.insert(Arc::new(Mutex::new(FfiMessage::from_stored(ext))));
        }
        Ok(())
    })
}

/// Stops the producer: async sends still in flight complete at once with RMQ_ERR_CANCELLED
/// (their callbacks may still be running when this returns; rmq_producer_destroy waits for
/// them), the brokers are told the group is gone, and the client instance closes its
/// connections when this was its last producer. Nothing is dialled afterwards. Idempotent;
/// sends afterwards fail with RMQ_ERR_INVALID_STATE. Blocks for at most client.api-timeout.
#[no_mangle]
pub extern "C" fn rmq_producer_shutdown(producer: *mut rmq_producer_t) -> rmq_status_t {
    guard(|| {
        producer_of(producer)?.producer.shutdown();
        Ok(())
    })
}

/// Shuts the producer down if needed, waits until every accepted async send has had its callback
/// run and return (so no callback of this producer runs after this returns), and frees it.
/// In-flight sends fail at once with RMQ_ERR_CANCELLED, so the wait is as long as the slowest
/// pending callback. Called from a callback of another producer, it runs the callbacks it waits
/// for on the calling thread. Called from a callback of this same producer, it would wait for
/// itself: it fails with RMQ_ERR_INVALID_STATE and the handle stays valid; destroy it from
/// another thread. In a child process after fork() it frees the handle without touching the
/// parent's connections. NULL is a no-op (RMQ_OK); a stale handle is RMQ_ERR_INVALID_HANDLE.
/// Idempotent in effect: the handle is invalid after RMQ_OK.
#[no_mangle]
pub extern "C" fn rmq_producer_destroy(producer: *mut rmq_producer_t) -> rmq_status_t {
    guard(|| {
        if producer.is_null() {
            return Ok(());
        }
        let p = PRODUCERS.get(producer)?;
        if p.producer.in_own_callback() {
            p.producer.close()?;
        }
        let Some(p) = PRODUCERS.remove(producer) else {
            return Ok(()); // destroyed meanwhile by another thread
        };
        if p.producer.is_forked() {
            // The parent's sockets and threads: dropping would reach into them.
            std::mem::forget(p);
            return Ok(());
        }
        p.producer.close()?;
        Ok(())
    })
}

pub(crate) fn with_result<T>(
    result: *const rmq_send_result_t,
    f: impl FnOnce(&SendResult) -> FfiResult<T>,
) -> FfiResult<T> {
    let r = RESULTS.get(result)?;
    f(&r)
}

/// Store status (RMQ_SEND_OK, RMQ_SEND_FLUSH_DISK_TIMEOUT, ...).
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_status(
    result: *const rmq_send_result_t,
    out: *mut rmq_send_status_t,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            *out_ptr(out, "out")? = match r.status {
                SendStatus::SendOk => RMQ_SEND_OK,
                SendStatus::FlushDiskTimeout => RMQ_SEND_FLUSH_DISK_TIMEOUT,
                SendStatus::FlushSlaveTimeout => RMQ_SEND_FLUSH_SLAVE_TIMEOUT,
                SendStatus::SlaveNotAvailable => RMQ_SEND_SLAVE_NOT_AVAILABLE,
            };
            Ok(())
        })
    })
}

/// Borrowed view of the message id (UNIQ_KEY), valid until the result is destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_msg_id(
    result: *const rmq_send_result_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_result(result, |r| write_str(&r.msg_id, out, out_len)))
}

/// Borrowed view of the broker store id (for rmq_producer_view_message), valid until the result
/// is destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_offset_msg_id(
    result: *const rmq_send_result_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_result(result, |r| write_str(&r.offset_msg_id, out, out_len)))
}

/// Borrowed view of the topic, valid until the result is destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_topic(
    result: *const rmq_send_result_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_result(result, |r| write_str(&r.queue.topic, out, out_len)))
}

/// Borrowed view of the broker name, valid until the result is destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_broker_name(
    result: *const rmq_send_result_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_result(result, |r| write_str(&r.queue.broker_name, out, out_len)))
}

/// Queue the message was written to.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_queue_id(
    result: *const rmq_send_result_t,
    out: *mut i32,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            *out_ptr(out, "out")? = r.queue.queue_id;
            Ok(())
        })
    })
}

/// Offset of the message in its queue.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_queue_offset(
    result: *const rmq_send_result_t,
    out: *mut i64,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            *out_ptr(out, "out")? = r.queue_offset;
            Ok(())
        })
    })
}

/// A new handle to the same result, e.g. to keep one received in a send callback.
/// Ownership: on success *out is owned by the caller; free it with rmq_send_result_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_clone(
    result: *const rmq_send_result_t,
    out: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = RESULTS.insert(RESULTS.get(result)?);
        Ok(())
    })
}

/// Frees a send result. NULL is a no-op.
#[no_mangle]
pub extern "C" fn rmq_send_result_destroy(result: *mut rmq_send_result_t) {
    guard_value((), || {
        RESULTS.remove(result);
        Ok(())
    })
}
