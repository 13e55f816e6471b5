//! POP consumption (`consumer.consume-mode=pop`, 5.x brokers): no client rebalance and no
//! offsets. The broker assigns the queues (QUERY_ASSIGNMENT, every `consumer.rebalance-interval`
//! and at once when the group changes): a whole topic per broker (queue id -1) when the group is
//! in POP request mode, else a share of its queues. One long-polling POP_MESSAGE loop per
//! assignment hands messages to the same listener as pull mode; a consumed message is acked
//! (ACK_MESSAGE), a reconsume-later one is made invisible for its delay level
//! (CHANGE_MESSAGE_INVISIBLETIME) and comes back with its reconsume count raised, and one not
//! answered in time (a crash, a listener running past `consumer.pop-invisible-time-millis`)
//! comes back after its invisible time. After `max-reconsume-times`, or with a negative delay
//! level, a message goes to `%DLQ%<group>` (CONSUMER_SEND_MSG_BACK) and is acked.
//!
//! With an orderly listener the pops ask for order (`pop_orderly`).
//!
//! Threads: assignment and pop loops, acks and invisible-time changes are tasks on the I/O
//! runtime; the listener runs on the consumer's own threads, as in pull mode.
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::allocate::AllocateStrategy;
use super::consume::BusyGuard;
use super::pull::BROKER_SUSPEND;
use super::subscription::Subscription;
use super::{ConsumeFrom, ConsumeResult, Inner};
use crate::client::{ClientInstance, MessageQueue};
use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::consumer::{self as req, SendBack};
use crate::protocol::ids;
use crate::protocol::message::{decode_stored_messages, MessageExt};
use crate::protocol::pop::{self, PopHeader, PopRequest, PROPERTY_POP_CK};
use crate::remoting::RemotingCommand;

/// The broker refuses more than 32 messages per pop.
const MAX_POP_BATCH: i32 = 32;
/// Extra time beyond the long-poll hold before a pop request counts as lost (as Java).
const POP_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);
const ACK_TIMEOUT: Duration = Duration::from_secs(3);
const DELAY_ON_FLOW_CONTROL: Duration = Duration::from_millis(50);
const DELAY_ON_BROKER_FLOW_CONTROL: Duration = Duration::from_millis(20);
const DELAY_ON_ERROR: Duration = Duration::from_millis(1000);
/// The broker's default delay levels 1..=18 in seconds.
const DELAY_LEVEL_SECONDS: [u64; 18] = [
    1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];

/// One assignment being popped.
#[derive(Default)]
pub(crate) struct PopQueue {
    /// Released by an assignment change: no new pops (answers of one in flight still count).
    dropped: AtomicBool,
    /// Messages handed to the listener and not answered yet.
    pub(super) in_flight: AtomicUsize,
    /// Notified when `in_flight` drops to 0.
    pub(super) idle: Notify,
}

struct Owned {
    pq: Arc<PopQueue>,
    task: JoinHandle<()>,
}

/// The assignments a pop-mode consumer works on.
#[derive(Default)]
pub(crate) struct PopQueues {
    owned: Mutex<HashMap<MessageQueue, Owned>>,
}

impl PopQueues {
    pub(crate) fn queues(&self) -> Vec<MessageQueue> {
        self.owned.lock().keys().cloned().collect()
    }

    /// Shutdown: every pop loop ends now. Messages popped and not acked come back after their
    /// invisible time.
    pub(crate) fn stop_all(&self) {
        for (_, o) in self.owned.lock().drain() {
            o.pq.dropped.store(true, Ordering::Release);
            o.task.abort();
        }
    }
}

/// Releases its count of in-flight messages however the batch ends.
pub(super) struct InFlight(pub(super) Arc<PopQueue>, pub(super) usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(self.1, Ordering::AcqRel) == self.1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The broker's name of the allocation strategy (it knows AVG and AVG_BY_CIRCLE only).
fn broker_strategy(s: AllocateStrategy) -> &'static str {
    match s {
        AllocateStrategy::AveragelyByCircle => "AVG_BY_CIRCLE",
        _ => "AVG",
    }
}

/// The background task of a pop-mode consumer: asks for assignments now, every
/// `consumer.rebalance-interval`, and when a broker says the group changed.
pub(crate) async fn background(inner: Arc<Inner>, instance: Arc<ClientInstance>) {
    loop {
        assign(&inner, &instance).await;
        tokio::select! {
            _ = inner.stopped() => return,
            _ = inner.rebalance_now.notified() => {}
            _ = tokio::time::sleep(inner.config.rebalance_interval) => {}
        }
    }
}

async fn assign(inner: &Arc<Inner>, instance: &Arc<ClientInstance>) {
    let subs: Vec<Subscription> = inner
        .subscriptions
        .lock()
        .iter()
        .filter(|s| !s.topic.starts_with("%RETRY%"))
        .cloned()
        .collect();
    for sub in subs {
        if inner.is_stopping() {
            return;
        }
        // A failure keeps the assignments as they are until the next round.
        match query_assignment(inner, instance, &sub.topic).await {
            Ok(Some(mine)) => update(inner, instance, &sub, mine),
            Ok(None) => {}
            Err(e) => crate::log_warn!(
                "rmq::consumer",
                "group {}: no assignment for topic {}: {e}",
                inner.group,
                sub.topic
            ),
        }
    }
}

async fn query_assignment(
    inner: &Inner,
    instance: &ClientInstance,
    topic: &str,
) -> Result<Option<Vec<MessageQueue>>> {
    let deadline = Instant::now() + instance.config().api_timeout;
    let route = instance.subscribe_route(topic, deadline).await?;
    let mut brokers: Vec<_> = route.broker_datas.iter().collect();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let addr = brokers
        .iter()
        .find_map(|b| b.master_addr())
        .ok_or_else(|| Error::Protocol(format!("the route of {topic} names no master")))?
        .to_string();
    let cmd = pop::query_assignment(
        topic,
        &inner.group,
        instance.client_id(),
        broker_strategy(inner.strategy),
    );
    let resp = instance.remoting().invoke(&addr, &cmd, deadline).await?;
    if resp.code != response::SUCCESS {
        return Err(Error::broker(resp.code, resp.remark_str(), addr));
    }
    Ok(pop::parse_assignments(&resp.body)?
        .map(|list| list.into_iter().map(|(mq, _mode)| mq).collect()))
}

/// Releases the topic's assignments not in `mine` and starts a pop loop for each new one.
fn update(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    sub: &Subscription,
    mine: Vec<MessageQueue>,
) {
    let keep: HashSet<&MessageQueue> = mine.iter().collect();
    let mut owned = inner.pops.owned.lock();
    owned.retain(|mq, o| {
        let stay = *mq.topic != *sub.topic || keep.contains(mq);
        if !stay {
            // Not aborted: a pop in flight still delivers what it took.
            o.pq.dropped.store(true, Ordering::Release);
        }
        stay
    });
    if inner.is_stopping() {
        return;
    }
    for mq in mine {
        if owned.contains_key(&mq) {
            continue;
        }
        let pq = Arc::new(PopQueue::default());
        let task = instance.shared().handle().spawn(pop_loop(
            Arc::clone(inner),
            Arc::clone(instance),
            mq.clone(),
            Arc::clone(&pq),
            sub.clone(),
        ));
        owned.insert(mq, Owned { pq, task });
    }
}

async fn pop_loop(
    inner: Arc<Inner>,
    instance: Arc<ClientInstance>,
    mq: MessageQueue,
    pq: Arc<PopQueue>,
    sub: Subscription,
) {
    let init_mode = match *inner.consume_from.lock() {
        ConsumeFrom::First => pop::INIT_MODE_MIN,
        _ => pop::INIT_MODE_MAX,
    };
    let orderly = inner.orderly.is_enabled();
    loop {
        if pq.dropped.load(Ordering::Acquire) || inner.is_stopping() {
            return;
        }
        if orderly {
            // One batch at a time: the broker hands out no more of a queue until it is acked.
            if !super::pop_orderly::wait_idle(&inner, &pq).await {
                return;
            }
            if pq.dropped.load(Ordering::Acquire) {
                return;
            }
        } else if pq.in_flight.load(Ordering::Acquire) >= inner.config.pull_threshold_for_queue {
            if !inner.pause(DELAY_ON_FLOW_CONTROL).await {
                return;
            }
            continue;
        }
        let Some(addr) = instance.master_addr(&mq.broker_name) else {
            if !inner.pause(DELAY_ON_ERROR).await {
                return;
            }
            continue;
        };
        let cmd = pop::pop_message(&PopRequest {
            group: &inner.group,
            topic: &mq.topic,
            broker_name: &mq.broker_name,
            queue_id: mq.queue_id,
            max_msg_nums: inner.config.pull_batch_size.min(MAX_POP_BATCH),
            invisible_time_ms: inner.config.pop_invisible_time.as_millis() as i64,
            poll_time_ms: BROKER_SUSPEND.as_millis() as i64,
            born_time_ms: ids::now_ms(),
            init_mode,
            expression_type: sub.kind.name(),
            expression: &sub.expression,
            order: orderly,
        });
        let deadline = Instant::now() + BROKER_SUSPEND + POP_TIMEOUT_MARGIN;
        let resp = tokio::select! {
            _ = inner.stopped() => return,
            r = instance.remoting().invoke(&addr, &cmd, deadline) => r,
        };
        let delay = match resp {
            Err(_) => Some(DELAY_ON_ERROR),
            Ok(resp) => match resp.code {
                response::SUCCESS => match popped(&mq, &sub, resp) {
                    Ok((wanted, unwanted)) => {
                        for m in unwanted {
                            spawn_ack(&inner, &instance, &mq, m);
                        }
                        if orderly {
                            super::pop_orderly::dispatch(&inner, &instance, &mq, &pq, wanted);
                        } else {
                            dispatch(&inner, &instance, &mq, &pq, wanted);
                        }
                        None
                    }
                    Err(e) => {
                        // They come back after their invisible time.
                        crate::log_warn!("rmq::consumer", "undecodable POP answer: {e}");
                        Some(DELAY_ON_ERROR)
                    }
                },
                pop::POLLING_TIMEOUT | response::PULL_NOT_FOUND => None,
                pop::POLLING_FULL => Some(DELAY_ON_ERROR),
                response::FLOW_CONTROL => Some(DELAY_ON_BROKER_FLOW_CONTROL),
                code => {
                    crate::log_warn!(
                        "rmq::consumer",
                        "group {}: POP_MESSAGE of {} on {} refused: {}",
                        inner.group,
                        mq.topic,
                        mq.broker_name,
                        Error::broker(code, resp.remark_str(), &*addr)
                    );
                    Some(DELAY_ON_ERROR)
                }
            },
        };
        if let Some(d) = delay {
            if !inner.pause(d).await {
                return;
            }
        }
    }
}

/// The messages of a POP answer with their receipts, split into those the subscription wants
/// and those it does not (the broker filters tags by hash only; those are simply acked).
type Split = (Vec<Arc<MessageExt>>, Vec<Arc<MessageExt>>);

fn popped(mq: &MessageQueue, sub: &Subscription, resp: RemotingCommand) -> Result<Split> {
    let header = PopHeader::from_response(&resp)?;
    let mut msgs = decode_stored_messages(resp.body)?;
    header.attach(&mq.topic, &mq.broker_name, &mut msgs);
    Ok(msgs
        .into_iter()
        .map(Arc::new)
        .partition(|m| sub.matches(m.message.tags())))
}

fn dispatch(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    pq: &Arc<PopQueue>,
    msgs: Vec<Arc<MessageExt>>,
) {
    if let Some(handoff) = inner.handoff.lock().clone() {
        // Poll mode: the application takes them in batches of its own size.
        handoff.push_popped(mq, pq, msgs);
        return;
    }
    for chunk in msgs.chunks(inner.config.consume_message_batch_max_size.max(1)) {
        pq.in_flight.fetch_add(chunk.len(), Ordering::AcqRel);
        let counted = InFlight(Arc::clone(pq), chunk.len());
        let guard = BusyGuard::new(inner);
        let batch = chunk.to_vec();
        let (inner2, instance, mq) = (Arc::clone(inner), Arc::clone(instance), mq.clone());
        let job = move || {
            let inner = inner2;
            // After shutdown began, batches not started come back after their invisible time.
            if inner.is_stopping() {
                drop((guard, counted));
                return;
            }
            let listener = inner.listener.lock().clone();
            let result = match listener {
                Some(l) => catch_unwind(AssertUnwindSafe(|| l(&batch)))
                    .unwrap_or(ConsumeResult::ReconsumeLater { delay_level: 0 }),
                None => ConsumeResult::ReconsumeLater { delay_level: 0 },
            };
            let handle = instance.shared().handle().clone();
            // Off the consume thread: acks are network I/O.
            handle.spawn(async move {
                let _guard = guard;
                let _counted = counted;
                for m in batch {
                    answer(&inner, &instance, &mq, &m, result).await;
                }
            });
        };
        // A closed executor (shutdown) drops the job: the messages come back later.
        let _ = inner.executor.spawn(inner.id, job);
    }
}

/// Acks a message the listener never sees (a tag the subscription does not take).
fn spawn_ack(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    mq: &MessageQueue,
    m: Arc<MessageExt>,
) {
    let guard = BusyGuard::new(inner);
    let (inner, instance, mq) = (Arc::clone(inner), Arc::clone(instance), mq.clone());
    instance.shared().handle().clone().spawn(async move {
        let _guard = guard;
        answer(&inner, &instance, &mq, &m, ConsumeResult::Success).await;
    });
}

/// Ms a message stays away after "reconsume later" at `delay_level` (0: 3 + times reconsumed).
fn delay_of(delay_level: i32, reconsume_times: i32) -> Duration {
    let level = if delay_level > 0 {
        delay_level
    } else {
        3 + reconsume_times.max(0)
    };
    let i = (level.clamp(1, DELAY_LEVEL_SECONDS.len() as i32) - 1) as usize;
    Duration::from_secs(DELAY_LEVEL_SECONDS[i])
}

/// What a listener result means for one popped message.
pub(super) async fn answer(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    m: &MessageExt,
    result: ConsumeResult,
) {
    let outcome = match result {
        ConsumeResult::Success => ack(inner, instance, mq, m).await,
        ConsumeResult::ReconsumeLater { delay_level }
            if delay_level < 0 || m.reconsume_times >= inner.config.max_reconsume_times =>
        {
            match to_dlq(inner, instance, mq, m).await {
                Ok(()) => ack(inner, instance, mq, m).await,
                // Not acked: it comes back after its invisible time and is tried again.
                Err(e) => Err(e),
            }
        }
        ConsumeResult::ReconsumeLater { delay_level } => {
            let delay = delay_of(delay_level, m.reconsume_times);
            change_invisible_time(inner, instance, mq, m, delay).await
        }
    };
    if let Err(e) = outcome {
        crate::log_warn!(
            "rmq::consumer",
            "group {}: answering popped message {} failed (it comes again after its \
             invisible time): {e}",
            inner.group,
            m.msg_id()
        );
    }
}

fn receipt(m: &MessageExt) -> Result<&str> {
    m.message
        .property(PROPERTY_POP_CK)
        .ok_or_else(|| Error::Protocol("popped message without a POP_CK receipt".into()))
}

async fn invoke_on(
    instance: &ClientInstance,
    broker_name: &str,
    cmd: RemotingCommand,
) -> Result<()> {
    let addr = instance
        .master_addr(broker_name)
        .ok_or_else(|| Error::RouteNotFound {
            topic: String::new(),
            reason: format!("broker {broker_name} has no master address"),
        })?;
    let resp = instance
        .remoting()
        .invoke(&addr, &cmd, Instant::now() + ACK_TIMEOUT)
        .await?;
    match resp.code {
        response::SUCCESS => Ok(()),
        code => Err(Error::broker(code, resp.remark_str(), &*addr)),
    }
}

async fn ack(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    m: &MessageExt,
) -> Result<()> {
    let extra = receipt(m)?;
    let r = pop::Receipt::parse(extra)?;
    let cmd = pop::ack_message(&inner.group, &mq.topic, extra)?;
    invoke_on(instance, &r.broker_name, cmd).await
}

pub(super) async fn change_invisible_time(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    m: &MessageExt,
    delay: Duration,
) -> Result<()> {
    let extra = receipt(m)?;
    let r = pop::Receipt::parse(extra)?;
    let cmd = pop::change_invisible_time(&inner.group, &mq.topic, extra, delay.as_millis() as i64)?;
    invoke_on(instance, &r.broker_name, cmd).await
}

/// Moves the message to `%DLQ%<group>` through the broker (delay level -1).
async fn to_dlq(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    m: &MessageExt,
) -> Result<()> {
    let cmd = req::consumer_send_msg_back(&SendBack {
        group: &inner.group,
        commit_log_offset: m.commit_log_offset,
        delay_level: -1,
        origin_msg_id: m.msg_id(),
        origin_topic: &mq.topic,
        max_reconsume_times: inner.config.max_reconsume_times,
        broker_name: &mq.broker_name,
    });
    invoke_on(instance, &m.broker_name, cmd).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_levels_map_to_the_broker_table() {
        assert_eq!(delay_of(1, 0), Duration::from_secs(1));
        assert_eq!(delay_of(2, 5), Duration::from_secs(5));
        assert_eq!(delay_of(0, 0), Duration::from_secs(10));
        assert_eq!(delay_of(0, 1), Duration::from_secs(30));
        assert_eq!(delay_of(40, 0), Duration::from_secs(7200));
    }
}
