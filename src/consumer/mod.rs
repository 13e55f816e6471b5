//! The push consumer (clustering, concurrent), as Java's DefaultMQPushConsumer: subscriptions,
//! rebalance among the group's consumers, one long-polling pull loop per owned queue, a listener
//! run on the consumer's own threads, retries through the broker (`%RETRY%<group>`, then
//! `%DLQ%<group>`), and offsets committed to the broker up to the lowest message in flight.
//! In poll mode (`set_poll_mode`) the application takes batches with `poll` instead, and
//! acknowledges them through the same result handling (`poll.rs`).
//!
//! Threads: pull loops, rebalance and offset commits are tasks on the process's I/O runtime; the
//! listener runs only on the consumer's `rmq-c<id>-<n>` threads
//! (`consumer.consume-thread-number`), never on an I/O thread or a caller's thread.
mod admin;
mod allocate;
mod consume;
mod lite_pull;
mod local_offset;
mod lock;
mod offset;
mod orderly;
mod poll;
mod pop;
mod pop_orderly;
mod process_queue;
mod pull;
pub(crate) mod rebalance;
mod subscription;

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use allocate::AllocateStrategy;
pub use lite_pull::LitePullConsumer;
pub use orderly::{OrderlyListener, OrderlyResult};
pub use poll::ReceivedBatch;
pub use subscription::{java_string_hash, ExpressionType, Subscription};

use crate::client::{registry, ClientInstance, ConsumerMember, MessageQueue};
pub use crate::config::ConsumerConfig;
use crate::error::{Error, Result};
use crate::executor::{self, Executor};
use crate::protocol::message::MessageExt;
use crate::runtime;
use offset::OffsetStore;
use process_queue::ProcessQueue;

/// What a listener says about a batch of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed; the offset may move past them.
    Success,
    /// Deliver the batch again later. The delay level picks when (1 = 1 s, 2 = 5 s, 3 = 10 s,
    /// ... in the broker's level table); 0 lets the broker choose (3 + times already
    /// reconsumed); a negative level sends the messages to the DLQ at once.
    ReconsumeLater { delay_level: i32 },
}

/// The listener: called with up to `consumer.consume-message-batch-max-size` messages of one
/// queue. A panic counts as `ReconsumeLater { delay_level: 0 }`.
pub type Listener = Arc<dyn Fn(&[Arc<MessageExt>]) -> ConsumeResult + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    ShutDown,
}

/// Where a group without a stored offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumeFrom {
    Last,
    First,
    Timestamp(i64),
}

impl ConsumeFrom {
    /// consumer.consume-from-where and consumer.consume-timestamp, checked.
    fn of(config: &ConsumerConfig) -> Result<ConsumeFrom> {
        let from = match config.consume_from_where.as_str() {
            "last" => ConsumeFrom::Last,
            "first" => ConsumeFrom::First,
            "timestamp" => ConsumeFrom::Timestamp(match &config.consume_timestamp {
                Some(t) => parse_local_timestamp(t)?,
                None => crate::protocol::ids::now_ms() - 30 * 60 * 1000,
            }),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "consume-from-where '{other}' is not one of last, first, timestamp"
                )))
            }
        };
        if let Some(t) = &config.consume_timestamp {
            parse_local_timestamp(t)?;
        }
        Ok(from)
    }

    fn wire_name(self) -> &'static str {
        match self {
            ConsumeFrom::Last => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFrom::First => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFrom::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        }
    }
}

/// Batches handed to the listener (or being sent back) and not finished yet.
#[derive(Default)]
struct Busy {
    count: Mutex<usize>,
    idle: Condvar,
}

impl Busy {
    fn add(&self) {
        *self.count.lock() += 1;
    }
    fn done(&self) {
        let mut n = self.count.lock();
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
    }
    /// Waits until nothing is busy or `deadline`; true when idle.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut n = self.count.lock();
        while *n > 0 {
            if self.idle.wait_until(&mut n, deadline).timed_out() {
                return *n == 0;
            }
        }
        true
    }
}

pub(crate) struct OwnedQueue {
    pq: Arc<ProcessQueue>,
    pull: JoinHandle<()>,
}

pub(crate) struct Inner {
    /// Owner id of this consumer's jobs on its executor.
    id: u64,
    pid: u32,
    config: ConsumerConfig,
    group: Arc<str>,
    retry_topic: String,
    strategy: AllocateStrategy,
    consume_from: Mutex<ConsumeFrom>,
    subscriptions: Mutex<Vec<Subscription>>,
    listener: Mutex<Option<Listener>>,
    /// Set in poll mode (instead of a listener): where the consume stage leaves the messages.
    handoff: Mutex<Option<Arc<poll::Handoff>>>,
    /// Set instead of `listener` for orderly consumption.
    orderly: orderly::Orderly,
    state: Mutex<State>,
    instance: Mutex<Option<Arc<ClientInstance>>>,
    executor: Executor,
    queues: Mutex<HashMap<MessageQueue, OwnedQueue>>,
    offsets: OffsetStore,
    stop: watch::Sender<bool>,
    rebalance_now: Notify,
    background: Mutex<Option<JoinHandle<()>>>,
    busy: Busy,
    /// Broadcasting only: the local offset file, opened at start.
    local_offsets: OnceLock<local_offset::LocalOffsetStore>,
    /// When start succeeded (ms since the epoch), for the admin tools.
    started_ms: AtomicI64,
    /// consumer.consume-mode=pop: the broker's assignments being popped (pop.rs).
    pops: pop::PopQueues,
    /// Message trace, when client.trace-enabled: set at start.
    trace: std::sync::OnceLock<crate::trace::Tracer>,
}

impl Inner {
    fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when shutdown begins.
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Sleeps `d`; false when shutdown began meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stopped() => false,
            _ = tokio::time::sleep(d) => !self.is_stopping(),
        }
    }

    fn subscription(&self, topic: &str) -> Option<Subscription> {
        self.subscriptions
            .lock()
            .iter()
            .find(|s| s.topic == topic)
            .cloned()
    }
}

/// What the client instance sees of a consumer; weak, so the instance never keeps it alive.
struct Member(Weak<Inner>);

impl ConsumerMember for Member {
    fn consumer_data(&self) -> Option<serde_json::Value> {
        let inner = self.0.upgrade()?;
        if *inner.state.lock() != State::Running {
            return None;
        }
        let subs: Vec<serde_json::Value> = inner
            .subscriptions
            .lock()
            .iter()
            .map(Subscription::to_json)
            .collect();
        Some(serde_json::json!({
            "groupName": &*inner.group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": if inner.config.broadcasting { "BROADCASTING" } else { "CLUSTERING" },
            "consumeFromWhere": inner.consume_from.lock().wire_name(),
            "subscriptionDataSet": subs,
            "unitMode": false,
        }))
    }

    fn rebalance_now(&self) {
        if let Some(inner) = self.0.upgrade() {
            inner.rebalance_now.notify_one();
        }
    }

    fn running_info(&self) -> Option<crate::client::admin::RunningInfo> {
        admin::running_info(&self.0.upgrade()?)
    }

    fn offset_table(&self, topic: &str) -> Vec<(MessageQueue, i64)> {
        self.0
            .upgrade()
            .map(|inner| admin::offset_table(&inner, topic))
            .unwrap_or_default()
    }

    fn reset_offsets(&self, topic: &str, offsets: Vec<(MessageQueue, i64)>) {
        if let Some(inner) = self.0.upgrade() {
            admin::reset_offsets(&inner, topic, offsets);
        }
    }

    fn consume_directly(&self, msg: MessageExt) -> Option<crate::client::admin::DirectResult> {
        admin::consume_directly(&self.0.upgrade()?, msg)
    }
}

/// Shuts the consumer down when the last handle goes.
struct Handle(Arc<Inner>);

impl Drop for Handle {
    fn drop(&mut self) {
        if runtime::check_pid(self.0.pid).is_err() {
            return;
        }
        let c = PushConsumer {
            inner: Arc::clone(&self.0),
            _handle: None,
        };
        let _ = c.shutdown();
    }
}

/// A push consumer. Cheap to clone; clones share one consumer, which shuts down when the last
/// clone is dropped (if `shutdown` was not called before).
#[derive(Clone)]
pub struct PushConsumer {
    inner: Arc<Inner>,
    _handle: Option<Arc<Handle>>,
}

impl PushConsumer {
    pub fn new(config: ConsumerConfig) -> Result<PushConsumer> {
        validate_group(&config.group)?;
        let strategy = AllocateStrategy::from_name(&config.allocate_strategy)?;
        let consume_from = ConsumeFrom::of(&config)?;
        let id = executor::new_owner_id();
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            id,
            pid: runtime::current_pid(),
            group: Arc::from(config.group.as_str()),
            retry_topic: format!("%RETRY%{}", config.group),
            strategy,
            consume_from: Mutex::new(consume_from),
            subscriptions: Mutex::new(Vec::new()),
            listener: Mutex::new(None),
            handoff: Mutex::new(None),
            orderly: orderly::Orderly::default(),
            state: Mutex::new(State::Created),
            instance: Mutex::new(None),
            executor: Executor::new(format!("rmq-c{id}"), config.consume_thread_number),
            queues: Mutex::new(HashMap::new()),
            offsets: OffsetStore::default(),
            stop,
            rebalance_now: Notify::new(),
            background: Mutex::new(None),
            busy: Busy::default(),
            local_offsets: OnceLock::new(),
            started_ms: AtomicI64::new(0),
            pops: pop::PopQueues::default(),
            trace: std::sync::OnceLock::new(),
            config,
        });
        Ok(PushConsumer {
            _handle: Some(Arc::new(Handle(Arc::clone(&inner)))),
            inner,
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.inner.config
    }

    /// Prefix of the names of the threads that run this consumer's listener.
    pub fn thread_name_prefix(&self) -> String {
        format!("rmq-c{}-", self.inner.id)
    }

    /// Subscribes `topic` with a tag expression (`*`, `TagA`, `TagA || TagB`). Before start only;
    /// subscribing a topic again replaces its expression.
    pub fn subscribe(&self, topic: &str, expression: &str) -> Result<()> {
        self.subscribe_with(topic, expression, ExpressionType::Tag)
    }

    /// Subscribes `topic` with a tag or SQL92 expression (SQL92 needs a broker with
    /// enablePropertyFilter=true; the broker evaluates it). Before start only.
    pub fn subscribe_with(
        &self,
        topic: &str,
        expression: &str,
        kind: ExpressionType,
    ) -> Result<()> {
        if topic.starts_with("%RETRY%") {
            return Err(Error::InvalidArgument(format!(
                "'{topic}' is a retry topic; a consumer subscribes its group's automatically"
            )));
        }
        let sub = Subscription::new(topic, expression, kind)?;
        let state = self.inner.state.lock();
        if *state != State::Created {
            return Err(Error::InvalidState(
                "subscribe before start; the consumer is already started or shut down".into(),
            ));
        }
        let mut subs = self.inner.subscriptions.lock();
        subs.retain(|s| s.topic != topic);
        subs.push(sub);
        Ok(())
    }

    /// Sets the listener (before start; a later call replaces it).
    pub fn set_listener(
        &self,
        listener: impl Fn(&[Arc<MessageExt>]) -> ConsumeResult + Send + Sync + 'static,
    ) -> Result<()> {
        let state = self.inner.state.lock();
        if *state != State::Created {
            return Err(Error::InvalidState(
                "set the listener before start; the consumer is already started or shut down"
                    .into(),
            ));
        }
        self.inner.orderly.clear();
        *self.inner.listener.lock() = Some(Arc::new(listener));
        *self.inner.handoff.lock() = None;
        Ok(())
    }

    /// Poll mode instead of a listener (before start; a later `set_listener` replaces it):
    /// received messages wait until the application takes them with `poll`.
    pub fn set_poll_mode(&self) -> Result<()> {
        let state = self.inner.state.lock();
        if *state != State::Created {
            return Err(Error::InvalidState(
                "set poll mode before start; the consumer is already started or shut down".into(),
            ));
        }
        *self.inner.listener.lock() = None;
        self.inner.orderly.clear();
        *self.inner.handoff.lock() = Some(Arc::default());
        Ok(())
    }

    /// In poll mode: waits up to `timeout` (`Duration::MAX`: no limit) for received messages
    /// and takes up to `max` of them, from one or several queues; `Ok(None)` when none came in
    /// time. Acknowledge the batch (`ReceivedBatch::ack`, `ack_each`); the consume timeout
    /// counts from the poll. Any thread may poll, several at once. Shutdown wakes a waiting
    /// poll; a poll during or after shutdown fails with `Error::InvalidState`, as does one
    /// before start or on a consumer with a listener. Blocking: call it outside any async
    /// runtime.
    pub fn poll(&self, max: usize, timeout: Duration) -> Result<Option<ReceivedBatch>> {
        runtime::check_pid(self.inner.pid)?;
        poll::poll(&self.inner, max, timeout)
    }

    /// Sets an orderly listener instead (before start; it replaces any listener set before):
    /// queues are locked at their brokers, and each is consumed by one thread at a time, in
    /// offset order. See `OrderlyResult` for what the listener may answer.
    pub fn set_orderly_listener(
        &self,
        listener: impl Fn(&[Arc<MessageExt>]) -> OrderlyResult + Send + Sync + 'static,
    ) -> Result<()> {
        let state = self.inner.state.lock();
        if *state != State::Created {
            return Err(Error::InvalidState(
                "set the listener before start; the consumer is already started or shut down"
                    .into(),
            ));
        }
        *self.inner.listener.lock() = None;
        *self.inner.handoff.lock() = None;
        self.inner.orderly.set(Arc::new(listener));
        Ok(())
    }

    /// Joins the client instance, fetches the routes of the subscribed topics, sends the
    /// heartbeat that registers the group with every broker, and starts rebalancing and pulling
    /// in the background. Blocks for the route queries and heartbeat (each within
    /// client.api-timeout); call it outside any async runtime.
    pub fn start(&self) -> Result<()> {
        runtime::check_pid(self.inner.pid)?;
        let inner = &self.inner;
        {
            let mut state = inner.state.lock();
            match *state {
                State::Created => {}
                State::Running => {
                    return Err(Error::InvalidState("consumer already started".into()))
                }
                State::ShutDown => {
                    return Err(Error::InvalidState(
                        "consumer has been shut down and cannot start again".into(),
                    ))
                }
            }
            if inner.listener.lock().is_none()
                && inner.handoff.lock().is_none()
                && !inner.orderly.is_enabled()
            {
                return Err(Error::InvalidState(
                    "set a listener (or poll mode) before starting the consumer".into(),
                ));
            }
            if inner.config.pop_mode && inner.config.broadcasting {
                return Err(Error::InvalidState(
                    "consumer.consume-mode=pop serves clustering groups only; broadcasting needs \
                     consumer.consume-mode=pull"
                        .into(),
                ));
            }
            let mut subs = inner.subscriptions.lock();
            if subs.is_empty() {
                return Err(Error::InvalidState(
                    "subscribe at least one topic before starting the consumer".into(),
                ));
            }
            if inner.config.broadcasting {
                // Java's broadcasting consumers neither retry nor read the retry topic.
                drop(subs);
                local_offset::open_for(inner)?;
            } else {
                subs.push(Subscription::new(
                    &inner.retry_topic,
                    "*",
                    ExpressionType::Tag,
                )?);
                drop(subs);
            }
            let member: Arc<dyn ConsumerMember> = Arc::new(Member(Arc::downgrade(inner)));
            let instance = match registry::register_consumer(
                &inner.config.client,
                &inner.config.group,
                member,
            ) {
                Ok(i) => i,
                Err(e) => {
                    if !inner.config.broadcasting {
                        inner.subscriptions.lock().pop();
                    }
                    return Err(e);
                }
            };
            *inner.instance.lock() = Some(Arc::clone(&instance));
            inner.started_ms.store(
                crate::protocol::ids::now_ms(),
                std::sync::atomic::Ordering::Relaxed,
            );
            *state = State::Running;
        }
        let instance = inner.instance.lock().clone().expect("set above");
        if let Some(topic) = &inner.config.client.trace_topic {
            let started = crate::trace::Tracer::start(
                &inner.config.client,
                topic,
                &inner.config.group,
                crate::trace::Role::Consume,
                instance.shared().handle(),
            );
            match started {
                Ok(t) => {
                    let _ = inner.trace.set(t);
                }
                Err(e) => {
                    drop(instance);
                    let _ = self.shutdown();
                    return Err(e);
                }
            }
        }
        let topics: Vec<String> = inner
            .subscriptions
            .lock()
            .iter()
            .map(|s| s.topic.clone())
            .collect();
        let first = async {
            for t in &topics {
                // A topic without a route yet is picked up by a later rebalance.
                let deadline = Instant::now() + instance.config().api_timeout;
                let _ = instance.subscribe_route(t, deadline).await;
            }
            instance.send_heartbeats().await;
        };
        if let Err(e) = runtime::block_on(instance.shared(), "consumer start", first) {
            drop(instance);
            let _ = self.shutdown();
            return Err(e);
        }
        let handle = instance.shared().handle().clone();
        if inner.orderly.is_enabled() && !inner.config.pop_mode {
            // Ends at shutdown. (Orderly POP needs no queue locks: the broker orders.)
            handle.spawn(lock::relock_loop(Arc::clone(inner), Arc::clone(&instance)));
        }
        let task = if inner.config.pop_mode {
            handle.spawn(pop::background(Arc::clone(inner), instance))
        } else {
            handle.spawn(rebalance::background(Arc::clone(inner), instance))
        };
        *inner.background.lock() = Some(task);
        Ok(())
    }

    /// The queues this consumer owns now (for tests and diagnostics).
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        let mut qs: Vec<MessageQueue> = self.inner.queues.lock().keys().cloned().collect();
        qs.extend(self.inner.pops.queues());
        qs.sort();
        qs
    }

    pub fn client_id(&self) -> Option<String> {
        self.inner
            .instance
            .lock()
            .as_ref()
            .map(|i| i.client_id().to_string())
    }

    /// The broadcasting offset file, once a broadcasting consumer has started; None otherwise.
    pub fn local_offsets_path(&self) -> Option<std::path::PathBuf> {
        self.inner
            .local_offsets
            .get()
            .map(|l| l.path().to_path_buf())
    }

    /// Whether the calling thread is running this consumer's listener.
    pub fn in_own_listener(&self) -> bool {
        executor::current_owner() == Some(self.inner.id)
    }

    pub fn is_forked(&self) -> bool {
        runtime::check_pid(self.inner.pid).is_err()
    }

    /// Stops the consumer: pulling stops; listener calls still running get up to
    /// `consumer.await-termination-millis-when-shutdown` to finish (batches not started yet are
    /// not started, and are delivered again later, as are calls still running at the
    /// deadline); offsets are committed to the brokers up to the lowest message not consumed;
    /// the group is unregistered; the consumer's threads end. In poll mode, waiting polls
    /// return `Error::InvalidState`, and batches taken but not acknowledged are not committed
    /// (they are delivered again later; acknowledging them afterwards is refused). Idempotent; safe from any thread
    /// except this consumer's own listener, where it fails with `Error::InvalidState` (it would
    /// wait for itself). Blocking: call it outside any async runtime.
    pub fn shutdown(&self) -> Result<()> {
        if self.in_own_listener() {
            return Err(Error::InvalidState(
                "a consumer cannot be shut down or destroyed from its own listener; do it from \
                 another thread"
                    .into(),
            ));
        }
        if self.is_forked() {
            return Ok(());
        }
        let inner = &self.inner;
        let instance = {
            let mut state = inner.state.lock();
            let was = *state;
            *state = State::ShutDown;
            let _ = inner.stop.send(true);
            // Wakes waiting polls; batches already taken and not acknowledged stay uncommitted.
            if let Some(h) = inner.handoff.lock().clone() {
                h.close();
            }
            if was != State::Running {
                inner.executor.close();
                return Ok(());
            }
            inner.instance.lock().take()
        };
        if let Some(t) = inner.background.lock().take() {
            t.abort();
        }
        inner.pops.stop_all();
        let owned: Vec<(MessageQueue, OwnedQueue)> = inner.queues.lock().drain().collect();
        for (_, q) in &owned {
            q.pull.abort();
        }
        inner
            .busy
            .wait_until(Instant::now() + inner.config.await_termination);
        inner.executor.close();
        if let Some(t) = inner.trace.get() {
            t.close();
        }
        let Some(instance) = instance else {
            return Ok(());
        };
        let last = registry::unregister_consumer(&instance, &inner.config.group);
        let work = async {
            for (mq, q) in &owned {
                let offset = q.pq.commit_offset();
                q.pq.drop_queue();
                let _ = offset::commit(inner, &instance, mq, offset).await;
            }
            if inner.orderly.is_enabled() {
                // After the commits, so the next owner starts where this consumer stopped.
                let mqs: Vec<MessageQueue> = owned.iter().map(|(q, _)| q.clone()).collect();
                lock::unlock(inner, &instance, &mqs).await;
            }
            instance
                .unregister_consumer_group(&inner.config.group)
                .await;
            if last {
                instance.close();
            }
        };
        runtime::block_on(instance.shared(), "consumer shutdown", work)
    }
}

/// Java's `Validators.checkGroup` plus the DEFAULT_CONSUMER rule.
fn validate_group(group: &str) -> Result<()> {
    crate::protocol::message::validate_group("consumer", group, "DEFAULT_CONSUMER")?;
    if group.len() > 120 {
        return Err(Error::InvalidArgument(
            "consumer group is longer than 120 characters".into(),
        ));
    }
    Ok(())
}

/// yyyyMMddHHmmss in local time -> ms since the epoch.
fn parse_local_timestamp(s: &str) -> Result<i64> {
    let bad = || {
        Error::InvalidArgument(format!(
            "consume timestamp '{s}' is not yyyyMMddHHmmss (e.g. 20240131235959)"
        ))
    };
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i32>().map_err(|_| bad());
    let (year, month, day) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hour, min, sec) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return Err(bad());
    }
    // SAFETY: a zeroed tm is valid input for mktime, which only reads and normalizes it.
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    if t == -1 {
        return Err(bad());
    }
    Ok(t as i64 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_or_are_refused() {
        assert!(parse_local_timestamp("20240131235959").unwrap() > 1_700_000_000_000);
        for bad in [
            "2024013123595",
            "2024-01-31 23",
            "20241331000000",
            "20240100000000",
        ] {
            assert!(parse_local_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lifecycle_rules_hold_without_a_broker() {
        let c = PushConsumer::new(ConsumerConfig::new("127.0.0.1:1", "G").unwrap()).unwrap();
        assert!(
            matches!(c.start(), Err(Error::InvalidState(_))),
            "no listener"
        );
        c.set_listener(|_| ConsumeResult::Success).unwrap();
        assert!(matches!(c.start(), Err(Error::InvalidState(_))), "no topic");
        assert!(c.subscribe("%RETRY%G", "*").is_err());
        assert!(c.subscribe("T", "||").is_err());
        c.shutdown().unwrap();
        c.shutdown().unwrap();
        assert!(matches!(c.subscribe("T", "*"), Err(Error::InvalidState(_))));
        assert!(
            PushConsumer::new(ConsumerConfig::new("127.0.0.1:1", "DEFAULT_CONSUMER").unwrap())
                .is_err()
        );
    }
}
