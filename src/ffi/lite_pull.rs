//! rmq_lite_pull_consumer_* and rmq_message_queue_list_*: the lite pull consumer, whose polls
//! return the same rmq_received_batch_t as the push consumer's poll mode.
use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use super::boundary::*;
use super::config::{rmq_config_t, CONFIGS};
use super::handles::Registry;
use super::ordered::{queue_arg, rmq_message_queue_t, views};
use super::poll::{batch_handle, rmq_received_batch_t};
use super::status::*;
use crate::client::MessageQueue;
use crate::consumer::{ExpressionType, LitePullConsumer};

/// A lite pull consumer (Java's DefaultLitePullConsumer): the application takes messages with
/// rmq_lite_pull_consumer_poll at its own pace. Every rmq_lite_pull_consumer_ function may be
/// called from any thread; the library never calls back into the application for it.
pub struct rmq_lite_pull_consumer_t {
    _private: [u8; 0],
}

/// A list of message queues (rmq_lite_pull_consumer_fetch_message_queues, _assignment). Owned
/// by the caller; free it with rmq_message_queue_list_destroy. Immutable.
pub struct rmq_message_queue_list_t {
    _private: [u8; 0],
}

struct QueueList {
    _queues: Vec<MessageQueue>,
    views: Vec<rmq_message_queue_t>,
}

// SAFETY: the views point into `_queues`' shared names, immutable and owned by the list.
unsafe impl Send for QueueList {}
unsafe impl Sync for QueueList {}

static LITE_CONSUMERS: Registry<LitePullConsumer> = Registry::new("lite pull consumer");
static QUEUE_LISTS: Registry<QueueList> = Registry::new("message queue list");

fn lite_of(handle: *const rmq_lite_pull_consumer_t) -> FfiResult<Arc<LitePullConsumer>> {
    let c = LITE_CONSUMERS.get(handle)?;
    if c.is_forked() {
        return Err(crate::Error::Forked.into());
    }
    Ok(c)
}

/// `count` queues at `queues` (NULL only with 0), copied.
unsafe fn queues_arg(
    queues: *const rmq_message_queue_t,
    count: usize,
) -> FfiResult<Vec<MessageQueue>> {
    arg_array(queues, count, "queues")?
        .iter()
        .map(|q| queue_arg(q))
        .collect()
}

fn list_handle(queues: Vec<MessageQueue>) -> *mut rmq_message_queue_list_t {
    let views = views(&queues);
    QUEUE_LISTS.insert(Arc::new(QueueList {
        _queues: queues,
        views,
    }))
}

fn timeout_of(timeout_ms: i64) -> Duration {
    if timeout_ms < 0 {
        Duration::MAX
    } else {
        Duration::from_millis(timeout_ms as u64)
    }
}

/// Creates a lite pull consumer from `config` (borrowed for the call; copied). `consumer.group`
/// and `name-server` must be set. Keys that apply: consumer.consume-from-where (where a queue
/// without a committed offset starts), consumer.allocate-strategy, consumer.pull-batch-size
/// (the most messages one poll returns), consumer.pull-threshold-for-queue,
/// consumer.pull-threshold-size-for-queue, consumer.pull-threshold-for-all,
/// consumer.auto-commit, consumer.auto-commit-interval, consumer.rebalance-interval.
/// Ownership: on success *out_consumer is owned by the caller; free it with
/// rmq_lite_pull_consumer_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_create(
    config: *const rmq_config_t,
    out_consumer: *mut *mut rmq_lite_pull_consumer_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_consumer, "out_consumer")?;
        let cfg = CONFIGS.get(config)?;
        let consumer_config = cfg.lock().consumer_config()?;
        *out = LITE_CONSUMERS.insert(Arc::new(LitePullConsumer::new(consumer_config)?));
        Ok(())
    })
}

fn subscribe(
    consumer: *mut rmq_lite_pull_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
    kind: ExpressionType,
) -> FfiResult {
    let c = lite_of(consumer)?;
    // SAFETY: the exported functions' contract: NUL-terminated strings or NULL.
    let topic = unsafe { arg_str(topic, "topic")? };
    let expression = unsafe { arg_str(expression, "expression")? };
    c.subscribe_with(topic, expression, kind)?;
    Ok(())
}

/// Subscribes `topic` with a tag expression ("*", "TagA || TagB"; both NUL-terminated,
/// borrowed for the call): the topic's queues are shared among the group's consumers by
/// rebalance. Before start only, and not on a consumer with assigned queues
/// (RMQ_ERR_INVALID_STATE).
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_subscribe(
    consumer: *mut rmq_lite_pull_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
) -> rmq_status_t {
    guard(|| subscribe(consumer, topic, expression, ExpressionType::Tag))
}

/// As rmq_lite_pull_consumer_subscribe with an SQL92 expression over message properties (the
/// broker needs enablePropertyFilter=true).
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_subscribe_sql92(
    consumer: *mut rmq_lite_pull_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
) -> rmq_status_t {
    guard(|| subscribe(consumer, topic, expression, ExpressionType::Sql92))
}

/// Takes exactly these `count` (>= 1) queues (borrowed for the call), every message of them,
/// replacing an earlier assignment; queues no longer listed are released (with
/// consumer.auto-commit their consumed offsets are committed first). A queue starts at the
/// group's committed offset, else at consumer.consume-from-where. Before or after start; not on
/// a consumer that subscribed (RMQ_ERR_INVALID_STATE). Blocks for route queries after start.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_assign(
    consumer: *mut rmq_lite_pull_consumer_t,
    queues: *const rmq_message_queue_t,
    count: usize,
) -> rmq_status_t {
    guard(|| {
        let c = lite_of(consumer)?;
        c.assign(&queues_arg(queues, count)?)?;
        Ok(())
    })
}

/// Starts the consumer: registers the group with the brokers, takes the assigned queues or runs
/// the first rebalance of the subscribed topics, and starts pulling in the background. Blocks
/// for route queries and the first heartbeat (each within client.api-timeout). A consumer with
/// neither subscriptions nor queues may start and assign later. RMQ_ERR_INVALID_STATE for a
/// second start or a start after shutdown.
#[no_mangle]
pub extern "C" fn rmq_lite_pull_consumer_start(
    consumer: *mut rmq_lite_pull_consumer_t,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.start()?;
        Ok(())
    })
}

/// The readable queues of `topic` (NUL-terminated, borrowed), sorted by broker and queue id:
/// what rmq_lite_pull_consumer_assign takes. After start. On success *out_list is owned by the
/// caller (rmq_message_queue_list_destroy).
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_fetch_message_queues(
    consumer: *mut rmq_lite_pull_consumer_t,
    topic: *const c_char,
    out_list: *mut *mut rmq_message_queue_list_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_list, "out_list")?;
        let c = lite_of(consumer)?;
        let topic = arg_str(topic, "topic")?;
        *out = list_handle(c.fetch_message_queues(topic)?);
        Ok(())
    })
}

/// The queues the consumer owns now (assigned, or given by rebalance), sorted. On success
/// *out_list is owned by the caller (rmq_message_queue_list_destroy).
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_assignment(
    consumer: *mut rmq_lite_pull_consumer_t,
    out_list: *mut *mut rmq_message_queue_list_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_list, "out_list")?;
        *out = list_handle(lite_of(consumer)?.assignment());
        Ok(())
    })
}

/// The queues of the list: *out_queues points to *out_count entries whose strings are borrowed
/// from the list, valid until rmq_message_queue_list_destroy. An empty list gives a count of 0.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_queue_list_views(
    list: *const rmq_message_queue_list_t,
    out_queues: *mut *const rmq_message_queue_t,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_queues, "out_queues")?;
        let out_count = out_ptr(out_count, "out_count")?;
        let l = QUEUE_LISTS.get(list)?;
        // The Vec never changes, so its buffer lives as long as the list.
        *out = l.views.as_ptr();
        *out_count = l.views.len();
        Ok(())
    })
}

/// Frees the list. NULL is a no-op (RMQ_OK); a stale handle is RMQ_ERR_INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn rmq_message_queue_list_destroy(
    list: *mut rmq_message_queue_list_t,
) -> rmq_status_t {
    guard(|| {
        if list.is_null() {
            return Ok(());
        }
        QUEUE_LISTS.get(list)?;
        QUEUE_LISTS.remove(list);
        Ok(())
    })
}

/// Waits up to `timeout_ms` (0: do not wait; negative: no limit) for pulled messages and takes
/// up to consumer.pull-batch-size of them, possibly of several queues. On RMQ_OK *out_batch is a
/// batch, or NULL when nothing came in time.
///
/// The messages count as consumed when polled: their queues' consumed offsets move past them
/// (committed by auto-commit or rmq_lite_pull_consumer_commit). The batch is the push
/// consumer's rmq_received_batch_t, read the same way (rmq_received_batch_count, _at, _views and
/// the rmq_received_message_ accessors); it needs no acknowledgement: free it with
/// rmq_received_batch_destroy (or rmq_received_batch_ack, the same for it). Ownership: a
/// non-NULL *out_batch is owned by the caller; its messages are valid until it is freed.
///
/// Threads: blocks the calling thread (any thread; several may poll at once).
/// rmq_lite_pull_consumer_shutdown or _destroy from another thread wakes it with
/// RMQ_ERR_INVALID_STATE, as is a poll before start or after shutdown.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_poll(
    consumer: *mut rmq_lite_pull_consumer_t,
    timeout_ms: i64,
    out_batch: *mut *mut rmq_received_batch_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_batch, "out_batch")?;
        let c = lite_of(consumer)?;
        *out = batch_handle(c.poll(timeout_of(timeout_ms))?);
        Ok(())
    })
}

/// Commits the consumed offset of every owned queue to the broker and waits for the answers
/// (Java's commitSync). The first failure is returned; the other queues are committed anyway.
/// After start.
#[no_mangle]
pub extern "C" fn rmq_lite_pull_consumer_commit(
    consumer: *mut rmq_lite_pull_consumer_t,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.commit()?;
        Ok(())
    })
}

/// Commits `offsets[i]` (the next offset to consume) for `queues[i]`, `count` of each
/// (borrowed for the call), and waits for the answers. Every queue must be owned by the
/// consumer (RMQ_ERR_INVALID_ARGUMENT otherwise, nothing committed). The consumed offsets do not
/// change: a later auto-commit stores them again.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_commit_offsets(
    consumer: *mut rmq_lite_pull_consumer_t,
    queues: *const rmq_message_queue_t,
    offsets: *const i64,
    count: usize,
) -> rmq_status_t {
    guard(|| {
        let c = lite_of(consumer)?;
        let qs = queues_arg(queues, count)?;
        let offsets = arg_array(offsets, count, "offsets")?;
        let pairs: Vec<(MessageQueue, i64)> = qs.into_iter().zip(offsets.iter().copied()).collect();
        c.commit_offsets(&pairs)?;
        Ok(())
    })
}

/// The group's offset of `queue` (borrowed) stored at the broker, any queue; RMQ_ERR_NOT_FOUND
/// when it has none. After start.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_committed(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
    out_offset: *mut i64,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_offset, "out_offset")?;
        let c = lite_of(consumer)?;
        let mq = queue_arg(queue)?;
        match c.committed(&mq)? {
            Some(o) => {
                *out = o;
                Ok(())
            }
            None => Err(FfiError::new(
                RMQ_ERR_NOT_FOUND,
                format!("the group has no committed offset for {mq:?}"),
            )),
        }
    })
}

/// Polls of `queue` (borrowed; one the consumer owns, else RMQ_ERR_INVALID_ARGUMENT) continue
/// from `offset`, which must lie between the queue's first and last offsets
/// (RMQ_ERR_INVALID_ARGUMENT otherwise); messages pulled before are dropped, and the queue's
/// consumed offset becomes `offset`. After start; blocks for two offset queries.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_seek(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
    offset: i64,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.seek(&queue_arg(queue)?, offset)?;
        Ok(())
    })
}

/// rmq_lite_pull_consumer_seek to the queue's first stored message.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_seek_to_begin(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.seek_to_begin(&queue_arg(queue)?)?;
        Ok(())
    })
}

/// rmq_lite_pull_consumer_seek past the queue's last message: only later messages are polled.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_seek_to_end(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.seek_to_end(&queue_arg(queue)?)?;
        Ok(())
    })
}

/// rmq_lite_pull_consumer_seek to the first message stored at or after `timestamp_ms` (ms since
/// the epoch; the queue's end when there is none).
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_seek_to_timestamp(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
    timestamp_ms: i64,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.seek_to_timestamp(&queue_arg(queue)?, timestamp_ms)?;
        Ok(())
    })
}

/// The offset of the first message of `queue` (borrowed; any queue) stored at or after
/// `timestamp_ms`, the queue's end when there is none. After start.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_offset_for_timestamp(
    consumer: *mut rmq_lite_pull_consumer_t,
    queue: *const rmq_message_queue_t,
    timestamp_ms: i64,
    out_offset: *mut i64,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_offset, "out_offset")?;
        *out = lite_of(consumer)?.offset_for_timestamp(&queue_arg(queue)?, timestamp_ms)?;
        Ok(())
    })
}

/// Pauses these `count` queues (borrowed): polls return none of their messages until
/// rmq_lite_pull_consumer_resume (what was pulled is dropped and pulled again after resume,
/// from the consumed offset), and their pulling stops. A queue not owned yet stays paused if it
/// comes later. Before or after start.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_pause(
    consumer: *mut rmq_lite_pull_consumer_t,
    queues: *const rmq_message_queue_t,
    count: usize,
) -> rmq_status_t {
    guard(|| {
        let c = lite_of(consumer)?;
        c.pause(&queues_arg(queues, count)?);
        Ok(())
    })
}

/// Resumes these `count` queues (borrowed): pulling and polling go on from their consumed
/// offsets. Queues not paused are ignored.
#[no_mangle]
pub unsafe extern "C" fn rmq_lite_pull_consumer_resume(
    consumer: *mut rmq_lite_pull_consumer_t,
    queues: *const rmq_message_queue_t,
    count: usize,
) -> rmq_status_t {
    guard(|| {
        let c = lite_of(consumer)?;
        c.resume(&queues_arg(queues, count)?);
        Ok(())
    })
}

/// Stops the consumer: pulling stops, waiting polls return RMQ_ERR_INVALID_STATE, with
/// consumer.auto-commit the consumed offsets are committed (without it nothing beyond what
/// rmq_lite_pull_consumer_commit stored), and the group is unregistered. Idempotent. Batches
/// already polled stay valid until freed.
#[no_mangle]
pub extern "C" fn rmq_lite_pull_consumer_shutdown(
    consumer: *mut rmq_lite_pull_consumer_t,
) -> rmq_status_t {
    guard(|| {
        lite_of(consumer)?.shutdown()?;
        Ok(())
    })
}

/// Shuts the consumer down if needed (as rmq_lite_pull_consumer_shutdown) and frees it. After
/// fork() in the child it frees the handle without touching the parent's connections. NULL is
/// a no-op (RMQ_OK); a stale handle is RMQ_ERR_INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn rmq_lite_pull_consumer_destroy(
    consumer: *mut rmq_lite_pull_consumer_t,
) -> rmq_status_t {
    guard(|| {
        if consumer.is_null() {
            return Ok(());
        }
        let c = LITE_CONSUMERS.get(consumer)?;
        if c.is_forked() {
            // The parent's sockets and threads: dropping would reach into them.
            if let Some(registered) = LITE_CONSUMERS.remove(consumer) {
                std::mem::forget(registered);
            }
            std::mem::forget(c);
            return Ok(());
        }
        let _ = c.shutdown();
        LITE_CONSUMERS.remove(consumer);
        Ok(())
    })
}
