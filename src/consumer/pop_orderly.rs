//! Orderly POP (an orderly listener with `consumer.consume-mode=pop`): POP_MESSAGE with
//! `order=true`. The broker hands a queue's next messages to the group only once every message
//! of the queue it handed out before is acked (ACK_MESSAGE commits the queue's offset) or has
//! become visible again; a message popped again comes with the broker's count of its earlier
//! deliveries as its reconsume count.
//!
//! Here each assignment pops one batch at a time: its messages, split by queue, go to the
//! orderly listener in offset order, one chunk of `consumer.consume-message-batch-max-size` at
//! a time per queue (queues of one batch run on different threads at once), and the next pop
//! waits until all of them are answered. Success acks the chunk. Suspend makes the chunk and
//! the rest of its queue's batch invisible for the suspend time (CHANGE_MESSAGE_INVISIBLETIME),
//! so the broker hands them out again, in the same order, once it has passed; the assignment
//! pops again only then. A message suspended `consumer.max-reconsume-times` times goes to
//! `%DLQ%<group>` and is acked instead. A message whose ack fails comes back after
//! `consumer.pop-invisible-time-millis`, as does everything not answered at shutdown.
//!
//! Threads: the listener runs on the consumer's own threads; its acks and invisible-time
//! changes are awaited there (no lock held) before the next chunk of the queue starts.
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::consume::BusyGuard;
use super::orderly::{suspend_wait, OrderlyResult};
use super::pop::{self, InFlight, PopQueue};
use super::{ConsumeResult, Inner};
use crate::client::{ClientInstance, MessageQueue};
use crate::protocol::message::MessageExt;
use crate::runtime;

/// Waits until every message of the assignment's last batch is answered (and a suspended
/// one is visible again); false when shutdown began meanwhile.
pub(super) async fn wait_idle(inner: &Inner, pq: &PopQueue) -> bool {
    loop {
        let idle = pq.idle.notified();
        tokio::pin!(idle);
        idle.as_mut().enable();
        if pq.in_flight.load(Ordering::Acquire) == 0 {
            return !inner.is_stopping();
        }
        tokio::select! {
            _ = inner.stopped() => return false,
            _ = idle => {}
        }
    }
}

/// Hands a popped batch to the orderly listener: one job per queue, its messages in offset
/// order.
pub(super) fn dispatch(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<PopQueue>,
    msgs: Vec<Arc<MessageExt>>,
) {
    let mut by_queue: BTreeMap<i32, Vec<Arc<MessageExt>>> = BTreeMap::new();
    for m in msgs {
        by_queue.entry(m.queue_id).or_default().push(m);
    }
    for (_, mut batch) in by_queue {
        batch.sort_by_key(|m| m.queue_offset);
        pq.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
        let counted = InFlight(Arc::clone(pq), batch.len());
        let guard = BusyGuard::new(inner);
        let (inner2, instance, mq) = (Arc::clone(inner), Arc::clone(instance), mq.clone());
        let job = move || consume_queue(inner2, instance, mq, batch, counted, guard);
        // A closed executor (shutdown) drops the job: the messages come back later.
        let _ = inner.executor.spawn(inner.id, job);
    }
}

/// Runs one queue's messages through the listener, chunk after chunk, on a consume thread.
fn consume_queue(
    inner: Arc<Inner>,
    instance: Arc<ClientInstance>,
    mq: MessageQueue,
    batch: Vec<Arc<MessageExt>>,
    counted: InFlight,
    guard: BusyGuard,
) {
    let size = inner.config.consume_message_batch_max_size.max(1);
    let mut start = 0;
    while start < batch.len() {
        // After shutdown began, the rest comes back after its invisible time.
        if inner.is_stopping() {
            return;
        }
        let end = (start + size).min(batch.len());
        let chunk = &batch[start..end];
        let suspend = OrderlyResult::Suspend { suspend: None };
        let result = match inner.orderly.listener() {
            Some(l) => catch_unwind(AssertUnwindSafe(|| l(chunk))).unwrap_or(suspend),
            None => suspend,
        };
        let suspend = match result {
            OrderlyResult::Success => {
                let acks = async {
                    for m in chunk {
                        pop::answer(&inner, &instance, &mq, m, ConsumeResult::Success).await;
                    }
                };
                let _ = runtime::block_on(instance.shared(), "orderly pop ack", acks);
                start = end;
                continue;
            }
            OrderlyResult::Suspend { suspend } => suspend,
        };
        let wait = suspend_wait(&inner, suspend);
        let max = inner.config.max_reconsume_times;
        let answers = async {
            for (i, m) in batch[start..].iter().enumerate() {
                if start + i < end && m.reconsume_times >= max {
                    // Dead-lettered and acked; should that fail, the queue waits for its
                    // invisible time rather than skipping it.
                    let dead = ConsumeResult::ReconsumeLater { delay_level: -1 };
                    pop::answer(&inner, &instance, &mq, m, dead).await;
                } else if let Err(e) =
                    pop::change_invisible_time(&inner, &instance, &mq, m, wait).await
                {
                    crate::log_warn!(
                        "rmq::consumer",
                        "group {}: suspending popped message {} failed (it comes again after \
                         its invisible time): {e}",
                        inner.group,
                        m.msg_id()
                    );
                }
            }
        };
        let _ = runtime::block_on(instance.shared(), "orderly pop suspend", answers);
        drop(guard);
        // The assignment pops again once the suspended messages are visible again.
        let handle = instance.shared().handle().clone();
        handle.spawn(async move {
            inner.pause(wait).await;
            drop(counted);
        });
        return;
    }
    drop((guard, counted));
}
