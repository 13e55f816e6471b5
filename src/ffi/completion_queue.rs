//! Completion queues: rmq_completion_queue_* and rmq_producer_send_async_queued.
//!
//! The poll path next to send callbacks: results of async sends land in a queue the application
//! drains many at a time (rmq_completion_queue_poll), on a thread it chooses, optionally woken
//! by a descriptor its event loop watches (rmq_completion_queue_fd). Results are flat structs
//! written into the caller's array: nothing to free per result.
use std::ffi::c_char;
use std::time::Duration;

use super::boundary::*;
use super::handles::Registry;
use super::message::rmq_message_t;
use super::producer::{
    prepare, producer_of, rmq_producer_t, rmq_send_status_t, RMQ_SEND_FLUSH_DISK_TIMEOUT,
    RMQ_SEND_FLUSH_SLAVE_TIMEOUT, RMQ_SEND_OK, RMQ_SEND_SLAVE_NOT_AVAILABLE,
};
use super::status::*;
use crate::producer::completion_queue::{Completed, CompletionQueue};
use crate::producer::SendStatus;

/// A queue of async send results, shared by any number of producers. Owned by the caller: free
/// it with rmq_completion_queue_destroy. Every function on it may be called from any thread,
/// concurrently; results are handed out once, to whichever poll takes them.
pub struct rmq_completion_queue_t {
    _private: [u8; 0],
}

/// One result taken by rmq_completion_queue_poll: a plain value in the caller's array, with no
/// pointers and nothing to free. Strings are NUL-terminated; a longer `error_message` is cut at
/// 255 bytes (on a UTF-8 boundary), a longer `broker_name` at 127 (message ids always fit).
/// This struct never grows: a later version adds a new struct and function instead.
#[repr(C)]
pub struct rmq_completion_t {
    /// The `user_tag` given to rmq_producer_send_async_queued.
    pub user_tag: u64,
    /// RMQ_OK, or why the send failed (RMQ_ERR_CANCELLED if its producer was shut down first).
    pub status: rmq_status_t,
    /// The broker's response code when the broker refused the send, else 0.
    pub broker_code: i32,
    /// On RMQ_OK: RMQ_SEND_OK, RMQ_SEND_FLUSH_DISK_TIMEOUT, ...; 0 otherwise.
    pub send_status: rmq_send_status_t,
    /// On RMQ_OK: the queue the message went to; -1 otherwise.
    pub queue_id: i32,
    /// On RMQ_OK: the message's offset in that queue; -1 otherwise.
    pub queue_offset: i64,
    /// On RMQ_OK: the message id (UNIQ_KEY); "" otherwise.
    pub msg_id: [c_char; 64],
    /// On RMQ_OK: the broker store id (for rmq_producer_view_message); "" otherwise.
    pub offset_msg_id: [c_char; 64],
    /// On RMQ_OK: the topic (without the namespace; topics never exceed 127 bytes); ""
    /// otherwise.
    pub topic: [c_char; 128],
    /// On RMQ_OK: the broker that stored the message; "" otherwise.
    pub broker_name: [c_char; 128],
    /// On failure: what went wrong; "" on RMQ_OK.
    pub error_message: [c_char; 256],
}

static QUEUES: Registry<CompletionQueue> = Registry::new("completion queue");

/// Makes a completion queue that owes at most `capacity` results at a time (sends in flight
/// plus results not yet polled; at least 1): a send past that fails with RMQ_ERR_IN_FLIGHT_FULL
/// at once, so a queue nobody polls stops sends instead of growing. A send also holds its
/// producer's slot of producer.max-in-flight-async-sends until its result is in the queue.
/// Ownership: on success *out is owned by the caller; free it with
/// rmq_completion_queue_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_completion_queue_new(
    capacity: usize,
    out: *mut *mut rmq_completion_queue_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let q = CompletionQueue::new(capacity)?;
        *out = QUEUES.insert(std::sync::Arc::new(q));
        Ok(())
    })
}

/// Sends `message` (borrowed for the call; the library copies what it needs) without waiting;
/// the outcome is delivered to `queue` as one rmq_completion_t carrying `user_tag`, exactly
/// once, whatever happens (a producer shut down first delivers RMQ_ERR_CANCELLED). On any
/// status other than RMQ_OK nothing was sent and nothing will be delivered. No callback runs
/// and no callback thread is involved: the library thread that finishes the send only appends
/// to the queue. Errors: RMQ_ERR_IN_FLIGHT_FULL when the queue owes its capacity already (poll
/// it), or as rmq_producer_send_async for the producer's own in-flight window (which may wait
/// for a free slot, per producer.block-when-in-flight-full); RMQ_ERR_INVALID_STATE for a
/// destroyed queue still in use by another thread; the usual handle and message errors.
/// Retries on another broker as rmq_producer_send_async.
#[no_mangle]
pub unsafe extern "C" fn rmq_producer_send_async_queued(
    producer: *mut rmq_producer_t,
    message: *const rmq_message_t,
    queue: *mut rmq_completion_queue_t,
    user_tag: u64,
) -> rmq_status_t {
    guard(|| {
        let q = QUEUES.get(queue)?;
        let p = producer_of(producer)?;
        let prepared = prepare(&p, message)?;
        q.send_prepared(&p.producer, prepared, user_tag)?;
        Ok(())
    })
}

/// Takes up to `max` results, oldest first, writing them to results[0..*out_count]. Waits up
/// to `timeout_ms` for the first one: 0 does not wait, a negative value waits until one
/// arrives or the queue is destroyed by another thread. *out_count is 0 on timeout and when the
/// queue is destroyed during the wait (the next call then fails with RMQ_ERR_INVALID_HANDLE).
/// `results` is owned by the caller and written only in [0, *out_count); it may be NULL only
/// if `max` is 0. Blocks the calling thread while it waits; do not wait from a library
/// callback thread.
#[no_mangle]
pub unsafe extern "C" fn rmq_completion_queue_poll(
    queue: *mut rmq_completion_queue_t,
    results: *mut rmq_completion_t,
    max: usize,
    timeout_ms: i32,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out_count = out_ptr(out_count, "out_count")?;
        let q = QUEUES.get(queue)?;
        if max > 0 && results.is_null() {
            return Err(FfiError::new(
                RMQ_ERR_NULL_POINTER,
                "results is NULL with max > 0",
            ));
        }
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let mut taken = Vec::with_capacity(max.min(1024));
        let n = q.poll(&mut taken, max, timeout);
        for (i, c) in taken.into_iter().enumerate() {
            fill(&mut *results.add(i), c);
        }
        *out_count = n;
        Ok(())
    })
}

/// A descriptor that is readable while results wait in `queue` (an eventfd on Linux, a pipe's
/// read end elsewhere): watch it with poll/epoll/select or an event loop (Python asyncio's
/// add_reader), then call rmq_completion_queue_poll with timeout 0 until it returns 0 results.
/// It stays readable until a poll empties the queue. It also becomes readable when the queue is
/// destroyed. Owned by the queue: never read, write or close it; it is closed by
/// rmq_completion_queue_destroy, so stop watching it first. *out_fd is written on success.
#[no_mangle]
pub unsafe extern "C" fn rmq_completion_queue_fd(
    queue: *const rmq_completion_queue_t,
    out_fd: *mut i32,
) -> rmq_status_t {
    guard(|| {
        let out_fd = out_ptr(out_fd, "out_fd")?;
        *out_fd = QUEUES.get(queue)?.wake_fd();
        Ok(())
    })
}

/// How many results `queue` owes (*out_owed: sends in flight plus results not yet polled) and
/// how many of those wait to be polled (*out_waiting). Either pointer may be NULL.
#[no_mangle]
pub unsafe extern "C" fn rmq_completion_queue_counts(
    queue: *const rmq_completion_queue_t,
    out_owed: *mut usize,
    out_waiting: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let q = QUEUES.get(queue)?;
        if !out_owed.is_null() {
            *out_owed = q.owed();
        }
        if !out_waiting.is_null() {
            *out_waiting = q.len();
        }
        Ok(())
    })
}

/// Frees `queue`. Results not yet polled are dropped; sends still in flight go on, and their
/// results are dropped when they arrive (their producers' windows are freed as usual), so it
/// never waits. A poll waiting on it in another thread returns with no results; any later call
/// with the handle fails with RMQ_ERR_INVALID_HANDLE. Destroy the queue after its producers
/// (rmq_producer_destroy delivers every result first) to keep every result. NULL is a no-op.
/// Destroying twice is a bug (the second call is RMQ_ERR_INVALID_HANDLE).
#[no_mangle]
pub extern "C" fn rmq_completion_queue_destroy(queue: *mut rmq_completion_queue_t) -> rmq_status_t {
    guard(|| {
        if queue.is_null() {
            return Ok(());
        }
        match QUEUES.remove(queue) {
            Some(q) => {
                q.close();
                Ok(())
            }
            None => Err(QUEUES.get(queue).err().unwrap_or_else(|| {
                FfiError::new(RMQ_ERR_INVALID_HANDLE, "completion queue already destroyed")
            })),
        }
    })
}

fn fill(out: &mut rmq_completion_t, c: Completed) {
    out.user_tag = c.tag;
    match c.outcome {
        Ok(r) => {
            out.status = RMQ_OK;
            out.broker_code = 0;
            out.send_status = match r.status {
                SendStatus::SendOk => RMQ_SEND_OK,
                SendStatus::FlushDiskTimeout => RMQ_SEND_FLUSH_DISK_TIMEOUT,
                SendStatus::FlushSlaveTimeout => RMQ_SEND_FLUSH_SLAVE_TIMEOUT,
                SendStatus::SlaveNotAvailable => RMQ_SEND_SLAVE_NOT_AVAILABLE,
            };
            out.queue_id = r.queue.queue_id;
            out.queue_offset = r.queue_offset;
            put(&mut out.msg_id, &r.msg_id);
            put(&mut out.offset_msg_id, &r.offset_msg_id);
            put(&mut out.topic, &r.queue.topic);
            put(&mut out.broker_name, &r.queue.broker_name);
            out.error_message[0] = 0;
        }
        Err(e) => {
            out.status = status_of(&e);
            out.broker_code = e.response_code().unwrap_or(0);
            out.send_status = 0;
            out.queue_id = -1;
            out.queue_offset = -1;
            out.msg_id[0] = 0;
            out.offset_msg_id[0] = 0;
            out.topic[0] = 0;
            out.broker_name[0] = 0;
            put(&mut out.error_message, &e.to_string());
        }
    }
}

/// Copies `s` NUL-terminated into `buf`, cut on a UTF-8 boundary to fit; a NUL inside `s` ends
/// it early (C would stop there anyway).
fn put(buf: &mut [c_char], s: &str) {
    let mut n = s.len().min(buf.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, b) in buf.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    buf[n] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_cuts_on_a_char_boundary_and_terminates() {
        let mut buf = [1 as c_char; 5];
        put(&mut buf, "abé"); // 4 bytes: fits with the NUL
        assert_eq!(&buf.map(|c| c as u8)[..], b"ab\xc3\xa9\0");
        put(&mut buf, "abcé"); // 5 bytes: é does not fit
        assert_eq!(
            &buf[..4].iter().map(|&c| c as u8).collect::<Vec<_>>(),
            b"abc\0"
        );
    }
}
