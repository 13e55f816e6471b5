//! rmq_producer_send_batch, the batch-split helper, and the per-message ids of a batch result.
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::boundary::*;
use super::message::{rmq_message_t, MESSAGES};
use super::producer::{
    producer_of, rmq_producer_t, rmq_send_callback_t, rmq_send_result_t, send_callback,
    with_result, RESULTS,
};
use super::status::*;
use crate::protocol::message::Message;

/// Copies of the messages behind `count` handles, each locked only while it is copied (bodies are
/// shared, not duplicated). The same handle may appear more than once.
unsafe fn messages_of(
    messages: *const *const rmq_message_t,
    count: usize,
) -> FfiResult<Vec<Message>> {
    let handles = arg_array(messages, count, "messages")?;
    let mut out = Vec::new();
    out.try_reserve_exact(count).map_err(|_| {
        FfiError::new(
            RMQ_ERR_RESOURCE,
            format!("cannot allocate room for {count} messages"),
        )
    })?;
    for h in handles {
        out.push(MESSAGES.get(*h)?.lock().message.clone());
    }
    Ok(out)
}

/// Sends `count` messages of one topic in one request (SEND_BATCH_MESSAGE) and waits for the
/// broker's answer, retrying on another broker as rmq_producer_send_sync does. `messages` is an
/// array of `count` message handles, all borrowed for the call. The Java rules hold: one topic,
/// at least one message, not a %RETRY% topic, no delay level or timer, the same WAIT flag; bodies are not compressed;
/// the encoded batch must fit producer.max-message-size (see rmq_producer_split_batch). A broken
/// rule is RMQ_ERR_INVALID_ARGUMENT (or RMQ_ERR_MESSAGE_TOO_LARGE) and nothing is sent.
/// Each message gets its own message id: rmq_send_result_message_count, rmq_send_result_msg_id_at
/// and rmq_send_result_offset_msg_id_at give them in the order of `messages`
/// (rmq_send_result_msg_id gives them all, joined by ','). Blocks the calling thread.
/// Ownership: on success *out_result is owned by the caller; free it with
/// rmq_send_result_destroy. `out_result` may be NULL if the result is not wanted.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_batch(
    producer: *mut rmq_producer_t,
    messages: *const *const rmq_message_t,
    count: usize,
    out_result: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let p = producer_of(producer)?;
        let msgs = messages_of(messages, count)?;
        let prepared = p.producer.prepare_batch(&msgs)?;
        let result = p.producer.send_prepared_blocking(&prepared)?;
        if !out_result.is_null() {
            *out_result = RESULTS.insert(Arc::new(result));
        }
        Ok(())
    })
}

/// Sends `count` messages of one topic in one request (SEND_BATCH_MESSAGE) without waiting: the
/// batch rules, sizes and message ids of rmq_producer_send_batch, and the callback, retries and
/// in-flight window of rmq_producer_send_async. `messages` is an array of `count` message
/// handles, all borrowed for the call (the library copies what it needs). A broken batch rule
/// fails here (RMQ_ERR_INVALID_ARGUMENT or RMQ_ERR_MESSAGE_TOO_LARGE) and nothing is sent.
/// On RMQ_OK, `callback` runs exactly once later with the outcome and `user_data`, on a callback
/// thread of the producer's client instance, as for rmq_producer_send_async (after shutdown,
/// with RMQ_ERR_CANCELLED); on any other status it never runs. `callback` must not be NULL;
/// `user_data` is passed through untouched and must stay valid until the callback has run. The
/// result in the callback gives each message's ids (rmq_send_result_msg_id_at). The batch holds
/// one slot of producer.max-in-flight-async-sends.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_batch_async(
    producer: *mut rmq_producer_t,
    messages: *const *const rmq_message_t,
    count: usize,
    callback: rmq_send_callback_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let callback = send_callback(callback, user_data)?;
        let p = producer_of(producer)?;
        let msgs = messages_of(messages, count)?;
        p.producer.send_batch_with_callback(&msgs, callback)?;
        Ok(())
    })
}

/// Cuts `count` messages (an array of handles, borrowed for the call) into consecutive batches
/// that each fit the producer's producer.max-message-size, keeping their order: writes the number
/// of messages of each batch to `out_lengths` (room for `capacity` entries) and the number of
/// batches to *out_batches (which may exceed `capacity`: then only the first `capacity` lengths
/// are written; at most `count` are ever needed). Send batch i with rmq_producer_send_batch on the
/// messages after those of batches 0..i. A message too large for a batch on its own is
/// RMQ_ERR_MESSAGE_TOO_LARGE. `count` 0 gives 0 batches. Checks sizes only; the other batch rules are checked when sent.
/// Does no I/O; the producer need not be started.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_split_batch(
    producer: *mut rmq_producer_t,
    messages: *const *const rmq_message_t,
    count: usize,
    out_lengths: *mut usize,
    capacity: usize,
    out_batches: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out_batches = out_ptr(out_batches, "out_batches")?;
        if capacity > 0 {
            out_ptr(out_lengths, "out_lengths")?;
        }
        let p = producer_of(producer)?;
        let msgs = messages_of(messages, count)?;
        let batches = p.producer.split_batches(&msgs)?;
        *out_batches = batches.len();
        for (i, b) in batches.iter().take(capacity).enumerate() {
            *out_lengths.add(i) = b.len();
        }
        Ok(())
    })
}

/// Number of messages the send stored: 1, or the size of a batch.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_message_count(
    result: *const rmq_send_result_t,
    out: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            *out_ptr(out, "out")? = r.msg_ids().count();
            Ok(())
        })
    })
}

fn nth<'a>(mut ids: impl Iterator<Item = &'a str>, index: usize) -> FfiResult<&'a str> {
    ids.nth(index).ok_or_else(|| {
        FfiError::new(
            RMQ_ERR_NOT_FOUND,
            format!("the result has no message {index} (see rmq_send_result_message_count)"),
        )
    })
}

/// Borrowed view of the message id (UNIQ_KEY) of message `index` of the send (0 for a single
/// message; the batch order otherwise), valid until the result is destroyed. An index past the
/// end is RMQ_ERR_NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_msg_id_at(
    result: *const rmq_send_result_t,
    index: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            write_str(nth(r.msg_ids(), index)?, out, out_len)
        })
    })
}

/// Borrowed view of the store id (for rmq_producer_view_message) of message `index` of the send,
/// as rmq_send_result_msg_id_at.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_offset_msg_id_at(
    result: *const rmq_send_result_t,
    index: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| {
            write_str(nth(r.offset_msg_ids(), index)?, out, out_len)
        })
    })
}
