//! The push consumer's poll mode: rmq_push_consumer_set_poll_mode, rmq_push_consumer_poll and
//! rmq_received_batch_*.
//!
//! A polled batch is a handle of its own. Its messages are rmq_received_message_t handles
//! registered at the poll and removed when the batch is acknowledged or destroyed, so a message
//! kept past that is RMQ_ERR_INVALID_HANDLE, never a dangling pointer. rmq_received_batch_views
//! gives every field of every message in one call (pointers into the same decoded messages,
//! nothing copied), which is how the wrappers cross the FFI once per batch.
use std::ffi::c_char;
use std::time::Duration;

use parking_lot::Mutex;

use super::boundary::*;
use super::consumer::{
    consumer_of, rmq_consume_status_t, rmq_push_consumer_t, rmq_received_message_t, RECEIVED,
    RMQ_CONSUME_SUCCESS,
};
use super::handles::Registry;
use super::status::*;
use crate::consumer::{ConsumeResult, ReceivedBatch};
use crate::protocol::message::MessageExt;

/// Messages taken by one rmq_push_consumer_poll or rmq_lite_pull_consumer_poll, possibly from
/// several queues. Owned by the caller: acknowledge it with rmq_received_batch_ack or _ack_each,
/// or free it unacknowledged with rmq_received_batch_destroy; either ends it. It may be used
/// from any thread, but acknowledging or destroying it while another thread still reads its
/// messages is a bug.
///
/// A lite pull consumer's batch counts as consumed when it is polled and needs no answer:
/// rmq_received_batch_ack and rmq_received_batch_destroy both just free it;
/// rmq_received_batch_ack_each frees it when every status is RMQ_CONSUME_SUCCESS and refuses
/// RMQ_CONSUME_RECONSUME_LATER (RMQ_ERR_INVALID_ARGUMENT, the batch stays valid): to read
/// messages again, seek their queue back.
pub struct rmq_received_batch_t {
    _private: [u8; 0],
}

/// A borrowed (pointer, length) view of one property of a received message.
#[repr(C)]
pub struct rmq_property_view_t {
    pub name: *const c_char,
    pub name_len: usize,
    pub value: *const c_char,
    pub value_len: usize,
}

/// Every field of one received message at once (rmq_received_batch_views): the same values as
/// the rmq_received_message_ accessors of `message`. Strings are (pointer, length) views, not
/// NUL-terminated, never NULL (an empty one points to ""); `body` is the decompressed body.
/// All of it is borrowed from the batch and valid until the batch is acknowledged or destroyed.
#[repr(C)]
pub struct rmq_received_view_t {
    /// The message's handle, for the rmq_received_message_ accessors.
    pub message: *const rmq_received_message_t,
    pub topic: *const c_char,
    pub topic_len: usize,
    pub tags: *const c_char,
    pub tags_len: usize,
    /// Space-separated keys.
    pub keys: *const c_char,
    pub keys_len: usize,
    pub body: *const u8,
    pub body_len: usize,
    pub msg_id: *const c_char,
    pub msg_id_len: usize,
    pub offset_msg_id: *const c_char,
    pub offset_msg_id_len: usize,
    pub broker_name: *const c_char,
    pub broker_name_len: usize,
    /// `property_count` properties, system ones included, in the order of
    /// rmq_received_message_property_at.
    pub properties: *const rmq_property_view_t,
    pub property_count: usize,
    pub queue_offset: i64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub queue_id: i32,
    pub reconsume_times: i32,
}

struct FfiBatch {
    batch: Mutex<ReceivedBatch>,
    handles: Vec<*const rmq_received_message_t>,
    views: Vec<rmq_received_view_t>,
    /// Owns what `views[i].properties` points to.
    _properties: Vec<Vec<rmq_property_view_t>>,
}

// SAFETY: the raw pointers point into the batch's own messages (immutable, kept alive by
// `batch`) or are registry ids; nothing is written through them.
unsafe impl Send for FfiBatch {}
unsafe impl Sync for FfiBatch {}

impl Drop for FfiBatch {
    fn drop(&mut self) {
        for h in &self.handles {
            RECEIVED.remove(*h);
        }
        // Then `batch` drops: unacknowledged, its messages are reconsumed later.
    }
}

static BATCHES: Registry<FfiBatch> = Registry::new("received batch");

fn view_of(s: &str) -> (*const c_char, usize) {
    if s.is_empty() {
        (c"".as_ptr(), 0)
    } else {
        (s.as_ptr() as *const c_char, s.len())
    }
}

fn lend(batch: ReceivedBatch) -> FfiBatch {
    let msgs = batch.messages();
    let handles: Vec<*const rmq_received_message_t> = msgs
        .iter()
        .map(|m| RECEIVED.insert::<rmq_received_message_t>(m.clone()) as *const _)
        .collect();
    let properties: Vec<Vec<rmq_property_view_t>> = msgs
        .iter()
        .map(|m| {
            m.message
                .properties()
                .iter()
                .map(|(k, v)| {
                    let (name, name_len) = view_of(k);
                    let (value, value_len) = view_of(v);
                    rmq_property_view_t {
                        name,
                        name_len,
                        value,
                        value_len,
                    }
                })
                .collect()
        })
        .collect();
    let views = msgs
        .iter()
        .zip(&handles)
        .zip(&properties)
        .map(|((m, h), props)| view(m, *h, props))
        .collect();
    FfiBatch {
        batch: Mutex::new(batch),
        handles,
        views,
        _properties: properties,
    }
}

fn view(
    m: &MessageExt,
    message: *const rmq_received_message_t,
    props: &[rmq_property_view_t],
) -> rmq_received_view_t {
    let (topic, topic_len) = view_of(m.message.topic());
    let (tags, tags_len) = view_of(m.message.tags().unwrap_or(""));
    let (keys, keys_len) = view_of(m.message.keys().unwrap_or(""));
    let (msg_id, msg_id_len) = view_of(m.msg_id());
    let (offset_msg_id, offset_msg_id_len) = view_of(&m.offset_msg_id);
    let (broker_name, broker_name_len) = view_of(&m.broker_name);
    let body = m.message.body();
    rmq_received_view_t {
        message,
        topic,
        topic_len,
        tags,
        tags_len,
        keys,
        keys_len,
        body: if body.is_empty() {
            c"".as_ptr() as *const u8
        } else {
            body.as_ptr()
        },
        body_len: body.len(),
        msg_id,
        msg_id_len,
        offset_msg_id,
        offset_msg_id_len,
        broker_name,
        broker_name_len,
        properties: props.as_ptr(),
        property_count: props.len(),
        queue_offset: m.queue_offset,
        born_timestamp: m.born_timestamp,
        store_timestamp: m.store_timestamp,
        queue_id: m.queue_id,
        reconsume_times: m.reconsume_times,
    }
}

/// Puts the consumer in poll mode instead of calling a listener: received messages wait until
/// the application takes them with rmq_push_consumer_poll. Before start only (else
/// RMQ_ERR_INVALID_STATE); a later rmq_push_consumer_set_listener replaces it, and this
/// replaces a listener. Waiting messages count against the pull flow control
/// (consumer.pull-threshold-for-queue, consumer.pull-threshold-size-for-queue), so pulling
/// pauses while the application does not poll.
#[no_mangle]
pub extern "C" fn rmq_push_consumer_set_poll_mode(
    consumer: *mut rmq_push_consumer_t,
) -> rmq_status_t {
    guard(|| {
        consumer_of(consumer)?.consumer.set_poll_mode()?;
        Ok(())
    })
}

/// Takes up to `max_messages` (>= 1) received messages, from one or several queues, waiting up
/// to `timeout_ms` for the first (0: do not wait; negative: no limit). On RMQ_OK *out_batch is
/// a batch, or NULL when nothing came in time.
///
/// Ownership: a non-NULL *out_batch is owned by the caller; end it with
/// rmq_received_batch_ack, _ack_each or _destroy. The consume timeout
/// (consumer.consume-timeout) counts from the poll: messages held longer are sent back for a
/// later retry, as with a listener.
///
/// Threads: blocks the calling thread (any thread; several may poll at once); do not call it
/// from an rmq callback. rmq_push_consumer_shutdown or _destroy from another thread wakes it
/// with RMQ_ERR_INVALID_STATE. RMQ_ERR_INVALID_STATE also before start, after shutdown, and
/// on a consumer not in poll mode.
#[no_mangle]
pub unsafe extern "C" fn rmq_push_consumer_poll(
    consumer: *mut rmq_push_consumer_t,
    max_messages: usize,
    timeout_ms: i64,
    out_batch: *mut *mut rmq_received_batch_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_batch, "out_batch")?;
        let c = consumer_of(consumer)?;
        let timeout = if timeout_ms < 0 {
            Duration::MAX
        } else {
            Duration::from_millis(timeout_ms as u64)
        };
        *out = batch_handle(c.consumer.poll(max_messages, timeout)?);
        Ok(())
    })
}

/// Registers a polled batch (push or lite pull) for C; NULL for none.
pub(crate) fn batch_handle(batch: Option<ReceivedBatch>) -> *mut rmq_received_batch_t {
    match batch {
        Some(b) => BATCHES.insert(std::sync::Arc::new(lend(b))),
        None => std::ptr::null_mut(),
    }
}

/// Number of messages in the batch (>= 1).
#[no_mangle]
pub unsafe extern "C" fn rmq_received_batch_count(
    batch: *const rmq_received_batch_t,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let b = BATCHES.get(batch)?;
        *out_ptr(out_count, "out_count")? = b.handles.len();
        Ok(())
    })
}

/// Message number `index` (0-based, below the count; else RMQ_ERR_NOT_FOUND), read with the
/// rmq_received_message_ accessors. Borrowed: valid until the batch is acknowledged or
/// destroyed (then RMQ_ERR_INVALID_HANDLE).
#[no_mangle]
pub unsafe extern "C" fn rmq_received_batch_at(
    batch: *const rmq_received_batch_t,
    index: usize,
    out_message: *mut *const rmq_received_message_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_message, "out_message")?;
        let b = BATCHES.get(batch)?;
        let h = b.handles.get(index).ok_or_else(|| {
            FfiError::new(
                RMQ_ERR_NOT_FOUND,
                format!(
                    "no message at index {index} of a batch of {}",
                    b.handles.len()
                ),
            )
        })?;
        *out = *h;
        Ok(())
    })
}

/// Every field of every message in one call: *out_views points to *out_count views, in the
/// order of rmq_received_batch_at. Borrowed: the array and everything it points to are valid
/// until the batch is acknowledged or destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_received_batch_views(
    batch: *const rmq_received_batch_t,
    out_views: *mut *const rmq_received_view_t,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_views, "out_views")?;
        let out_count = out_ptr(out_count, "out_count")?;
        let b = BATCHES.get(batch)?;
        // The Vec never changes after the poll, so its buffer lives as long as the batch.
        *out = b.views.as_ptr();
        *out_count = b.views.len();
        Ok(())
    })
}

fn settle(batch: *mut rmq_received_batch_t, results: FfiResult<Vec<ConsumeResult>>) -> FfiResult {
    let b = BATCHES.get(batch)?;
    let results = results?;
    let outcome = b.batch.lock().ack_each(&results);
    if let Err(crate::Error::InvalidArgument(_)) = outcome {
        return outcome.map_err(Into::into); // wrong count: the batch stays as it was
    }
    drop(b);
    BATCHES.remove(batch);
    outcome.map_err(Into::into)
}

/// Acknowledges every message of the batch as consumed and frees the batch (its message
/// handles and views become invalid). The offset moves past them once every earlier message
/// of their queue is acknowledged too. If the consumer has been shut down meanwhile, the batch
/// is freed and the call returns RMQ_ERR_INVALID_STATE: its messages were not committed and are
/// delivered again. A second acknowledgement is RMQ_ERR_INVALID_HANDLE (the batch is gone).
/// A lite pull consumer's batch is consumed already: this only frees it.
#[no_mangle]
pub extern "C" fn rmq_received_batch_ack(batch: *mut rmq_received_batch_t) -> rmq_status_t {
    guard(|| {
        let n = BATCHES.get(batch)?.handles.len();
        settle(batch, Ok(vec![ConsumeResult::Success; n]))
    })
}

/// Acknowledges each message on its own and frees the batch, as rmq_received_batch_ack:
/// `statuses[i]` is RMQ_CONSUME_SUCCESS, or RMQ_CONSUME_RECONSUME_LATER (any other value counts
/// as this) to have message i delivered again after `delay_levels[i]` (as
/// rmq_consume_context_t.delay_level; `delay_levels` may be NULL for 0 everywhere). Both
/// arrays are borrowed for the call and hold `count` entries, which must equal the batch's
/// count; a wrong count or a NULL `statuses` is an error that leaves the batch unacknowledged
/// and valid. A lite pull consumer's batch takes only RMQ_CONSUME_SUCCESS (then it is freed);
/// any other status is RMQ_ERR_INVALID_ARGUMENT and leaves it valid (seek to read again).
#[no_mangle]
pub unsafe extern "C" fn rmq_received_batch_ack_each(
    batch: *mut rmq_received_batch_t,
    statuses: *const rmq_consume_status_t,
    delay_levels: *const i32,
    count: usize,
) -> rmq_status_t {
    guard(|| {
        let n = BATCHES.get(batch)?.handles.len();
        let results = (|| {
            if statuses.is_null() {
                return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "statuses is NULL"));
            }
            if count != n {
                return Err(FfiError::new(
                    RMQ_ERR_INVALID_ARGUMENT,
                    format!("{count} statuses for a batch of {n} messages"),
                ));
            }
            // SAFETY: the caller passes `count` readable entries (NULL checked above).
            let statuses = std::slice::from_raw_parts(statuses, count);
            let levels =
                (!delay_levels.is_null()).then(|| std::slice::from_raw_parts(delay_levels, count));
            Ok(statuses
                .iter()
                .enumerate()
                .map(|(i, s)| match *s {
                    RMQ_CONSUME_SUCCESS => ConsumeResult::Success,
                    _ => ConsumeResult::ReconsumeLater {
                        delay_level: levels.map_or(0, |l| l[i]),
                    },
                })
                .collect())
        })();
        settle(batch, results)
    })
}

/// Frees the batch without acknowledging it: every message not acknowledged is delivered again
/// later (as RMQ_CONSUME_RECONSUME_LATER with delay level 0); a lite pull consumer's batch,
/// consumed when polled, is just freed. NULL is a no-op (RMQ_OK); a batch already acknowledged
/// or destroyed is RMQ_ERR_INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn rmq_received_batch_destroy(batch: *mut rmq_received_batch_t) -> rmq_status_t {
    guard(|| {
        if batch.is_null() {
            return Ok(());
        }
        BATCHES.get(batch)?;
        BATCHES.remove(batch);
        Ok(())
    })
}
