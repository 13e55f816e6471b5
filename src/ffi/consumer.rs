//! rmq_push_consumer_* and rmq_received_message_*.
//!
//! A C listener is wrapped into the core's listener. Each message of a batch is lent to C as a
//! temporary rmq_received_message_t handle that is registered just before the call and removed
//! just after it, so a handle kept past the callback is RMQ_ERR_INVALID_HANDLE, never a
//! dangling pointer. The handle shares the core's decoded message: nothing is copied.
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::boundary::*;
use super::config::{rmq_config_t, CONFIGS};
use super::handles::Registry;
use super::message::{write_body, write_property, write_property_at};
use super::status::*;
use crate::consumer::{ConsumeResult, ExpressionType, PushConsumer};
use crate::protocol::message::MessageExt;

/// A push consumer. Every rmq_push_consumer_ function may be called from any thread.
pub struct rmq_push_consumer_t {
    _private: [u8; 0],
}

/// A message handed to a listener: a borrowed view, valid only until the listener returns
/// (a message of a polled rmq_received_batch_t: until that batch is acknowledged or destroyed).
/// Read it with the rmq_received_message_ accessors; copy what you keep. Immutable, so it may
/// be read from several threads meanwhile.
pub struct rmq_received_message_t {
    _private: [u8; 0],
}

/// What a listener says about its batch (its return value).
pub type rmq_consume_status_t = i32;
/// Consumed: the consumer's offset may move past these messages.
pub const RMQ_CONSUME_SUCCESS: rmq_consume_status_t = 0;
/// Deliver the whole batch again later (after rmq_consume_context_t.delay_level). Any value
/// other than RMQ_CONSUME_SUCCESS counts as this: a message is never dropped by mistake.
pub const RMQ_CONSUME_RECONSUME_LATER: rmq_consume_status_t = 1;

/// What a listener may say besides its status. Owned by the library; valid until the listener
/// returns.
#[repr(C)]
pub struct rmq_consume_context_t {
    /// When a batch that returns RMQ_CONSUME_RECONSUME_LATER comes back. 0 (the value the
    /// listener finds) lets the broker choose (3 + times already reconsumed); 1 = 1 s, 2 = 5 s,
    /// 3 = 10 s, ... in the broker's delay-level table; a negative level sends the messages to
    /// the dead-letter queue (%DLQ%<group>) at once. Ignored with RMQ_CONSUME_SUCCESS.
    pub delay_level: i32,
}

/// The listener of a push consumer: called with `count` (>= 1) messages of one queue, at most
/// consumer.consume-message-batch-max-size of them.
///
/// Thread: one of the consumer's own threads ("rmq-c<id>-N", consumer.consume-thread-number of
/// them), never an I/O thread or the application's thread, and never while the library holds a
/// lock. Several calls run at once on different threads, so `user_data` must be safe to use
/// concurrently.
///
/// Lifetime: `messages`, each message in it, and `context` are borrowed until the listener
/// returns; after that the message handles are invalid (RMQ_ERR_INVALID_HANDLE).
///
/// It may call rmq_ functions, but not rmq_push_consumer_shutdown or _destroy of its own
/// consumer (RMQ_ERR_INVALID_STATE: it would wait for itself). If the consumer is shutting
/// down, a batch not yet started is not handed to it; it is delivered again later.
pub type rmq_message_listener_t = Option<
    unsafe extern "C" fn(
        messages: *const *const rmq_received_message_t,
        count: usize,
        context: *mut rmq_consume_context_t,
        user_data: *mut c_void,
    ) -> rmq_consume_status_t,
>;

/// Listener calls in progress, so destroy can wait for the last one and none starts after it.
#[derive(Default)]
pub(super) struct Gate {
    /// (closed, calls running)
    state: Mutex<(bool, usize)>,
    idle: Condvar,
}

impl Gate {
    fn enter(&self) -> bool {
        let mut s = self.state.lock();
        if s.0 {
            return false;
        }
        s.1 += 1;
        true
    }

    fn leave(&self) {
        let mut s = self.state.lock();
        s.1 -= 1;
        if s.1 == 0 {
            self.idle.notify_all();
        }
    }

    /// No call starts after this; returns when the running ones have returned.
    fn close_and_wait(&self) {
        let mut s = self.state.lock();
        s.0 = true;
        while s.1 > 0 {
            self.idle.wait(&mut s);
        }
    }
}

struct LeaveOnDrop<'a>(&'a Gate);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

pub(crate) struct FfiConsumer {
    pub(crate) consumer: PushConsumer,
    pub(super) gate: Arc<Gate>,
}

static CONSUMERS: Registry<FfiConsumer> = Registry::new("push consumer");
pub(crate) static RECEIVED: Registry<MessageExt> = Registry::new("received message");

/// A live consumer handle of this process: one made before fork() is RMQ_ERR_FORKED in the child.
pub(crate) fn consumer_of(handle: *const rmq_push_consumer_t) -> FfiResult<Arc<FfiConsumer>> {
    let c = CONSUMERS.get(handle)?;
    if c.consumer.is_forked() {
        return Err(crate::Error::Forked.into());
    }
    Ok(c)
}

/// The C listener and its user_data, run from the consumer's threads.
struct CListener {
    callback: unsafe extern "C" fn(
        *const *const rmq_received_message_t,
        usize,
        *mut rmq_consume_context_t,
        *mut c_void,
    ) -> rmq_consume_status_t,
    user_data: *mut c_void,
    gate: Arc<Gate>,
}

// SAFETY: user_data goes back only to the caller's own listener, and the header makes the
// caller responsible for its use from several threads at once.
unsafe impl Send for CListener {}
unsafe impl Sync for CListener {}

/// Removes the temporary handles when the call ends, however it ends.
struct Lent(Vec<*const rmq_received_message_t>);

impl Drop for Lent {
    fn drop(&mut self) {
        for h in &self.0 {
            RECEIVED.remove(*h);
        }
    }
}

/// Lends `msgs` to C as temporary handles for the duration of `call` (array pointer, count);
/// None, without calling, once the consumer is being destroyed.
pub(super) fn lend<R>(
    gate: &Gate,
    msgs: &[Arc<MessageExt>],
    call: impl FnOnce(*const *const rmq_received_message_t, usize) -> R,
) -> Option<R> {
    if !gate.enter() {
        return None;
    }
    let _leave = LeaveOnDrop(gate);
    let lent = Lent(
        msgs.iter()
            .map(|m| RECEIVED.insert::<rmq_received_message_t>(Arc::clone(m)) as *const _)
            .collect(),
    );
    Some(call(lent.0.as_ptr(), lent.0.len()))
}

impl CListener {
    fn call(&self, msgs: &[Arc<MessageExt>]) -> ConsumeResult {
        let mut context = rmq_consume_context_t { delay_level: 0 };
        // SAFETY: the caller supplied this listener for exactly this use; the handles and the
        // context live until it returns.
        let status = lend(&self.gate, msgs, |ptr, len| unsafe {
            (self.callback)(ptr, len, &mut context, self.user_data)
        });
        let Some(status) = status else {
            return ConsumeResult::ReconsumeLater { delay_level: 0 };
        };
        match status {
            RMQ_CONSUME_SUCCESS => ConsumeResult::Success,
            _ => ConsumeResult::ReconsumeLater {
                delay_level: context.delay_level,
            },
        }
    }
}

/// Creates a push consumer from `config` (borrowed for the call; the consumer copies it).
/// `consumer.group` and `name-server` must be set; the consumer.* keys tune it. Nothing is
/// received until rmq_push_consumer_start.
/// Ownership: on success *out_consumer is owned by the caller; free it with
/// rmq_push_consumer_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_push_consumer_create(
    config: *const rmq_config_t,
    out_consumer: *mut *mut rmq_push_consumer_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_consumer, "out_consumer")?;
        let cfg = CONFIGS.get(config)?;
        let consumer_config = cfg.lock().consumer_config()?;
        let consumer = PushConsumer::new(consumer_config)?;
        *out = CONSUMERS.insert(Arc::new(FfiConsumer {
            consumer,
            gate: Arc::default(),
        }));
        Ok(())
    })
}

fn subscribe(
    consumer: *mut rmq_push_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
    kind: ExpressionType,
) -> FfiResult {
    let c = consumer_of(consumer)?;
    // SAFETY: the exported functions' contract: NUL-terminated strings or NULL.
    let topic = unsafe { arg_str(topic, "topic")? };
    let expression = unsafe { arg_str(expression, "expression")? };
    c.consumer.subscribe_with(topic, expression, kind)?;
    Ok(())
}

/// Subscribes `topic` with a tag expression: "*" (or "") for every message, "TagA" or
/// "TagA || TagB" for those tags (both NUL-terminated, borrowed for the call). The consumer's
/// %RETRY%<group> topic is subscribed automatically. Before start only (else
/// RMQ_ERR_INVALID_STATE); subscribing a topic again replaces its expression.
#[no_mangle]
pub unsafe extern "C" fn rmq_push_consumer_subscribe(
    consumer: *mut rmq_push_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
) -> rmq_status_t {
    guard(|| subscribe(consumer, topic, expression, ExpressionType::Tag))
}

/// Subscribes `topic` with an SQL92 expression over message properties, e.g. "a > 5 AND
/// b = 'x'" (both NUL-terminated, borrowed for the call). The broker evaluates it; it needs
/// enablePropertyFilter=true in the broker's configuration, else start or pulls fail. As
/// rmq_push_consumer_subscribe otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_push_consumer_subscribe_sql92(
    consumer: *mut rmq_push_consumer_t,
    topic: *const c_char,
    expression: *const c_char,
) -> rmq_status_t {
    guard(|| subscribe(consumer, topic, expression, ExpressionType::Sql92))
}

/// Sets the listener (see rmq_message_listener_t) and its `user_data`, passed through
/// untouched; it must stay valid until rmq_push_consumer_destroy has returned. Before start
/// only (else RMQ_ERR_INVALID_STATE); a later call replaces the listener. `listener` must not
/// be NULL.
#[no_mangle]
pub extern "C" fn rmq_push_consumer_set_listener(
    consumer: *mut rmq_push_consumer_t,
    listener: rmq_message_listener_t,
    user_data: *mut c_void,
) -> rmq_status_t {
    guard(|| {
        let Some(callback) = listener else {
            return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "listener is NULL"));
        };
        let c = consumer_of(consumer)?;
        let listener = CListener {
            callback,
            user_data,
            gate: Arc::clone(&c.gate),
        };
        c.consumer.set_listener(move |msgs| listener.call(msgs))?;
        Ok(())
    })
}

/// Starts the consumer: joins its client instance, fetches the subscribed topics' routes,
/// registers the group with the brokers, then rebalances and pulls in the background; the
/// listener is called as messages arrive. Blocks for the route queries and the first heartbeat
/// (each within client.api-timeout). Needs a listener and at least one subscription
/// (RMQ_ERR_INVALID_STATE otherwise, and for a second start or a start after shutdown).
/// With consumer.consume-mode=pop the brokers assign the queues and the consumer pops and acks
/// messages instead (same listener, same threads); poll mode is then RMQ_ERR_INVALID_STATE.
#[no_mangle]
pub extern "C" fn rmq_push_consumer_start(consumer: *mut rmq_push_consumer_t) -> rmq_status_t {
    guard(|| {
        consumer_of(consumer)?.consumer.start()?;
        Ok(())
    })
}

/// Stops the consumer: pulling stops; listener calls still running get up to
/// consumer.await-termination-millis-when-shutdown to return (batches not started are not
/// started; they and calls still running at that deadline are delivered again later);
/// offsets are committed up to the lowest message not consumed; the group is unregistered; the
/// consumer's threads end once idle. Idempotent. From the consumer's own listener it fails
/// with RMQ_ERR_INVALID_STATE. A listener call that outlives the deadline may still be running
/// when this returns; rmq_push_consumer_destroy waits for it.
#[no_mangle]
pub extern "C" fn rmq_push_consumer_shutdown(consumer: *mut rmq_push_consumer_t) -> rmq_status_t {
    guard(|| {
        consumer_of(consumer)?.consumer.shutdown()?;
        Ok(())
    })
}

/// Shuts the consumer down if needed (as rmq_push_consumer_shutdown), waits until its last
/// listener call has returned (no call of its listener starts or runs after this returns, so
/// user_data may be freed then), and frees it. From the consumer's own listener it would wait
/// for itself: RMQ_ERR_INVALID_STATE, and the handle stays valid; destroy it from another
/// thread. Calls on the handle while a destroy runs fail as on a shut-down consumer; two
/// concurrent destroys both return after the last listener call. In a child process after
/// fork() it frees the handle without touching the parent's connections. NULL is a no-op
/// (RMQ_OK); a stale handle is RMQ_ERR_INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn rmq_push_consumer_destroy(consumer: *mut rmq_push_consumer_t) -> rmq_status_t {
    guard(|| {
        if consumer.is_null() {
            return Ok(());
        }
        let c = CONSUMERS.get(consumer)?;
        if c.consumer.in_own_listener() {
            c.consumer.shutdown()?; // refused: InvalidState
        }
        if c.consumer.is_forked() {
            // The parent's sockets and threads: dropping would reach into them.
            if let Some(registered) = CONSUMERS.remove(consumer) {
                std::mem::forget(registered);
            }
            std::mem::forget(c);
            return Ok(());
        }
        // The handle stays registered until the last listener call has returned, so a listener
        // that destroys its own consumer meanwhile is refused (above) rather than told the
        // handle is stale, and a concurrent destroy also returns only after that call.
        // Shutdown's only failure is a runtime that cannot be built; then nothing is left to stop.
        let _ = c.consumer.shutdown();
        c.gate.close_and_wait();
        CONSUMERS.remove(consumer);
        Ok(())
    })
}

// ---------------------------------------------------------------------- received messages

fn with_received<T>(
    message: *const rmq_received_message_t,
    f: impl FnOnce(&MessageExt) -> FfiResult<T>,
) -> FfiResult<T> {
    let m = RECEIVED.get(message)?;
    f(&m)
}

fn view(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
    field: impl FnOnce(&MessageExt) -> &str,
) -> rmq_status_t {
    // SAFETY: write_str checks both output pointers for NULL.
    guard(|| with_received(message, |m| unsafe { write_str(field(m), out, out_len) }))
}

fn number<T>(
    message: *const rmq_received_message_t,
    out: *mut T,
    field: impl FnOnce(&MessageExt) -> T,
) -> rmq_status_t {
    guard(|| {
        with_received(message, |m| {
            let out = out_ptr(out, "out")?;
            // SAFETY: checked non-NULL; the caller provides a writable T.
            unsafe { *out = field(m) };
            Ok(())
        })
    })
}

/// Borrowed view of the topic (a retried message shows its original topic, not
/// %RETRY%<group>); valid until the listener returns (a polled message: until its batch is
/// acknowledged or destroyed). Not NUL-terminated.
#[no_mangle]
pub extern "C" fn rmq_received_message_topic(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, |m| m.message.topic())
}

/// Borrowed view of the tag; empty if none. Lifetime as rmq_received_message_topic.
#[no_mangle]
pub extern "C" fn rmq_received_message_tags(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, |m| m.message.tags().unwrap_or(""))
}

/// Borrowed view of the space-separated keys; empty if none. Lifetime as
/// rmq_received_message_topic.
#[no_mangle]
pub extern "C" fn rmq_received_message_keys(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, |m| m.message.keys().unwrap_or(""))
}

/// Borrowed view of the body: *out_len bytes at *out (non-NULL even when empty), decompressed.
/// Lifetime as rmq_received_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_received_message_body(
    message: *const rmq_received_message_t,
    out: *mut *const u8,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_received(message, |m| write_body(&m.message, out, out_len)))
}

/// Borrowed view of the message id: the UNIQ_KEY the producer assigned, else the broker's
/// store id. Lifetime as rmq_received_message_topic.
#[no_mangle]
pub extern "C" fn rmq_received_message_msg_id(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, MessageExt::msg_id)
}

/// Borrowed view of the broker's store id (for rmq_producer_view_message). Lifetime as
/// rmq_received_message_topic.
#[no_mangle]
pub extern "C" fn rmq_received_message_offset_msg_id(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, |m| &m.offset_msg_id)
}

/// Borrowed view of the name of the broker the message was pulled from. Lifetime as
/// rmq_received_message_topic.
#[no_mangle]
pub extern "C" fn rmq_received_message_broker_name(
    message: *const rmq_received_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    view(message, out, out_len, |m| &m.broker_name)
}

/// Borrowed view of property `name` (NUL-terminated, borrowed for the call);
/// RMQ_ERR_NOT_FOUND if absent. Lifetime as rmq_received_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_received_message_property(
    message: *const rmq_received_message_t,
    name: *const c_char,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let name = arg_str(name, "name")?;
        with_received(message, |m| write_property(&m.message, name, out, out_len))
    })
}

/// Number of properties, system ones (TAGS, KEYS, UNIQ_KEY, ...) included.
#[no_mangle]
pub extern "C" fn rmq_received_message_property_count(
    message: *const rmq_received_message_t,
    out_count: *mut usize,
) -> rmq_status_t {
    number(message, out_count, |m| m.message.properties().len())
}

/// Borrowed views of the name and value of property number `index` (0-based, below
/// rmq_received_message_property_count); RMQ_ERR_NOT_FOUND past the end. Lifetime as
/// rmq_received_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_received_message_property_at(
    message: *const rmq_received_message_t,
    index: usize,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_received(message, |m| {
            write_property_at(
                &m.message,
                index,
                out_name,
                out_name_len,
                out_value,
                out_value_len,
            )
        })
    })
}

/// Id of the queue (of its broker) the message was pulled from.
#[no_mangle]
pub extern "C" fn rmq_received_message_queue_id(
    message: *const rmq_received_message_t,
    out: *mut i32,
) -> rmq_status_t {
    number(message, out, |m| m.queue_id)
}

/// Offset of the message in its queue.
#[no_mangle]
pub extern "C" fn rmq_received_message_queue_offset(
    message: *const rmq_received_message_t,
    out: *mut i64,
) -> rmq_status_t {
    number(message, out, |m| m.queue_offset)
}

/// How many times the message was delivered before and handed back (0 on first delivery).
#[no_mangle]
pub extern "C" fn rmq_received_message_reconsume_times(
    message: *const rmq_received_message_t,
    out: *mut i32,
) -> rmq_status_t {
    number(message, out, |m| m.reconsume_times)
}

/// Producer send time, ms since the epoch.
#[no_mangle]
pub extern "C" fn rmq_received_message_born_timestamp(
    message: *const rmq_received_message_t,
    out: *mut i64,
) -> rmq_status_t {
    number(message, out, |m| m.born_timestamp)
}

/// Broker store time, ms since the epoch.
#[no_mangle]
pub extern "C" fn rmq_received_message_store_timestamp(
    message: *const rmq_received_message_t,
    out: *mut i64,
) -> rmq_status_t {
    number(message, out, |m| m.store_timestamp)
}
