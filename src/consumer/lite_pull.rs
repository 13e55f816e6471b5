//! The lite pull consumer, as Java's DefaultLitePullConsumer: the application pulls at its own
//! pace with `poll`. Queues come from a subscription (shared among the group's consumers by the
//! push consumer's rebalance and allocation) or are assigned explicitly; background pull loops
//! (long polling, one per queue, flow-controlled) keep polled batches ready. A polled message
//! counts as consumed: its queue's consumed offset moves past it, and that offset is committed to
//! the broker every `consumer.auto-commit-interval`, when a queue is released and at shutdown
//! (`consumer.auto-commit`), or by `commit`. `seek` moves a queue (to an offset, its beginning,
//! its end, or a time); `pause` stops a queue until `resume`.
//!
//! Threads: pull loops, rebalance and auto-commit are tasks on the process's I/O runtime. Polls
//! run on the caller's threads. The state lock is never held across network I/O.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::allocate::AllocateStrategy;
use super::offset::{self, End};
use super::pull::{read_pull_response, PullOutcome, BROKER_SUSPEND, PULL_TIMEOUT};
use super::rebalance::{group_consumer_ids, subscribe_queues};
use super::subscription::{ExpressionType, Subscription};
use super::{validate_group, ConsumeFrom, ReceivedBatch};
use crate::client::{registry, ClientInstance, ConsumerMember, MessageQueue};
use crate::config::ConsumerConfig;
use crate::error::{Error, Result};
use crate::protocol::consumer::{self as req, PullRequest};
use crate::protocol::message::{validate_topic, MessageExt};
use crate::runtime;

const DELAY_ON_FLOW_CONTROL: Duration = Duration::from_millis(50);
const DELAY_ON_BROKER_FLOW_CONTROL: Duration = Duration::from_millis(20);
const DELAY_ON_ERROR: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Created,
    Running,
    ShutDown,
}

/// How the consumer gets its queues; the two exclude each other, as in Java.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unset,
    Subscribe,
    Assign,
}

/// A queue this consumer owns.
struct Queue {
    sub: Subscription,
    /// Bumped by seek, pause and release: a pull answer of an older generation is dropped.
    gen: u64,
    /// Next offset to pull; None until the start offset is known.
    pull_offset: Option<i64>,
    /// Next offset after the messages polled: what a commit stores.
    consumed: Option<i64>,
    /// Last offset committed to the broker by this consumer.
    committed: Option<i64>,
    /// Messages (and body bytes) pulled and not yet polled.
    count: usize,
    bytes: usize,
    /// Wakes the pull loop: resume, or restart a pull after seek or pause.
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

/// Messages of one pull waiting to be polled.
struct Chunk {
    mq: MessageQueue,
    gen: u64,
    msgs: VecDeque<Arc<MessageExt>>,
    /// The offset after the pull (filtered-out messages included).
    next: i64,
}

struct St {
    life: Life,
    mode: Mode,
    subs: Vec<Subscription>,
    /// Assign mode: the queues asked for.
    assigned: Vec<MessageQueue>,
    queues: HashMap<MessageQueue, Queue>,
    paused: HashSet<MessageQueue>,
    ready: VecDeque<Chunk>,
    /// Messages in `ready`.
    waiting: usize,
}

impl St {
    /// Forgets what `mq` has pulled and not yet handed out.
    fn drop_buffered(&mut self, mq: &MessageQueue) {
        let mut dropped = 0;
        self.ready.retain(|c| {
            let keep = &c.mq != mq;
            if !keep {
                dropped += c.msgs.len();
            }
            keep
        });
        self.waiting -= dropped;
        if let Some(q) = self.queues.get_mut(mq) {
            q.count = 0;
            q.bytes = 0;
        }
    }

    /// Up to `max` messages, oldest pull first; moves each queue's consumed offset past them.
    fn take(&mut self, max: usize) -> Vec<Arc<MessageExt>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(front) = self.ready.front_mut() else {
                break;
            };
            let q = self
                .queues
                .get_mut(&front.mq)
                .filter(|q| q.gen == front.gen);
            let Some(q) = q.filter(|_| !self.paused.contains(&front.mq)) else {
                // Defensive: seek, pause and release remove their chunks at once.
                let c = self.ready.pop_front().expect("front exists");
                self.waiting -= c.msgs.len();
                continue;
            };
            let n = front.msgs.len().min(max - out.len());
            for m in front.msgs.drain(..n) {
                q.bytes = q.bytes.saturating_sub(m.message.body().len());
                out.push(m);
            }
            q.count -= n;
            self.waiting -= n;
            q.consumed = Some(match front.msgs.front() {
                Some(m) => m.queue_offset,
                None => front.next,
            });
            if front.msgs.is_empty() {
                self.ready.pop_front();
            }
        }
        out
    }

    /// Offsets to commit: (queue, consumed) where that differs from the last commit.
    fn uncommitted(&self) -> Vec<(MessageQueue, i64)> {
        self.queues
            .iter()
            .filter_map(|(mq, q)| {
                let c = q.consumed?;
                (q.committed != Some(c)).then(|| (mq.clone(), c))
            })
            .collect()
    }
}

struct Lite {
    pid: u32,
    config: ConsumerConfig,
    group: Arc<str>,
    strategy: AllocateStrategy,
    consume_from: ConsumeFrom,
    st: Mutex<St>,
    /// Signalled when messages arrive and at shutdown.
    arrived: Condvar,
    instance: Mutex<Option<Arc<ClientInstance>>>,
    stop: watch::Sender<bool>,
    rebalance_now: Notify,
    background: Mutex<Option<JoinHandle<()>>>,
}

impl Lite {
    fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Sleeps `d`; false when shutdown began meanwhile.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stopped() => false,
            _ = tokio::time::sleep(d) => !self.is_stopping(),
        }
    }
}

/// What the client instance sees of the consumer (heartbeats, rebalance notices).
struct Member(Weak<Lite>);

impl ConsumerMember for Member {
    fn consumer_data(&self) -> Option<serde_json::Value> {
        let lite = self.0.upgrade()?;
        let st = lite.st.lock();
        if st.life != Life::Running {
            return None;
        }
        let subs: Vec<serde_json::Value> = match st.mode {
            Mode::Assign => {
                let topics: HashSet<&str> = st.assigned.iter().map(|q| &*q.topic).collect();
                topics
                    .into_iter()
                    .filter_map(|t| Subscription::new(t, "*", ExpressionType::Tag).ok())
                    .map(|s| s.to_json())
                    .collect()
            }
            _ => st.subs.iter().map(Subscription::to_json).collect(),
        };
        Some(serde_json::json!({
            "groupName": &*lite.group,
            "consumeType": "CONSUME_ACTIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": lite.consume_from.wire_name(),
            "subscriptionDataSet": subs,
            "unitMode": false,
        }))
    }

    fn rebalance_now(&self) {
        if let Some(lite) = self.0.upgrade() {
            lite.rebalance_now.notify_one();
        }
    }
}

/// Shuts the consumer down when the last clone goes.
struct Handle(Arc<Lite>);

impl Drop for Handle {
    fn drop(&mut self) {
        if runtime::check_pid(self.0.pid).is_err() {
            return;
        }
        let c = LitePullConsumer {
            inner: Arc::clone(&self.0),
            _handle: None,
        };
        let _ = c.shutdown();
    }
}

/// A lite pull consumer (clustering). Cheap to clone; clones share one consumer, which shuts
/// down when the last clone is dropped (if `shutdown` was not called before). Every method may
/// be called from any thread; the blocking ones (start, poll, commit, seek, fetch, shutdown)
/// must be called outside any async runtime.
#[derive(Clone)]
pub struct LitePullConsumer {
    inner: Arc<Lite>,
    _handle: Option<Arc<Handle>>,
}

impl LitePullConsumer {
    /// The `consumer.*` keys apply as to a push consumer where they mean the same (group,
    /// consume-from-where, allocate-strategy, pull-batch-size, the pull thresholds,
    /// rebalance-interval), plus consumer.auto-commit, consumer.auto-commit-interval and
    /// consumer.pull-threshold-for-all.
    pub fn new(config: ConsumerConfig) -> Result<LitePullConsumer> {
        validate_group(&config.group)?;
        let strategy = AllocateStrategy::from_name(&config.allocate_strategy)?;
        let consume_from = ConsumeFrom::of(&config)?;
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Lite {
            pid: runtime::current_pid(),
            group: Arc::from(config.group.as_str()),
            strategy,
            consume_from,
            st: Mutex::new(St {
                life: Life::Created,
                mode: Mode::Unset,
                subs: Vec::new(),
                assigned: Vec::new(),
                queues: HashMap::new(),
                paused: HashSet::new(),
                ready: VecDeque::new(),
                waiting: 0,
            }),
            arrived: Condvar::new(),
            instance: Mutex::new(None),
            stop,
            rebalance_now: Notify::new(),
            background: Mutex::new(None),
            config,
        });
        Ok(LitePullConsumer {
            _handle: Some(Arc::new(Handle(Arc::clone(&inner)))),
            inner,
        })
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.inner.config
    }

    pub fn is_forked(&self) -> bool {
        runtime::check_pid(self.inner.pid).is_err()
    }

    /// Subscribes `topic` with a tag expression (`*`, `TagA || TagB`): its queues are shared
    /// among the group's consumers by rebalance. Before start only; not with `assign`.
    pub fn subscribe(&self, topic: &str, expression: &str) -> Result<()> {
        self.subscribe_with(topic, expression, ExpressionType::Tag)
    }

    /// Subscribes with a tag or SQL92 expression (SQL92 needs enablePropertyFilter=true at the
    /// broker). Before start only; subscribing a topic again replaces its expression.
    pub fn subscribe_with(
        &self,
        topic: &str,
        expression: &str,
        kind: ExpressionType,
    ) -> Result<()> {
        let sub = Subscription::new(topic, expression, kind)?;
        let mut st = self.inner.st.lock();
        if st.life != Life::Created {
            return Err(Error::InvalidState(
                "subscribe before start; the consumer is already started or shut down".into(),
            ));
        }
        if st.mode == Mode::Assign {
            return Err(Error::InvalidState(
                "this consumer has assigned queues; subscribe and assign exclude each other".into(),
            ));
        }
        st.mode = Mode::Subscribe;
        st.subs.retain(|s| s.topic != topic);
        st.subs.push(sub);
        Ok(())
    }

    /// Takes exactly these queues (all messages, tag `*`), replacing an earlier assignment:
    /// queues no longer listed are released (with consumer.auto-commit their consumed offsets
    /// are committed first). A queue starts from the group's committed offset, else from
    /// consumer.consume-from-where. Before or after start; not with `subscribe`.
    pub fn assign(&self, queues: &[MessageQueue]) -> Result<()> {
        if queues.is_empty() {
            return Err(Error::InvalidArgument(
                "assign at least one message queue".into(),
            ));
        }
        for q in queues {
            validate_topic(&q.topic)?;
            if q.broker_name.is_empty() || q.queue_id < 0 {
                return Err(Error::InvalidArgument(format!(
                    "{q:?} needs a broker name and a queue id >= 0"
                )));
            }
        }
        let running = {
            let mut st = self.inner.st.lock();
            if st.life == Life::ShutDown {
                return Err(shut_down());
            }
            if st.mode == Mode::Subscribe {
                return Err(Error::InvalidState(
                    "this consumer subscribes topics; subscribe and assign exclude each other"
                        .into(),
                ));
            }
            st.mode = Mode::Assign;
            let mut qs = queues.to_vec();
            qs.sort();
            qs.dedup();
            st.assigned = qs;
            st.life == Life::Running
        };
        if !running {
            return Ok(());
        }
        let instance = self.running_instance()?;
        let lite = Arc::clone(&self.inner);
        runtime::block_on(instance.shared(), "assign", async {
            apply_assignment(&lite, &instance).await;
        })
    }

    /// The queues this consumer owns now (assigned, or given by rebalance), sorted.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        let mut qs: Vec<MessageQueue> = self.inner.st.lock().queues.keys().cloned().collect();
        qs.sort();
        qs
    }

    /// The readable queues of `topic` (from its route), sorted by broker and queue id: what
    /// `assign` takes. After start.
    pub fn fetch_message_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        validate_topic(topic)?;
        let instance = self.running_instance()?;
        let deadline = Instant::now() + instance.config().api_timeout;
        let route = runtime::block_on(
            instance.shared(),
            "fetch message queues",
            instance.subscribe_route(topic, deadline),
        )??;
        Ok(subscribe_queues(topic, &route))
    }

    /// Joins the client instance, registers the group with the brokers, takes the assigned
    /// queues or runs the first rebalance of the subscribed topics, and starts pulling in the
    /// background. Blocks for the route queries and heartbeat (each within client.api-timeout).
    pub fn start(&self) -> Result<()> {
        runtime::check_pid(self.inner.pid)?;
        let lite = &self.inner;
        let instance = {
            let mut st = lite.st.lock();
            match st.life {
                Life::Created => {}
                Life::Running => {
                    return Err(Error::InvalidState("consumer already started".into()))
                }
                Life::ShutDown => return Err(shut_down()),
            }
            let member: Arc<dyn ConsumerMember> = Arc::new(Member(Arc::downgrade(lite)));
            let instance =
                registry::register_consumer(&lite.config.client, &lite.config.group, member)?;
            *lite.instance.lock() = Some(Arc::clone(&instance));
            st.life = Life::Running;
            instance
        };
        let first = async {
            let topics: Vec<String> = lite
                .st
                .lock()
                .subs
                .iter()
                .map(|s| s.topic.clone())
                .collect();
            for t in &topics {
                // A topic without a route yet is picked up by a later rebalance.
                let deadline = Instant::now() + instance.config().api_timeout;
                let _ = instance.subscribe_route(t, deadline).await;
            }
            instance.send_heartbeats().await;
            if lite.st.lock().mode == Mode::Assign {
                apply_assignment(lite, &instance).await;
            } else {
                rebalance(lite, &instance).await;
            }
        };
        if let Err(e) = runtime::block_on(instance.shared(), "consumer start", first) {
            drop(instance);
            let _ = self.shutdown();
            return Err(e);
        }
        let task = instance
            .shared()
            .handle()
            .spawn(background(Arc::clone(lite), Arc::clone(&instance)));
        *lite.background.lock() = Some(task);
        Ok(())
    }

    /// Waits up to `timeout` (`Duration::MAX`: no limit) for pulled messages and takes up to
    /// consumer.pull-batch-size of them, oldest pull first, possibly of several queues;
    /// `Ok(None)` when none came in time. The messages count as consumed: their queues'
    /// consumed offsets move past them (committed by auto-commit or `commit`). The batch needs
    /// no acknowledgement. Any thread may poll, several at once. Shutdown wakes a waiting poll
    /// with `Error::InvalidState`, as is a poll before start or after shutdown.
    pub fn poll(&self, timeout: Duration) -> Result<Option<ReceivedBatch>> {
        runtime::check_pid(self.inner.pid)?;
        let lite = &self.inner;
        let max = lite.config.pull_batch_size.max(1) as usize;
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let mut st = lite.st.lock();
        loop {
            match st.life {
                Life::Created => {
                    return Err(Error::InvalidState(
                        "start the consumer before polling it".into(),
                    ))
                }
                Life::ShutDown => return Err(shut_down()),
                Life::Running => {}
            }
            let msgs = st.take(max);
            if !msgs.is_empty() {
                return Ok(Some(ReceivedBatch::consumed(msgs)));
            }
            if lite.arrived.wait_until(&mut st, deadline).timed_out() {
                let msgs = st.take(max);
                if st.life != Life::Running {
                    return Err(shut_down());
                }
                return Ok((!msgs.is_empty()).then(|| ReceivedBatch::consumed(msgs)));
            }
        }
    }

    /// Commits the consumed offset of every owned queue to the broker and waits for the
    /// answers (Java's commitSync). The first failure is returned; the other queues are still
    /// committed.
    pub fn commit(&self) -> Result<()> {
        let instance = self.running_instance()?;
        let lite = Arc::clone(&self.inner);
        runtime::block_on(instance.shared(), "commit", async {
            commit_all(&lite, &instance).await
        })?
    }

    /// Commits the given offsets (the next offset to consume of each queue) and waits for the
    /// answers; every queue must be owned by this consumer. The consumed offsets are not
    /// changed: a later auto-commit stores them again.
    pub fn commit_offsets(&self, offsets: &[(MessageQueue, i64)]) -> Result<()> {
        let instance = self.running_instance()?;
        {
            let st = self.inner.st.lock();
            for (mq, o) in offsets {
                if *o < 0 {
                    return Err(Error::InvalidArgument(format!(
                        "offset {o} of {mq:?} is negative"
                    )));
                }
                if !st.queues.contains_key(mq) {
                    return Err(not_owned(mq));
                }
            }
        }
        let lite = Arc::clone(&self.inner);
        runtime::block_on(instance.shared(), "commit", async {
            let mut first = Ok(());
            for (mq, o) in offsets {
                match offset::commit_for(&lite.group, &instance, mq, *o).await {
                    Ok(()) => {
                        if let Some(q) = lite.st.lock().queues.get_mut(mq) {
                            q.committed = Some(*o);
                        }
                    }
                    Err(e) => {
                        if first.is_ok() {
                            first = Err(e);
                        }
                    }
                }
            }
            first
        })?
    }

    /// The group's offset of `mq` stored at the broker (any queue, owned or not); None when
    /// it has none.
    pub fn committed(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let instance = self.running_instance()?;
        let group = Arc::clone(&self.inner.group);
        runtime::block_on(instance.shared(), "committed offset", async {
            offset::committed(&group, &instance, mq).await
        })?
    }

    /// Polls of `mq` continue from `offset`, which must lie between the queue's first and
    /// last offsets (`Error::InvalidArgument` otherwise); messages pulled before are dropped.
    /// The queue's consumed offset becomes `offset` too, so a commit stores it. Only for owned
    /// queues, after start.
    pub fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let instance = self.owning_instance(mq)?;
        let (min, max) = runtime::block_on(instance.shared(), "seek", async {
            let min = offset::queue_end(&instance, mq, End::Min).await?;
            let max = offset::queue_end(&instance, mq, End::Max).await?;
            Ok::<_, Error>((min, max))
        })??;
        if offset < min || offset > max {
            return Err(Error::InvalidArgument(format!(
                "seek offset {offset} is outside {min}..={max}, the offsets of {mq:?}"
            )));
        }
        self.reposition(mq, offset)
    }

    /// `seek` to the queue's first stored message.
    pub fn seek_to_begin(&self, mq: &MessageQueue) -> Result<()> {
        self.seek_to_end_of(mq, End::Min)
    }

    /// `seek` past the queue's last message: only messages sent later are polled.
    pub fn seek_to_end(&self, mq: &MessageQueue) -> Result<()> {
        self.seek_to_end_of(mq, End::Max)
    }

    /// `seek` to the first message stored at or after `timestamp_ms` (ms since the epoch).
    pub fn seek_to_timestamp(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<()> {
        let offset = self.offset_for_timestamp(mq, timestamp_ms)?;
        self.reposition(mq, offset)
    }

    /// The offset of the first message of `mq` stored at or after `timestamp_ms` (the end of
    /// the queue when there is none). Any queue; after start.
    pub fn offset_for_timestamp(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
        let instance = self.running_instance()?;
        runtime::block_on(instance.shared(), "offset for timestamp", async {
            offset::offset_for_timestamp(&instance, mq, timestamp_ms).await
        })?
    }

    /// Stops handing out messages of these queues until `resume`: polls after this return none
    /// of them (what was pulled is dropped and pulled again after resume, from the consumed
    /// offset), and their pulling stops. A queue not owned yet stays paused if it comes later.
    pub fn pause(&self, queues: &[MessageQueue]) {
        let mut st = self.inner.st.lock();
        for mq in queues {
            st.paused.insert(mq.clone());
            st.drop_buffered(mq);
            if let Some(q) = st.queues.get_mut(mq) {
                q.gen += 1;
                q.pull_offset = q.consumed;
                q.wake.notify_one();
            }
        }
    }

    /// Pulling and polling of these queues go on from their consumed offsets.
    pub fn resume(&self, queues: &[MessageQueue]) {
        let mut st = self.inner.st.lock();
        for mq in queues {
            st.paused.remove(mq);
            if let Some(q) = st.queues.get(mq) {
                q.wake.notify_one();
            }
        }
    }

    pub fn is_paused(&self, mq: &MessageQueue) -> bool {
        self.inner.st.lock().paused.contains(mq)
    }

    /// Stops the consumer: pulling stops, waiting polls return `Error::InvalidState`, with
    /// consumer.auto-commit the consumed offsets are committed (without it, nothing beyond
    /// what `commit` stored), the group is unregistered. Idempotent. Blocking.
    pub fn shutdown(&self) -> Result<()> {
        if self.is_forked() {
            return Ok(());
        }
        let lite = &self.inner;
        let (was, queues, instance) = {
            let mut st = lite.st.lock();
            let was = st.life;
            st.life = Life::ShutDown;
            let _ = lite.stop.send(true);
            let queues: Vec<(MessageQueue, Queue)> = st.queues.drain().collect();
            st.ready.clear();
            st.waiting = 0;
            lite.arrived.notify_all();
            (was, queues, lite.instance.lock().take())
        };
        if let Some(t) = lite.background.lock().take() {
            t.abort();
        }
        let mut to_commit = Vec::new();
        for (mq, q) in queues {
            if let Some(t) = &q.task {
                t.abort();
            }
            if let Some(c) = q.consumed.filter(|c| q.committed != Some(*c)) {
                to_commit.push((mq, c));
            }
        }
        let Some(instance) = instance.filter(|_| was == Life::Running) else {
            return Ok(());
        };
        let last = registry::unregister_consumer(&instance, &lite.config.group);
        let work = async {
            if lite.config.auto_commit {
                for (mq, o) in &to_commit {
                    let _ = offset::commit_for(&lite.group, &instance, mq, *o).await;
                }
            }
            instance.unregister_consumer_group(&lite.config.group).await;
            if last {
                instance.close();
            }
        };
        runtime::block_on(instance.shared(), "consumer shutdown", work)
    }

    fn running_instance(&self) -> Result<Arc<ClientInstance>> {
        runtime::check_pid(self.inner.pid)?;
        let life = self.inner.st.lock().life;
        match life {
            Life::Created => Err(Error::InvalidState("start the consumer first".into())),
            Life::ShutDown => Err(shut_down()),
            Life::Running => self.inner.instance.lock().clone().ok_or_else(shut_down),
        }
    }

    fn owning_instance(&self, mq: &MessageQueue) -> Result<Arc<ClientInstance>> {
        let instance = self.running_instance()?;
        if !self.inner.st.lock().queues.contains_key(mq) {
            return Err(not_owned(mq));
        }
        Ok(instance)
    }

    fn seek_to_end_of(&self, mq: &MessageQueue, end: End) -> Result<()> {
        let instance = self.owning_instance(mq)?;
        let offset = runtime::block_on(instance.shared(), "seek", async {
            offset::queue_end(&instance, mq, end).await
        })??;
        self.reposition(mq, offset)
    }

    fn reposition(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let mut st = self.inner.st.lock();
        if !st.queues.contains_key(mq) {
            return Err(not_owned(mq));
        }
        st.drop_buffered(mq);
        let q = st.queues.get_mut(mq).expect("checked above");
        q.gen += 1;
        q.pull_offset = Some(offset);
        q.consumed = Some(offset);
        q.wake.notify_one();
        Ok(())
    }
}

fn shut_down() -> Error {
    Error::InvalidState("the consumer is shut down".into())
}

fn not_owned(mq: &MessageQueue) -> Error {
    Error::InvalidArgument(format!(
        "{mq:?} is not one of this consumer's queues (assign it, or subscribe its topic and let \
         rebalance give it)"
    ))
}

/// Auto-commit every consumer.auto-commit-interval; rebalance (subscribe mode) every
/// consumer.rebalance-interval and when a broker says the group changed.
async fn background(lite: Arc<Lite>, instance: Arc<ClientInstance>) {
    let rebalance_interval = lite.config.rebalance_interval;
    let commit_interval = lite.config.auto_commit_interval;
    let mut next_rebalance = Instant::now() + rebalance_interval;
    let mut next_commit = Instant::now() + commit_interval;
    loop {
        let wake = if lite.config.auto_commit {
            next_rebalance.min(next_commit)
        } else {
            next_rebalance
        };
        let asked = tokio::select! {
            _ = lite.stopped() => return,
            _ = lite.rebalance_now.notified() => true,
            _ = tokio::time::sleep_until(wake.into()) => false,
        };
        let now = Instant::now();
        if lite.config.auto_commit && now >= next_commit {
            let _ = commit_all(&lite, &instance).await;
            next_commit = now + commit_interval;
        }
        if asked || now >= next_rebalance {
            rebalance(&lite, &instance).await;
            next_rebalance = Instant::now() + rebalance_interval;
        }
    }
}

/// Commits every owned queue's consumed offset that differs from the last commit.
async fn commit_all(lite: &Lite, instance: &ClientInstance) -> Result<()> {
    let todo = lite.st.lock().uncommitted();
    let mut first = Ok(());
    for (mq, o) in todo {
        match offset::commit_for(&lite.group, instance, &mq, o).await {
            Ok(()) => {
                if let Some(q) = lite.st.lock().queues.get_mut(&mq) {
                    q.committed = Some(o);
                }
            }
            Err(e) => {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
    }
    first
}

/// Subscribe mode: the push consumer's allocation of each subscribed topic's queues.
async fn rebalance(lite: &Arc<Lite>, instance: &Arc<ClientInstance>) {
    let subs = {
        let st = lite.st.lock();
        if st.mode != Mode::Subscribe {
            return;
        }
        st.subs.clone()
    };
    for sub in subs {
        if lite.is_stopping() {
            return;
        }
        let deadline = Instant::now() + instance.config().api_timeout;
        // Any failure keeps the queues as they are until the next round.
        let Ok(route) = instance.subscribe_route(&sub.topic, deadline).await else {
            continue;
        };
        let all = subscribe_queues(&sub.topic, &route);
        let Ok(ids) = group_consumer_ids(&lite.group, instance, &route).await else {
            continue;
        };
        let mine = lite.strategy.allocate(instance.client_id(), &all, &ids);
        let topic = sub.topic.clone();
        update_queues(
            lite,
            instance,
            |mq| *mq.topic == *topic,
            mine,
            |_| sub.clone(),
        )
        .await;
    }
}

/// Assign mode: own exactly the assigned queues.
async fn apply_assignment(lite: &Arc<Lite>, instance: &Arc<ClientInstance>) {
    let assigned = lite.st.lock().assigned.clone();
    // The routes name the queues' brokers; a pull loop that still finds none asks again.
    let topics: HashSet<&str> = assigned.iter().map(|q| &*q.topic).collect();
    for t in topics {
        let deadline = Instant::now() + instance.config().api_timeout;
        let _ = instance.subscribe_route(t, deadline).await;
    }
    update_queues(
        lite,
        instance,
        |_| true,
        assigned,
        |mq| {
            Subscription::new(&mq.topic, "*", ExpressionType::Tag)
                .expect("topic validated by assign")
        },
    )
    .await;
}

/// Releases the owned queues that `scope` covers and `mine` does not list (committing their
/// consumed offsets with auto-commit), and takes the new ones of `mine`.
async fn update_queues(
    lite: &Arc<Lite>,
    instance: &Arc<ClientInstance>,
    scope: impl Fn(&MessageQueue) -> bool,
    mine: Vec<MessageQueue>,
    sub_of: impl Fn(&MessageQueue) -> Subscription,
) {
    let keep: HashSet<&MessageQueue> = mine.iter().collect();
    let released: Vec<(MessageQueue, Option<i64>)> = {
        let mut st = lite.st.lock();
        if st.life != Life::Running {
            return;
        }
        let gone: Vec<MessageQueue> = st
            .queues
            .keys()
            .filter(|q| scope(q) && !keep.contains(q))
            .cloned()
            .collect();
        let mut released = Vec::new();
        for mq in gone {
            st.drop_buffered(&mq);
            let q = st.queues.remove(&mq).expect("listed above");
            if let Some(t) = &q.task {
                t.abort();
            }
            let uncommitted = q.consumed.filter(|c| q.committed != Some(*c));
            released.push((mq, uncommitted));
        }
        for mq in &mine {
            if st.queues.contains_key(mq) {
                continue;
            }
            let task = instance.shared().handle().spawn(pull_loop(
                Arc::clone(lite),
                Arc::clone(instance),
                mq.clone(),
            ));
            st.queues.insert(
                mq.clone(),
                Queue {
                    sub: sub_of(mq),
                    gen: 0,
                    pull_offset: None,
                    consumed: None,
                    committed: None,
                    count: 0,
                    bytes: 0,
                    wake: Arc::new(Notify::new()),
                    task: Some(task),
                },
            );
        }
        released
    };
    if lite.config.auto_commit {
        for (mq, o) in released {
            if let Some(o) = o {
                let _ = offset::commit_for(&lite.group, instance, &mq, o).await;
            }
        }
    }
}

/// What a queue's pull loop does next.
enum Step {
    /// Paused: wait for resume.
    Wait(Arc<Notify>),
    /// Flow control: too much waits to be polled.
    Sleep,
    /// Find the start offset.
    Start(u64),
    Pull {
        gen: u64,
        offset: i64,
        sub: Subscription,
        wake: Arc<Notify>,
    },
}

/// One long-polling loop per owned queue; ends when the queue is released or at shutdown.
async fn pull_loop(lite: Arc<Lite>, instance: Arc<ClientInstance>, mq: MessageQueue) {
    let cfg = &lite.config;
    loop {
        if lite.is_stopping() {
            return;
        }
        let step = {
            let st = lite.st.lock();
            let Some(q) = st.queues.get(&mq) else {
                return;
            };
            if st.paused.contains(&mq) {
                Step::Wait(Arc::clone(&q.wake))
            } else if q.count >= cfg.pull_threshold_for_queue
                || q.bytes >= cfg.pull_threshold_size_for_queue
                || st.waiting >= cfg.pull_threshold_for_all
            {
                Step::Sleep
            } else {
                match q.pull_offset {
                    None => Step::Start(q.gen),
                    Some(offset) => Step::Pull {
                        gen: q.gen,
                        offset,
                        sub: q.sub.clone(),
                        wake: Arc::clone(&q.wake),
                    },
                }
            }
        };
        match step {
            Step::Wait(wake) => {
                tokio::select! {
                    _ = lite.stopped() => return,
                    _ = wake.notified() => {}
                }
            }
            Step::Sleep => {
                if !lite.sleep(DELAY_ON_FLOW_CONTROL).await {
                    return;
                }
            }
            Step::Start(gen) => {
                match offset::start_offset_for(&lite.group, lite.consume_from, &instance, &mq).await
                {
                    Ok(o) => {
                        let mut st = lite.st.lock();
                        if let Some(q) = st.queues.get_mut(&mq) {
                            if q.gen == gen && q.pull_offset.is_none() {
                                q.pull_offset = Some(o);
                                q.consumed = Some(o);
                            }
                        }
                    }
                    Err(_) => {
                        if !lite.sleep(DELAY_ON_ERROR).await {
                            return;
                        }
                    }
                }
            }
            Step::Pull {
                gen,
                offset,
                sub,
                wake,
            } => {
                let Some(addr) = instance.subscribe_addr(&mq.broker_name) else {
                    let deadline = Instant::now() + instance.config().api_timeout;
                    let _ = instance.subscribe_route(&mq.topic, deadline).await;
                    if !lite.sleep(DELAY_ON_ERROR).await {
                        return;
                    }
                    continue;
                };
                let cmd = req::pull_message(&PullRequest {
                    group: &lite.group,
                    topic: &mq.topic,
                    broker_name: &mq.broker_name,
                    queue_id: mq.queue_id,
                    queue_offset: offset,
                    max_msg_nums: cfg.pull_batch_size,
                    commit_offset: 0,
                    suspend_timeout_ms: BROKER_SUSPEND.as_millis() as i64,
                    sub_version: sub.version,
                    expression_type: sub.kind.name(),
                    subscription: Some(&sub.expression),
                });
                let deadline = Instant::now() + PULL_TIMEOUT;
                let resp = tokio::select! {
                    _ = lite.stopped() => return,
                    // Seek or pause: this pull's answer would be dropped; start over.
                    _ = wake.notified() => continue,
                    r = instance.remoting().invoke(&addr, &cmd, deadline) => r,
                };
                let delay = store_pulled(&lite, &mq, gen, &sub, read_pull_response(resp));
                if let Some(d) = delay {
                    if !lite.sleep(d).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Files a pull's answer (unless a seek, pause or release came meanwhile); the delay before
/// the next pull, if any.
fn store_pulled(
    lite: &Lite,
    mq: &MessageQueue,
    gen: u64,
    sub: &Subscription,
    outcome: PullOutcome,
) -> Option<Duration> {
    let (next, msgs) = match outcome {
        PullOutcome::Found { next, msgs } => (next, msgs),
        PullOutcome::NoNew { next } | PullOutcome::OffsetMoved { next } => (next, Vec::new()),
        PullOutcome::FlowControl => return Some(DELAY_ON_BROKER_FLOW_CONTROL),
        PullOutcome::Failed => return Some(DELAY_ON_ERROR),
    };
    // The broker filters tags by hash only: check the tag itself.
    let kept: VecDeque<Arc<MessageExt>> = msgs
        .into_iter()
        .filter(|m| sub.matches(m.message.tags()))
        .map(|mut m| {
            m.broker_name = Arc::clone(&mq.broker_name);
            Arc::new(m)
        })
        .collect();
    let mut st = lite.st.lock();
    let paused = st.paused.contains(mq);
    // A seek, pause or release came meanwhile: drop the answer.
    let q = st.queues.get_mut(mq).filter(|q| q.gen == gen && !paused)?;
    q.pull_offset = Some(next);
    if kept.is_empty() {
        if q.count == 0 {
            // Everything before `next` was polled or filtered out.
            q.consumed = Some(next);
        }
        return None;
    }
    q.count += kept.len();
    q.bytes += kept.iter().map(|m| m.message.body().len()).sum::<usize>();
    st.waiting += kept.len();
    st.ready.push_back(Chunk {
        mq: mq.clone(),
        gen,
        msgs: kept,
        next,
    });
    drop(st);
    lite.arrived.notify_all();
    None
}
