//! Orderly consumption (Java's MessageListenerOrderly): each queue is consumed by one thread at
//! a time, in offset order, only while this consumer holds the queue's lock at the broker
//! (see `lock`). A listener that asks to suspend gets the same messages again, in the same
//! order, after `consumer.suspend-current-queue-time-millis` (or the time it chose); the queue
//! waits meanwhile. A message suspended `consumer.max-reconsume-times` times goes to
//! `%DLQ%<group>` and the queue moves on. The offset moves only past consumed (or dead-lettered)
//! messages.
//!
//! Per queue, at most one job is queued or running on the consumer's executor (`scheduled`);
//! it takes the lowest messages of the process queue, calls the listener, applies the result
//! and goes on until the queue is empty, its lock is in doubt, it has run 60 s (then it yields
//! its thread to other queues) or it must wait after a suspend.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::consume::{self, BusyGuard};
use super::lock::{self, QueueLock};
use super::{offset, Inner, OwnedQueue, ProcessQueue};
use crate::client::{ClientInstance, MessageQueue};
use crate::protocol::message::MessageExt;
use crate::runtime;

/// What an orderly listener says about a batch of messages of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyResult {
    /// Consumed; the queue's offset may move past them.
    Success,
    /// Stop this queue a moment and deliver the same messages again, in the same order, after
    /// `suspend` (None: consumer.suspend-current-queue-time-millis; kept within 10 ms..30 s).
    /// Other queues go on meanwhile. After consumer.max-reconsume-times suspensions a message
    /// goes to %DLQ%<group> instead.
    Suspend { suspend: Option<Duration> },
}

/// The orderly listener: called with up to `consumer.consume-message-batch-max-size` messages
/// of one queue, in offset order, never for two batches of one queue at once. A panic counts as
/// `Suspend { suspend: None }`.
pub type OrderlyListener = Arc<dyn Fn(&[Arc<MessageExt>]) -> OrderlyResult + Send + Sync>;

const MIN_SUSPEND: Duration = Duration::from_millis(10);
const MAX_SUSPEND: Duration = Duration::from_secs(30);
/// How long one job consumes a queue before it lets other queues have its thread (Java's
/// maxTimeConsumeContinuously).
const MAX_CONSUME_CONTINUOUSLY: Duration = Duration::from_secs(60);
/// When a queue whose lock is in doubt tries to lock it again, and when it goes on after that
/// (locked or not): Java's tryLockLaterAndReconsume timings.
const RELOCK_AFTER: Duration = Duration::from_millis(10);
const RESUME_WHEN_LOCKED: Duration = Duration::from_millis(10);
const RESUME_WHEN_NOT_LOCKED: Duration = Duration::from_secs(3);
/// How long a released queue's running listener call is awaited before its unlock is left to
/// a task of its own (Java waits 1 s for the queue's consume lock).
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// The orderly mode of a consumer: set when an orderly listener is.
#[derive(Default)]
pub(crate) struct Orderly {
    enabled: AtomicBool,
    listener: Mutex<Option<OrderlyListener>>,
    /// A rebalance retry after a refused lock is pending.
    pub(crate) retry_pending: Arc<AtomicBool>,
}

impl Orderly {
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(SeqCst)
    }

    pub fn set(&self, listener: OrderlyListener) {
        *self.listener.lock() = Some(listener);
        self.enabled.store(true, SeqCst);
    }

    pub fn clear(&self) {
        self.enabled.store(false, SeqCst);
        *self.listener.lock() = None;
    }

    pub(crate) fn listener(&self) -> Option<OrderlyListener> {
        self.listener.lock().clone()
    }
}

/// How long a queue waits after a suspend: the listener's choice, else
/// consumer.suspend-current-queue-time-millis, kept within 10 ms..30 s.
pub(crate) fn suspend_wait(inner: &Inner, suspend: Option<Duration>) -> Duration {
    suspend
        .unwrap_or(inner.config.suspend_current_queue_time)
        .clamp(MIN_SUSPEND, MAX_SUSPEND)
}

/// Per-queue state of orderly consumption.
#[derive(Default)]
pub(crate) struct OrderlyQueue {
    pub lock: QueueLock,
    /// A job for this queue is queued, running, or waiting to be queued again.
    scheduled: AtomicBool,
    /// A listener call (and the handling of its result) or a lock attempt is in progress.
    /// Set before `dropped` is checked, so a release that sees it clear knows nothing starts.
    busy: AtomicBool,
}

impl OrderlyQueue {
    /// Waits until nothing runs for this (dropped) queue, at most `within`; true when idle.
    async fn idle_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.busy.load(SeqCst) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// New messages arrived for `pq`: starts its job unless one is already scheduled.
pub(crate) fn dispatch(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
) {
    if pq
        .orderly
        .scheduled
        .compare_exchange(false, true, SeqCst, SeqCst)
        .is_ok()
    {
        submit(inner, instance, mq, pq);
    }
}

/// Queues the (already scheduled) job of `pq` on the consumer's executor.
fn submit(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
) {
    let guard = BusyGuard::new(inner);
    let (inner2, instance2, mq2, pq2) = (
        Arc::clone(inner),
        Arc::clone(instance),
        mq.clone(),
        Arc::clone(pq),
    );
    let job = move || {
        let _guard = guard;
        match consume_while_possible(&inner2, &instance2, &mq2, &pq2) {
            Next::Done => {}
            Next::Later(after) => later(inner2, instance2, mq2, pq2, after, false),
            Next::Relock => later(inner2, instance2, mq2, pq2, RELOCK_AFTER, true),
        }
    };
    // A closed executor (shutdown) drops the job; its messages stay uncommitted.
    if inner.executor.spawn(inner.id, job).is_err() {
        pq.orderly.scheduled.store(false, SeqCst);
    }
}

enum Next {
    /// Nothing to do (the queue is empty, dropped, or the consumer stops); not scheduled now.
    Done,
    /// Queue the job again after this long.
    Later(Duration),
    /// The lock is in doubt: lock again, then go on.
    Relock,
}

fn consume_while_possible(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
) -> Next {
    let state = &pq.orderly;
    let began = Instant::now();
    let batch_size = inner.config.consume_message_batch_max_size.max(1);
    loop {
        state.busy.store(true, SeqCst);
        if inner.is_stopping() || pq.is_dropped() {
            state.busy.store(false, SeqCst);
            state.scheduled.store(false, SeqCst);
            return Next::Done;
        }
        if !state.lock.is_valid() {
            state.busy.store(false, SeqCst);
            return Next::Relock;
        }
        if began.elapsed() >= MAX_CONSUME_CONTINUOUSLY {
            state.busy.store(false, SeqCst);
            return Next::Later(MIN_SUSPEND);
        }
        let batch = pq.first(batch_size);
        if batch.is_empty() {
            state.busy.store(false, SeqCst);
            state.scheduled.store(false, SeqCst);
            // A pull that added messages after `first` may have seen the job still scheduled.
            if pq.load().0 > 0
                && state
                    .scheduled
                    .compare_exchange(false, true, SeqCst, SeqCst)
                    .is_ok()
            {
                continue;
            }
            return Next::Done;
        }
        let listener = inner.orderly.listener();
        let suspend = OrderlyResult::Suspend { suspend: None };
        let result = match listener {
            Some(l) => catch_unwind(AssertUnwindSafe(|| l(&batch))).unwrap_or(suspend),
            None => suspend,
        };
        let wait = apply(inner, instance, mq, pq, &batch, result);
        state.busy.store(false, SeqCst);
        if let Some(after) = wait {
            return Next::Later(after);
        }
    }
}

/// Applies a listener's result; Some(wait) when the queue must wait before going on.
fn apply(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    batch: &[Arc<MessageExt>],
    result: OrderlyResult,
) -> Option<Duration> {
    let suspend = match result {
        OrderlyResult::Success => {
            let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
            pq.remove(&offsets);
            advance(inner, mq, pq);
            return None;
        }
        OrderlyResult::Suspend { suspend } => suspend,
    };
    let max = inner.config.max_reconsume_times;
    let (dead, mut again): (Vec<&Arc<MessageExt>>, Vec<&Arc<MessageExt>>) =
        batch.iter().partition(|m| m.reconsume_times >= max);
    if !dead.is_empty() {
        // On this consume thread, as Java does: the queue waits for its dead letters anyway,
        // and no lock is held.
        let sent = runtime::block_on(instance.shared(), "orderly dead-letter send", async {
            let mut sent = Vec::new();
            for m in &dead {
                // A negative delay level: the broker moves the message to %DLQ%<group>.
                if consume::send_back(inner, instance, mq, m, -1).await.is_ok() {
                    sent.push(m.queue_offset);
                }
            }
            sent
        })
        .unwrap_or_default();
        pq.remove(&sent);
        again.extend(dead.into_iter().filter(|m| !sent.contains(&m.queue_offset)));
    }
    advance(inner, mq, pq);
    if again.is_empty() {
        return None;
    }
    let offsets: Vec<i64> = again.iter().map(|m| m.queue_offset).collect();
    pq.count_redelivery(&offsets);
    Some(suspend_wait(inner, suspend))
}

fn advance(inner: &Inner, mq: &MessageQueue, pq: &ProcessQueue) {
    if !pq.is_dropped() {
        inner.offsets.advance(mq, pq.commit_offset());
    }
}

/// Queues the job of `pq` again after `after`, first locking the queue again when `relock`.
fn later(
    inner: Arc<Inner>,
    instance: Arc<ClientInstance>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    after: Duration,
    relock: bool,
) {
    let handle = instance.shared().handle().clone();
    handle.spawn(async move {
        let mut wait = after;
        if relock {
            if !inner.pause(wait).await {
                pq.orderly.scheduled.store(false, SeqCst);
                return;
            }
            wait = if relock_one(&inner, &instance, &mq, &pq).await {
                RESUME_WHEN_LOCKED
            } else {
                RESUME_WHEN_NOT_LOCKED
            };
        }
        if !inner.pause(wait).await || pq.is_dropped() {
            pq.orderly.scheduled.store(false, SeqCst);
            return;
        }
        submit(&inner, &instance, &mq, &pq);
    });
}

/// Locks an owned queue again; a queue released meanwhile is unlocked again at once, so a lock
/// taken after its release's unlock does not keep the next owner out.
async fn relock_one(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    pq: &ProcessQueue,
) -> bool {
    if pq.is_dropped() {
        return false;
    }
    let locked = lock::lock_one(inner, instance, mq).await;
    if locked {
        if pq.is_dropped() {
            lock::unlock(inner, instance, std::slice::from_ref(mq)).await;
            return false;
        }
        pq.orderly.lock.mark_locked();
    } else {
        pq.orderly.lock.mark_unlocked();
    }
    locked
}

/// Releases a queue in a rebalance: no more pulls or listener calls; once the call running (if
/// any) has returned and its result is applied, the offset is committed and then the broker's
/// lock released, so the next owner starts exactly where this one stopped. A call still running
/// after 1 s leaves that to a task of its own, so the rebalance goes on.
pub(crate) async fn release(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: MessageQueue,
    owned: OwnedQueue,
) {
    owned.pq.drop_queue();
    owned.pull.abort();
    if owned.pq.orderly.idle_within(RELEASE_WAIT).await {
        finish_release(inner, instance, &mq, &owned.pq).await;
        return;
    }
    let (inner, instance) = (Arc::clone(inner), Arc::clone(instance));
    tokio::spawn(async move {
        // Shutdown waits for the call as well; the commit and unlock still follow it here.
        while !owned.pq.orderly.idle_within(Duration::from_secs(1)).await {}
        finish_release(&inner, &instance, &mq, &owned.pq).await;
    });
}

async fn finish_release(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    pq: &ProcessQueue,
) {
    let _ = offset::commit(inner, instance, mq, pq.commit_offset()).await;
    inner.offsets.remove(mq);
    lock::unlock(inner, instance, std::slice::from_ref(mq)).await;
}
