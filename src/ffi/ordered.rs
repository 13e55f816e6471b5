//! Ordered sends: rmq_producer_send_{sync,async}_select and rmq_producer_send_{sync,async}_to_queue.
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::boundary::*;
use super::message::rmq_message_t;
use super::producer::{
    prepare, producer_of, rmq_producer_t, rmq_send_callback_t, rmq_send_result_t, send_callback,
    RESULTS,
};
use super::status::*;
use crate::client::MessageQueue;
use crate::error::Error;
use crate::producer::{Producer, QueueSelector, SendResult};

/// A message queue: borrowed views of its topic and broker name (not NUL-terminated), and its
/// queue id. Passed to selectors (valid until the selector returns) and to
/// rmq_producer_send_*_to_queue (borrowed for the call).
#[repr(C)]
pub struct rmq_message_queue_t {
    pub topic: *const c_char,
    pub topic_len: usize,
    pub broker_name: *const c_char,
    pub broker_name_len: usize,
    pub queue_id: i32,
}

/// A queue selector callback: returns the index (0 .. count-1) of the queue in `queues` that the
/// message goes to. `queues` (`count` entries, the topic's writable queues sorted by broker name
/// and queue id, as Java lists them) and `message` (the message being sent; read it with the
/// rmq_message_ getters, do not modify or destroy it) are borrowed until it returns; `arg` is the
/// selector's `arg`, untouched. A negative index or one of `count` or more fails the send with
/// RMQ_ERR_QUEUE_SELECTOR; nothing is sent.
/// Thread: it runs on the thread that called rmq_producer_send_sync_select or
/// rmq_producer_send_async_select, before that call returns (for async sends too), never on a
/// library thread.
pub type rmq_queue_select_fn = Option<
    unsafe extern "C" fn(
        queues: *const rmq_message_queue_t,
        count: usize,
        message: *const rmq_message_t,
        arg: *mut c_void,
    ) -> i32,
>;

/// Which queue selector (rmq_queue_selector_t.kind). 0 is no selector and is refused.
pub type rmq_selector_kind_t = i32;
/// Java's SelectMessageQueueByHash of `key`: abs(key.hashCode() % count) with Java's
/// String.hashCode (over UTF-16 code units), so Java producers put a key on the same queue.
pub const RMQ_SELECTOR_HASH: rmq_selector_kind_t = 1;
/// A random queue (Java's SelectMessageQueueByRandom).
pub const RMQ_SELECTOR_RANDOM: rmq_selector_kind_t = 2;
/// The next queue of the producer's round-robin counter.
pub const RMQ_SELECTOR_ROUND_ROBIN: rmq_selector_kind_t = 3;
/// The caller's `select` function with `arg`.
pub const RMQ_SELECTOR_CALLBACK: rmq_selector_kind_t = 4;

/// How an ordered send chooses its queue. Built by the caller (e.g. on the stack) and borrowed
/// for the call. Unused fields are ignored.
#[repr(C)]
pub struct rmq_queue_selector_t {
    /// RMQ_SELECTOR_HASH, RMQ_SELECTOR_RANDOM, RMQ_SELECTOR_ROUND_ROBIN or RMQ_SELECTOR_CALLBACK.
    pub kind: rmq_selector_kind_t,
    /// RMQ_SELECTOR_HASH: the sharding key, `key_len` bytes of UTF-8 (no terminator needed).
    pub key: *const c_char,
    pub key_len: usize,
    /// RMQ_SELECTOR_CALLBACK: the selector function (not NULL) and its argument.
    pub select: rmq_queue_select_fn,
    pub arg: *mut c_void,
}

pub(crate) fn views(queues: &[MessageQueue]) -> Vec<rmq_message_queue_t> {
    queues
        .iter()
        .map(|q| rmq_message_queue_t {
            topic: q.topic.as_ptr() as *const c_char,
            topic_len: q.topic.len(),
            broker_name: q.broker_name.as_ptr() as *const c_char,
            broker_name_len: q.broker_name.len(),
            queue_id: q.queue_id,
        })
        .collect()
}

/// Runs the selector on the calling thread and returns the queue it chose.
unsafe fn select(
    producer: &Producer,
    topic: &str,
    message: *const rmq_message_t,
    selector: *const rmq_queue_selector_t,
) -> FfiResult<MessageQueue> {
    if selector.is_null() {
        return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "selector is NULL"));
    }
    let s = &*selector;
    let key;
    let builtin = match s.kind {
        RMQ_SELECTOR_HASH => {
            let bytes = arg_bytes(s.key as *const u8, s.key_len, "selector key")?;
            key = std::str::from_utf8(bytes).map_err(|_| {
                FfiError::new(RMQ_ERR_INVALID_UTF8, "selector key is not valid UTF-8")
            })?;
            QueueSelector::ByHash(key)
        }
        RMQ_SELECTOR_RANDOM => QueueSelector::Random,
        RMQ_SELECTOR_ROUND_ROBIN => QueueSelector::RoundRobin,
        RMQ_SELECTOR_CALLBACK => {
            let Some(f) = s.select else {
                return Err(FfiError::new(
                    RMQ_ERR_NULL_POINTER,
                    "selector.select is NULL for RMQ_SELECTOR_CALLBACK",
                ));
            };
            let arg = s.arg;
            return Ok(producer.select_queue_blocking(topic, |qs| {
                let v = views(qs);
                // SAFETY: the caller supplied this function and arg for this use; the views
                // point into `qs`, alive for the call.
                let index = unsafe { f(v.as_ptr(), v.len(), message, arg) };
                usize::try_from(index).map_err(|_| {
                    Error::QueueSelector(format!(
                        "the selector returned {index} for {} queue(s)",
                        qs.len()
                    ))
                })
            })?);
        }
        other => {
            return Err(FfiError::new(
                RMQ_ERR_INVALID_ARGUMENT,
                format!("unknown selector kind {other}"),
            ))
        }
    };
    Ok(producer.select_queue_blocking(topic, |qs| producer.pick_queue_index(&builtin, qs))?)
}

pub(crate) unsafe fn queue_arg(queue: *const rmq_message_queue_t) -> FfiResult<MessageQueue> {
    if queue.is_null() {
        return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "queue is NULL"));
    }
    let q = &*queue;
    let text = |p: *const c_char, len: usize, what: &str| -> FfiResult<Arc<str>> {
        let bytes = arg_bytes(p as *const u8, len, what)?;
        let s = std::str::from_utf8(bytes).map_err(|_| {
            FfiError::new(RMQ_ERR_INVALID_UTF8, format!("{what} is not valid UTF-8"))
        })?;
        Ok(Arc::from(s))
    };
    Ok(MessageQueue {
        topic: text(q.topic, q.topic_len, "queue topic")?,
        broker_name: text(q.broker_name, q.broker_name_len, "queue broker name")?,
        queue_id: q.queue_id,
    })
}

unsafe fn write_result(out_result: *mut *mut rmq_send_result_t, result: SendResult) {
    if !out_result.is_null() {
        *out_result = RESULTS.insert(Arc::new(result));
    }
}

/// Ordered send: sends `message` (borrowed for the call) to the queue `selector` (borrowed for
/// the call) chooses and waits for the broker's answer. One attempt: an ordered send is never
/// retried on another queue (as Java's send with a selector). The selector runs on this thread.
/// Blocks. A selector that fails gives RMQ_ERR_QUEUE_SELECTOR and nothing is sent.
/// Ownership: as rmq_producer_send_sync (`out_result` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_sync_select(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    selector: *const rmq_queue_selector_t,
    out_result: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        let mq = select(&p.producer, &prepared.topic, message, selector)?;
        let result = p.producer.send_prepared_to_queue_blocking(&prepared, mq)?;
        write_result(out_result, result);
        Ok(())
    })
}

/// Async ordered send: `selector` (borrowed for the call) runs on this thread before the call
/// returns, which blocks only while the topic's route is first fetched; the send then goes to
/// that queue in the background. A transport failure is retried on the same queue
/// (producer.retry-times-when-send-async-failed), never on another. Callback, user_data and the
/// in-flight window as rmq_producer_send_async.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_async_select(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    selector: *const rmq_queue_selector_t,
    callback: rmq_send_callback_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let callback = send_callback(callback, user_data)?;
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        let mq = select(&p.producer, &prepared.topic, message, selector)?;
        p.producer
            .send_prepared_to_queue_with_callback(prepared, mq, callback)?;
        Ok(())
    })
}

/// Sends `message` to `queue` (both borrowed for the call) and waits for the broker's answer:
/// Java's send(msg, mq). The queue's topic must be the message's (else
/// RMQ_ERR_INVALID_ARGUMENT); a broker the topic's route does not list is
/// RMQ_ERR_ROUTE_NOT_FOUND. One attempt, never another queue. Blocks. Ownership: as
/// rmq_producer_send_sync.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_sync_to_queue(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    queue: *const rmq_message_queue_t,
    out_result: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let p = producer_of(producer)?;
        let mq = queue_arg(queue)?;
        let prepared = prepare(&p, message)?;
        let result = p.producer.send_prepared_to_queue_blocking(&prepared, mq)?;
        write_result(out_result, result);
        Ok(())
    })
}

/// Async send of `message` to `queue` (both borrowed for the call), retrying transport failures
/// on that same queue. Queue rules as rmq_producer_send_sync_to_queue; callback, user_data and
/// the in-flight window as rmq_producer_send_async.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_async_to_queue(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    queue: *const rmq_message_queue_t,
    callback: rmq_send_callback_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let callback = send_callback(callback, user_data)?;
        let p = producer_of(producer)?;
        let mq = queue_arg(queue)?;
        let prepared = prepare(&p, message)?;
        p.producer
            .send_prepared_to_queue_with_callback(prepared, mq, callback)?;
        Ok(())
    })
}
