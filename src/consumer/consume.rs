//! Concurrent consumption: batches of pulled messages run through the listener on the
//! consumer's executor; failed ones go back to the broker (CONSUMER_SEND_MSG_BACK, else a new
//! message to `%RETRY%<group>`, else consumed again here 5 s later). A message leaves its
//! process queue only when consumed or safely handed back, so it is never dropped.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ConsumeResult, Inner, ProcessQueue};
use crate::client::{ClientInstance, MessageQueue};
use crate::error::{Error, Result};
use crate::producer::{PreparedSend, PROPERTY_MAX_RECONSUME_TIMES, PROPERTY_RECONSUME_TIME};
use crate::protocol::code::response;
use crate::protocol::consumer::{self as req, SendBack};
use crate::protocol::header::CLIENT_INNER_PRODUCER_GROUP;
use crate::protocol::ids;
use crate::protocol::message::MessageExt;

/// Java's send-back timeout.
const SEND_BACK_TIMEOUT: Duration = Duration::from_secs(5);
/// When a message that could not be handed back is consumed again here.
const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The delay level Java uses for messages whose listener call timed out.
const TIMEOUT_DELAY_LEVEL: i32 = 3;

/// Counts a batch as busy until dropped (whatever path it takes, panics included).
pub(crate) struct BusyGuard(Arc<Inner>);

impl BusyGuard {
    pub(crate) fn new(inner: &Arc<Inner>) -> BusyGuard {
        inner.busy.add();
        BusyGuard(Arc::clone(inner))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.done();
    }
}

pub(crate) fn dispatch(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    msgs: Vec<Arc<MessageExt>>,
) {
    if let Some(handoff) = inner.handoff.lock().clone() {
        // Poll mode: the application takes them in batches of its own size.
        handoff.push(mq, pq, msgs);
        return;
    }
    if inner.orderly.is_enabled() {
        return super::orderly::dispatch(inner, instance, mq, pq);
    }
    for chunk in msgs.chunks(inner.config.consume_message_batch_max_size.max(1)) {
        submit(inner, instance, mq, pq, chunk.to_vec());
    }
}

fn submit(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    batch: Vec<Arc<MessageExt>>,
) {
    if let Some(handoff) = inner.handoff.lock().clone() {
        handoff.push(mq, pq, batch);
        return;
    }
    let guard = BusyGuard::new(inner);
    let (inner2, instance, mq, pq) = (
        Arc::clone(inner),
        Arc::clone(instance),
        mq.clone(),
        Arc::clone(pq),
    );
    let job = move || {
        let inner = inner2;
        // After shutdown began, batches not started are left for the next delivery.
        if inner.is_stopping() || pq.is_dropped() {
            drop(guard);
            return;
        }
        let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
        pq.mark_started(&offsets);
        let listener = inner.listener.lock().clone();
        let trace = inner.trace.get();
        let span = trace.and_then(|t| t.consume_before(&batch));
        let result = match listener {
            Some(l) => catch_unwind(AssertUnwindSafe(|| l(&batch)))
                .unwrap_or(ConsumeResult::ReconsumeLater { delay_level: 0 }),
            None => ConsumeResult::ReconsumeLater { delay_level: 0 },
        };
        if let (Some(t), Some(span)) = (trace, span) {
            t.consume_after(span, result == ConsumeResult::Success);
        }
        finish(&inner, &instance, &mq, &pq, batch, result, guard);
    };
    // A closed executor (shutdown) drops the job: its messages stay in flight, uncommitted.
    let _ = inner.executor.spawn(inner.id, job);
}

/// What happens to a batch once its result is known, from a listener call or a poll-mode
/// acknowledgement alike.
pub(crate) fn finish(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    batch: Vec<Arc<MessageExt>>,
    result: ConsumeResult,
    guard: BusyGuard,
) {
    if pq.is_dropped() {
        return; // the queue moved on; its next owner starts from the committed offset
    }
    let bytes: usize = batch.iter().map(|m| m.message.body().len()).sum();
    crate::metrics::consumed(
        &mq.topic,
        &mq.broker_name,
        &inner.group,
        batch.len() as u64,
        bytes as u64,
        result == ConsumeResult::Success,
    );
    match result {
        ConsumeResult::Success => {
            let offsets: Vec<i64> = batch.iter().map(|m| m.queue_offset).collect();
            pq.remove(&offsets);
            inner.offsets.advance(mq, pq.commit_offset());
            crate::metrics::queue_offsets(
                &mq.topic,
                &mq.broker_name,
                &inner.group,
                mq.queue_id,
                None,
                pq.commit_offset(),
            );
        }
        ConsumeResult::ReconsumeLater { .. } if inner.config.broadcasting => {
            drop_failed(
                inner,
                mq,
                pq,
                &batch,
                "its listener asked to consume it later",
            );
        }
        ConsumeResult::ReconsumeLater { delay_level } => {
            // Those still here (a consume timeout may have sent some back already).
            let failed: Vec<Arc<MessageExt>> = batch
                .into_iter()
                .filter(|m| pq.contains(m.queue_offset))
                .collect();
            let (inner, instance, mq, pq) = (
                Arc::clone(inner),
                Arc::clone(instance),
                mq.clone(),
                Arc::clone(pq),
            );
            let handle = instance.shared().handle().clone();
            // Off the consume thread: the send-back is network I/O.
            handle.spawn(async move {
                let _guard = guard;
                send_back_all(&inner, &instance, &mq, &pq, failed, delay_level).await;
            });
        }
    }
}

/// Broadcasting has no retry: as Java's consumer does, a failed message is dropped with a
/// warning and the offset moves past it.
fn drop_failed(
    inner: &Inner,
    mq: &MessageQueue,
    pq: &ProcessQueue,
    msgs: &[Arc<MessageExt>],
    why: &str,
) {
    let offsets: Vec<i64> = msgs.iter().map(|m| m.queue_offset).collect();
    for o in pq.remove(&offsets) {
        crate::log_warn!(
            "rmq::consumer",
            "broadcasting consumer of group {} drops the message at offset {o} of {mq:?}: {why}; \
             broadcasting does not retry",
            inner.group
        );
    }
    inner.offsets.advance(mq, pq.commit_offset());
}

async fn send_back_all(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<ProcessQueue>,
    msgs: Vec<Arc<MessageExt>>,
    delay_level: i32,
) {
    let mut again = Vec::new();
    for m in msgs {
        match send_back(inner, instance, mq, &m, delay_level).await {
            Ok(()) => {
                pq.remove(&[m.queue_offset]);
            }
            Err(_) => again.push(m),
        }
    }
    if !pq.is_dropped() {
        inner.offsets.advance(mq, pq.commit_offset());
    }
    if !again.is_empty() {
        // Still in flight, so the offset waits for them; consumed again here a little later.
        let (inner, instance, mq, pq) = (
            Arc::clone(inner),
            Arc::clone(instance),
            mq.clone(),
            Arc::clone(pq),
        );
        tokio::spawn(async move {
            if inner.pause(LOCAL_RETRY_DELAY).await && !pq.is_dropped() {
                submit(&inner, &instance, &mq, &pq, again);
            }
        });
    }
}

/// Hands a failed message back to its broker for a later retry (or the DLQ once it has been
/// retried `max-reconsume-times` times); falls back to sending a copy to the retry topic.
pub(crate) async fn send_back(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    m: &MessageExt,
    delay_level: i32,
) -> Result<()> {
    let deadline = Instant::now() + SEND_BACK_TIMEOUT;
    let direct = async {
        let addr = instance
            .master_addr(&mq.broker_name)
            .ok_or_else(|| Error::RouteNotFound {
                topic: mq.topic.to_string(),
                reason: format!("broker {} has no master address", mq.broker_name),
            })?;
        let cmd = req::consumer_send_msg_back(&SendBack {
            group: &inner.group,
            commit_log_offset: m.commit_log_offset,
            delay_level,
            origin_msg_id: m.msg_id(),
            origin_topic: m.message.topic(),
            max_reconsume_times: inner.config.max_reconsume_times,
            broker_name: &mq.broker_name,
        });
        let resp = instance.remoting().invoke(&addr, &cmd, deadline).await?;
        match resp.code {
            response::SUCCESS => Ok(()),
            code => Err(Error::broker(code, resp.remark_str(), &*addr)),
        }
    };
    match direct.await {
        Ok(()) => Ok(()),
        Err(_) => resend_to_retry_topic(inner, instance, m, delay_level, deadline).await,
    }
}

/// The fallback: the message, with its retry bookkeeping in properties, as a new message to
/// `%RETRY%<group>` (as Java's sendMessageBackAsNormalMessage).
async fn resend_to_retry_topic(
    inner: &Inner,
    instance: &ClientInstance,
    m: &MessageExt,
    delay_level: i32,
    deadline: Instant,
) -> Result<()> {
    let max = inner.config.max_reconsume_times;
    let mut msg = m.message.clone();
    let origin_topic = msg.topic().to_string();
    if msg.property("RETRY_TOPIC").is_none() {
        msg.put_property("RETRY_TOPIC", &origin_topic);
    }
    if msg.property("ORIGIN_MESSAGE_ID").is_none() {
        msg.put_property("ORIGIN_MESSAGE_ID", m.msg_id());
    }
    // The broker moves a retry-topic send to the DLQ when its count exceeds the max; a negative
    // level asks for the DLQ at once. `PreparedSend` moves both counts into the send header.
    let times = if delay_level < 0 {
        max.saturating_add(1)
    } else {
        m.reconsume_times + 1
    };
    msg.put_property(PROPERTY_RECONSUME_TIME, &times.to_string());
    msg.put_property(PROPERTY_MAX_RECONSUME_TIMES, &max.to_string());
    let level = if delay_level > 0 {
        delay_level
    } else {
        3 + m.reconsume_times
    };
    msg.put_property("DELAY", &level.to_string());
    msg.remove_property("TRAN_MSG");
    msg.set_topic(&inner.retry_topic)?;
    let prepared = PreparedSend::new(&msg, usize::MAX)?;
    let info = instance.publish_info(&inner.retry_topic, deadline).await?;
    let q = info
        .select_queue(ids::random_u32() as usize, None)
        .ok_or_else(|| Error::RouteNotFound {
            topic: inner.retry_topic.clone(),
            reason: "no writable queue".into(),
        })?;
    let addr = instance
        .master_addr(&q.broker_name)
        .ok_or_else(|| Error::RouteNotFound {
            topic: inner.retry_topic.clone(),
            reason: format!("broker {} has no master address", q.broker_name),
        })?;
    let cmd = prepared.request(&Arc::from(CLIENT_INNER_PRODUCER_GROUP), q);
    let resp = instance.remoting().invoke(&addr, &cmd, deadline).await?;
    prepared.parse_response(&resp, q, &addr).map(|_| ())
}

/// Sends back messages whose listener call has run longer than the consume timeout, so they
/// stop holding back their queue's offset (the call itself goes on; its result is ignored).
pub(crate) fn send_back_expired(inner: &Arc<Inner>, instance: &Arc<ClientInstance>) {
    if inner.orderly.is_enabled() {
        return; // orderly queues wait for their listener: nothing may overtake it
    }
    let queues: Vec<(MessageQueue, Arc<ProcessQueue>)> = inner
        .queues
        .lock()
        .iter()
        .map(|(q, o)| (q.clone(), Arc::clone(&o.pq)))
        .collect();
    for (mq, pq) in queues {
        let expired = pq.expired(inner.config.consume_timeout);
        if expired.is_empty() {
            continue;
        }
        if inner.config.broadcasting {
            drop_failed(inner, &mq, &pq, &expired, "its listener call timed out");
            continue;
        }
        let (inner, instance) = (Arc::clone(inner), Arc::clone(instance));
        tokio::spawn(async move {
            for m in expired {
                if send_back(&inner, &instance, &mq, &m, TIMEOUT_DELAY_LEVEL)
                    .await
                    .is_ok()
                {
                    pq.remove(&[m.queue_offset]);
                }
            }
            if !pq.is_dropped() {
                inner.offsets.advance(&mq, pq.commit_offset());
            }
        });
    }
}
