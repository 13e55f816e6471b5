//! One long-polling pull loop per owned queue. The broker holds a pull for up to 15 s when
//! nothing is new; the request is matched by opaque on the shared connection, so sends on the
//! same connection go on meanwhile.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::subscription::Subscription;
use super::{consume, Inner, ProcessQueue};
use crate::client::{ClientInstance, MessageQueue};
use crate::protocol::code::response;
use crate::protocol::consumer::{self as req, PullRequest};
use crate::protocol::message::{decode_stored_messages, MessageExt};
use crate::remoting::RemotingCommand;

/// The broker does not know the group's subscription (it forgot the client).
const SUBSCRIPTION_NOT_EXIST: i32 = 24;

/// How long the broker may hold a pull (Java BROKER_SUSPEND_MAX_TIME_MILLIS).
pub(crate) const BROKER_SUSPEND: Duration = Duration::from_secs(15);
/// The pull request's timeout; longer than the suspension (Java 30 s).
pub(crate) const PULL_TIMEOUT: Duration = Duration::from_secs(30);
const DELAY_ON_FLOW_CONTROL: Duration = Duration::from_millis(50);
const DELAY_ON_BROKER_FLOW_CONTROL: Duration = Duration::from_millis(20);
const DELAY_ON_ERROR: Duration = Duration::from_millis(1000);

const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";

pub(crate) async fn pull_loop(
    inner: Arc<Inner>,
    instance: Arc<ClientInstance>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    sub: Subscription,
) {
    let retry = mq.topic.starts_with("%RETRY%");
    loop {
        if pq.is_dropped() || inner.is_stopping() {
            return;
        }
        // An orderly queue is pulled only while its broker lock is ours.
        if inner.orderly.is_enabled() && !pq.orderly.lock.is_valid() {
            if !inner.pause(DELAY_ON_ERROR).await {
                return;
            }
            continue;
        }
        let (count, bytes) = pq.load();
        // The span bound keeps a stuck message from letting the rest of its queue run far
        // ahead: offsets commit only up to the lowest unconsumed one, so the span is what a
        // crash can re-deliver.
        if count >= inner.config.pull_threshold_for_queue
            || bytes >= inner.config.pull_threshold_size_for_queue
            || pq.span() > inner.config.consume_concurrently_max_span
        {
            if !inner.pause(DELAY_ON_FLOW_CONTROL).await {
                return;
            }
            continue;
        }
        let Some(addr) = instance.subscribe_addr(&mq.broker_name) else {
            if !inner.pause(DELAY_ON_ERROR).await {
                return;
            }
            continue;
        };
        let cmd = req::pull_message(&PullRequest {
            group: &inner.group,
            topic: &mq.topic,
            broker_name: &mq.broker_name,
            queue_id: mq.queue_id,
            queue_offset: pq.next_offset(),
            max_msg_nums: inner.config.pull_batch_size,
            // Broadcasting offsets are local: the broker is not told (Java sends none either).
            commit_offset: if inner.config.broadcasting {
                0
            } else {
                inner.offsets.get(&mq).unwrap_or(0)
            },
            suspend_timeout_ms: BROKER_SUSPEND.as_millis() as i64,
            sub_version: sub.version,
            expression_type: sub.kind.name(),
            subscription: None,
        });
        let deadline = Instant::now() + PULL_TIMEOUT;
        let resp = tokio::select! {
            _ = inner.stopped() => return,
            r = instance.remoting().invoke(&addr, &cmd, deadline) => r,
        };
        if let Ok(Some(max)) = resp.as_ref().map(|r| r.ext_parse::<i64>("maxOffset")) {
            crate::metrics::queue_offsets(
                &mq.topic,
                &mq.broker_name,
                &inner.group,
                mq.queue_id,
                Some(max),
                pq.commit_offset(),
            );
        }
        // A broker that dropped this client (its connection reset or closed) forgets the
        // subscription until the next heartbeat, up to client.heartbeat-broker-interval away,
        // and answers every pull SUBSCRIPTION_NOT_EXIST meanwhile: announce it again now.
        if let Ok(r) = &resp {
            if r.code == SUBSCRIPTION_NOT_EXIST {
                instance.send_heartbeats().await;
            }
        }
        let delay = match read_pull_response(resp) {
            PullOutcome::Found { next, msgs } => {
                let kept = keep_matching(&inner, &sub, retry, &mq.broker_name, msgs);
                if pq.is_dropped() {
                    return;
                }
                pq.add(&kept, next);
                inner.offsets.advance(&mq, pq.commit_offset());
                consume::dispatch(&inner, &instance, &mq, &pq, kept);
                None
            }
            PullOutcome::NoNew { next } => {
                pq.set_next(next);
                inner.offsets.advance(&mq, pq.commit_offset());
                None
            }
            PullOutcome::OffsetMoved { next } => {
                // The broker corrected the offset: drop the queue, store the correction,
                // and let a rebalance take the queue again from there.
                let owned = inner.queues.lock().remove(&mq);
                pq.drop_queue();
                inner.offsets.set(&mq, next);
                let _ = super::offset::commit(&inner, &instance, &mq, next).await;
                inner.offsets.remove(&mq);
                inner.rebalance_now.notify_one();
                // Dropping the handle does not abort this task; it ends here.
                drop(owned);
                return;
            }
            PullOutcome::FlowControl => Some(DELAY_ON_BROKER_FLOW_CONTROL),
            PullOutcome::Failed => Some(DELAY_ON_ERROR),
        };
        if let Some(d) = delay {
            if !inner.pause(d).await {
                return;
            }
        }
    }
}

/// What a pull's answer means.
pub(crate) enum PullOutcome {
    /// Messages (before the client-side filter) and the offset to pull next.
    Found { next: i64, msgs: Vec<MessageExt> },
    /// Nothing new (yet): pull again from `next`.
    NoNew { next: i64 },
    /// The offset was out of the queue's range; the broker suggests `next`.
    OffsetMoved { next: i64 },
    /// The broker is busy: pull again shortly.
    FlowControl,
    /// Transport failure, an error answer, or records that do not decode (they are not
    /// skipped: pull them again later).
    Failed,
}

pub(crate) fn read_pull_response(resp: crate::Result<RemotingCommand>) -> PullOutcome {
    let Ok(resp) = resp else {
        return PullOutcome::Failed;
    };
    let next = resp.ext_parse::<i64>("nextBeginOffset");
    match (resp.code, next) {
        (response::SUCCESS, Some(next)) => match decode_stored_messages(resp.body) {
            Ok(msgs) => PullOutcome::Found { next, msgs },
            Err(_) => PullOutcome::Failed,
        },
        (response::PULL_NOT_FOUND | response::PULL_RETRY_IMMEDIATELY, Some(next)) => {
            PullOutcome::NoNew { next }
        }
        (response::PULL_OFFSET_MOVED, Some(next)) => PullOutcome::OffsetMoved { next },
        (response::FLOW_CONTROL, _) => PullOutcome::FlowControl,
        _ => PullOutcome::Failed,
    }
}

/// The client-side filter (the broker matches tags by hash only) and the retry-topic fix-up:
/// a message from `%RETRY%<group>` shows its original topic.
fn keep_matching(
    inner: &Inner,
    sub: &Subscription,
    retry: bool,
    broker_name: &Arc<str>,
    msgs: Vec<MessageExt>,
) -> Vec<Arc<MessageExt>> {
    msgs.into_iter()
        .filter_map(|mut m| {
            m.broker_name = Arc::clone(broker_name);
            if retry {
                if let Some(origin) = m.message.property(PROPERTY_RETRY_TOPIC).map(str::to_string) {
                    let _ = m.message.set_topic(&origin);
                }
                // A retried message counts for the original topic's subscription.
                let matches = inner
                    .subscription(m.message.topic())
                    .map(|s| s.matches(m.message.tags()))
                    .unwrap_or(true);
                return matches.then(|| Arc::new(m));
            }
            sub.matches(m.message.tags()).then(|| Arc::new(m))
        })
        .collect()
}
