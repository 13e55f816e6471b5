//! rmq_push_consumer_set_orderly_listener: orderly consumption through the C ABI. The messages
//! are lent to C as for the concurrent listener (see consumer.rs).
use std::ffi::c_void;
use std::time::Duration;

use super::boundary::*;
use super::consumer::{consumer_of, lend, rmq_push_consumer_t, rmq_received_message_t, Gate};
use super::status::*;
use crate::consumer::OrderlyResult;

/// What an orderly listener says about its batch (its return value).
pub type rmq_consume_orderly_status_t = i32;
/// Consumed: the queue's offset may move past these messages and the next ones follow.
pub const RMQ_CONSUME_ORDERLY_SUCCESS: rmq_consume_orderly_status_t = 0;
/// Stop this queue a moment (rmq_consume_orderly_context_t.suspend_millis) and deliver the same
/// messages again, in the same order; other queues go on meanwhile. After
/// consumer.max-reconsume-times suspensions a message goes to %DLQ%<group> and the queue moves
/// on. Any value other than RMQ_CONSUME_ORDERLY_SUCCESS counts as this.
pub const RMQ_CONSUME_ORDERLY_SUSPEND: rmq_consume_orderly_status_t = 1;

/// What an orderly listener may say besides its status. Owned by the library; valid until the
/// listener returns.
#[repr(C)]
pub struct rmq_consume_orderly_context_t {
    /// How long the queue waits after RMQ_CONSUME_ORDERLY_SUSPEND, in ms. The listener finds
    /// consumer.suspend-current-queue-time-millis here and may change it; values outside
    /// 10..30000 are brought to the nearer bound. Ignored with RMQ_CONSUME_ORDERLY_SUCCESS.
    pub suspend_millis: i64,
}

/// The orderly listener of a push consumer: called with `count` (>= 1) messages of one queue,
/// at most consumer.consume-message-batch-max-size of them, in queue offset order. Calls for
/// one queue never overlap and follow the queue's order; the queue is locked at its broker for
/// this consumer while they run, so no other consumer of the group receives its messages (in
/// POP mode the broker hands out none of the queue's later messages until these are answered).
///
/// Thread: one of the consumer's own threads ("rmq-c<id>-N"), never an I/O thread or the
/// application's thread, and never while the library holds a lock. Calls for different queues
/// run at once on different threads, so `user_data` must be safe to use concurrently.
///
/// Lifetime: `messages`, each message in it, and `context` are borrowed until the listener
/// returns; after that the message handles are invalid (RMQ_ERR_INVALID_HANDLE).
///
/// It may call rmq_ functions, but not rmq_push_consumer_shutdown or _destroy of its own
/// consumer (RMQ_ERR_INVALID_STATE). If the consumer is shutting down, a batch not yet started
/// is not handed to it; it is delivered again later (to this consumer after a restart, or to
/// another one of the group).
pub type rmq_orderly_listener_t = Option<
    unsafe extern "C" fn(
        messages: *const *const rmq_received_message_t,
        count: usize,
        context: *mut rmq_consume_orderly_context_t,
        user_data: *mut c_void,
    ) -> rmq_consume_orderly_status_t,
>;

struct COrderlyListener {
    callback: unsafe extern "C" fn(
        *const *const rmq_received_message_t,
        usize,
        *mut rmq_consume_orderly_context_t,
        *mut c_void,
    ) -> rmq_consume_orderly_status_t,
    user_data: *mut c_void,
    gate: std::sync::Arc<Gate>,
    suspend: Duration,
}

// SAFETY: user_data goes back only to the caller's own listener, and the header makes the
// caller responsible for its use from several threads at once.
unsafe impl Send for COrderlyListener {}
unsafe impl Sync for COrderlyListener {}

impl COrderlyListener {
    fn call(&self, msgs: &[std::sync::Arc<crate::MessageExt>]) -> OrderlyResult {
        let mut context = rmq_consume_orderly_context_t {
            suspend_millis: self.suspend.as_millis() as i64,
        };
        // SAFETY: the caller supplied this listener for exactly this use; the handles and the
        // context live until it returns.
        let status = lend(&self.gate, msgs, |ptr, len| unsafe {
            (self.callback)(ptr, len, &mut context, self.user_data)
        });
        match status {
            Some(RMQ_CONSUME_ORDERLY_SUCCESS) => OrderlyResult::Success,
            Some(_) => OrderlyResult::Suspend {
                suspend: Some(Duration::from_millis(
                    context.suspend_millis.clamp(10, 30_000) as u64,
                )),
            },
            None => OrderlyResult::Suspend { suspend: None },
        }
    }
}

/// Sets an orderly listener (see rmq_orderly_listener_t) and its `user_data`, passed through
/// untouched; it must stay valid until rmq_push_consumer_destroy has returned. It replaces a
/// listener set with rmq_push_consumer_set_listener, and the other way round. Before start only
/// (else RMQ_ERR_INVALID_STATE). `listener` must not be NULL.
///
/// Orderly consumption: a queue is locked at its broker (LOCK_BATCH_MQ) before it is consumed
/// and locked again every 20 s; it is unlocked when a rebalance gives it to another consumer
/// (after its offset is committed, once the running call has returned) and at shutdown. The
/// offset moves only past messages the listener consumed (or that went to the DLQ).
///
/// In POP mode (consumer.consume-mode=pop, 5.x brokers) there are no locks: messages are popped
/// with order=true, and the broker hands a queue's next messages out only once the ones before
/// are acked. Success acks the batch; suspend makes it and the rest of what was popped of its
/// queue invisible for `suspend_millis`, after which they come again in the same order, their
/// reconsume count being the broker's count of earlier pops. Each assignment pops again only
/// once its last popped messages are answered (and after a suspend, once they are visible).
#[no_mangle]
pub extern "C" fn rmq_push_consumer_set_orderly_listener(
    consumer: *mut rmq_push_consumer_t,
    listener: rmq_orderly_listener_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let Some(callback) = listener else {
            return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "listener is NULL"));
        };
        let c = consumer_of(consumer)?;
        let listener = COrderlyListener {
            callback,
            user_data,
            gate: std::sync::Arc::clone(&c.gate),
            suspend: c.consumer.config().suspend_current_queue_time,
        };
        c.consumer
            .set_orderly_listener(move |msgs| listener.call(msgs))?;
        Ok(())
    })
}
