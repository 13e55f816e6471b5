//! The producer: lifecycle (as Java's DefaultMQProducer), sync, async and oneway sends.
//!
//! Every operation is one async fn. Blocking callers (C, Python, Go threads) drive the same
//! future on their own thread with `runtime::block_on`; the async API awaits it; async sends
//! with a callback spawn it on the runtime and hand the outcome to the instance's callback
//! executor.
pub mod batch;
pub mod completion_queue;
mod inline;
pub mod request;
mod selector;
mod send;
pub mod transaction;
mod window;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use inline::Attempt;
pub use selector::{hash_index, java_string_hash, QueueSelector};
use send::{Next, RetryBudget, RetryPolicy};
pub use send::{PreparedSend, PROPERTY_MAX_RECONSUME_TIMES, PROPERTY_RECONSUME_TIME};
pub use transaction::{LocalTransactionState, TransactionProducer, TransactionSendResult};

use crate::client::fault::LatencyFaults;
use crate::client::namespace;
use crate::client::{registry, ClientInstance, MessageQueue, TopicPublishInfo};
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::executor::{self, Completion, Executor, Outstanding};
use crate::protocol::ids;
use crate::protocol::message::{validate_topic, Message, MessageExt};
use crate::runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk = 0,
    FlushDiskTimeout = 1,
    FlushSlaveTimeout = 2,
    SlaveNotAvailable = 3,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    pub status: SendStatus,
    /// Client message id (UNIQ_KEY).
    pub msg_id: String,
    /// Broker store id (store host + commit log offset); reads the message back.
    pub offset_msg_id: String,
    pub queue: MessageQueue,
    pub queue_offset: i64,
    pub transaction_id: Option<String>,
    pub region_id: Cow<'static, str>,
}

/// Where a send may go.
pub(crate) enum Target {
    /// Any writable queue, round robin; a retry avoids the broker that just failed.
    Any,
    /// This queue only (ordered sends): a retry never moves elsewhere.
    Queue(MessageQueue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    ShutDown,
}

/// Set once at shutdown; sends in flight see it at once and stop.
#[derive(Default)]
struct Cancel {
    fired: AtomicBool,
    notify: Notify,
}

impl Cancel {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    async fn fired(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

struct Inner {
    /// Owner id of this producer's jobs on the callback executor.
    id: u64,
    /// The process that made the producer; it refuses to work in a forked child.
    pid: u32,
    config: ProducerConfig,
    /// The group as the broker knows it (in the namespace, if any), shared by the send headers.
    group: Arc<str>,
    state: Mutex<State>,
    instance: Mutex<Option<Arc<ClientInstance>>>,
    callbacks: Mutex<Option<Executor>>,
    next_queue: AtomicUsize,
    /// Broker latencies, when `send_latency_fault_enable` is on.
    faults: Option<LatencyFaults>,
    cancel: Cancel,
    /// Async sends whose callback has not returned yet.
    outstanding: Outstanding,
    /// Set once a heartbeat announced this producer for request-reply (`request`).
    announced: AtomicBool,
    /// Message trace, when client.trace-enabled: set at start.
    trace: std::sync::OnceLock<crate::trace::Tracer>,
}

/// A RocketMQ producer. Cheap to clone; clones share one producer.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

fn shut_down_error() -> Error {
    Error::Cancelled("the producer was shut down before the send completed".into())
}

impl Producer {
    pub fn new(config: ProducerConfig) -> Result<Producer> {
        validate_group(&config.group)?;
        Ok(Producer {
            inner: Arc::new(Inner {
                id: executor::new_owner_id(),
                pid: runtime::current_pid(),
                group: Arc::from(namespace::wrap(&config.client.namespace, &config.group)),
                faults: config
                    .send_latency_fault_enable
                    .then(LatencyFaults::default),
                config,
                state: Mutex::new(State::Created),
                instance: Mutex::new(None),
                callbacks: Mutex::new(None),
                next_queue: AtomicUsize::new(ids::random_u32() as usize),
                cancel: Cancel::default(),
                outstanding: Outstanding::default(),
                announced: AtomicBool::new(false),
                trace: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Joins the client instance of its client id (made on first use) and starts background
    /// work there (route refresh, heartbeats). No network I/O happens here; the first send
    /// fetches the route.
    pub fn start(&self) -> Result<()> {
        runtime::check_pid(self.inner.pid)?;
        let mut state = self.inner.state.lock();
        match *state {
            State::Created => {}
            State::Running => return Err(Error::InvalidState("producer already started".into())),
            State::ShutDown => {
                return Err(Error::InvalidState(
                    "producer has been shut down and cannot start again".into(),
                ))
            }
        }
        let instance = registry::register_producer(&self.inner.config.client, &self.inner.group)?;
        if let Err(e) = self.start_trace(&instance) {
            leave_instance(instance, self.inner.group.to_string());
            return Err(e);
        }
        *self.inner.callbacks.lock() = Some(instance.callback_executor().clone());
        *self.inner.instance.lock() = Some(instance);
        *state = State::Running;
        Ok(())
    }

    /// Stops the producer: sends in flight fail at once with `Error::Cancelled` (their callbacks
    /// still run, exactly once), the brokers are told the group is gone, and the client instance
    /// closes if this was its last member. Nothing is dialled afterwards. Idempotent. Does not
    /// wait for callbacks (see `close`).
    pub fn shutdown(&self) {
        if runtime::check_pid(self.inner.pid).is_err() {
            return;
        }
        let instance = {
            let mut state = self.inner.state.lock();
            let was = *state;
            *state = State::ShutDown;
            self.inner.cancel.fire();
            if let Some(t) = self.inner.trace.get() {
                t.close();
            }
            // Senders waiting for a slot of the in-flight window give up now.
            self.inner.outstanding.wake_waiters();
            if was != State::Running {
                return;
            }
            self.inner.instance.lock().take()
        };
        if let Some(instance) = instance {
            // Sends started inline wait on the connections, which other members may keep open.
            instance
                .remoting()
                .cancel_callbacks(self.inner.id, shut_down_error);
            leave_instance(instance, self.inner.group.to_string());
        }
    }

    /// `shutdown`, then waits until the callback of every async send has returned. Refused with
    /// `Error::InvalidState` when called from one of this producer's own callbacks, which would
    /// wait for itself; from another producer's callback it runs the callbacks it waits for.
    pub fn close(&self) -> Result<()> {
        if executor::current_owner() == Some(self.inner.id) {
            return Err(Error::InvalidState(
                "a producer cannot be closed or destroyed from one of its own callbacks; do it \
                 from another thread"
                    .into(),
            ));
        }
        self.shutdown();
        let callbacks = self.inner.callbacks.lock().clone();
        match callbacks {
            Some(executor) => self.inner.outstanding.wait(&executor, self.inner.id),
            None => debug_assert_eq!(self.inner.outstanding.get(), 0),
        }
        Ok(())
    }

    /// Whether this producer was made in the parent of this (forked) process.
    pub fn is_forked(&self) -> bool {
        runtime::check_pid(self.inner.pid).is_err()
    }

    /// Whether the calling thread is running one of this producer's callbacks.
    pub fn in_own_callback(&self) -> bool {
        executor::current_owner() == Some(self.inner.id)
    }

    pub fn client_id(&self) -> Option<String> {
        self.inner
            .instance
            .lock()
            .as_ref()
            .map(|i| i.client_id().to_string())
    }

    /// The client instance this producer belongs to while it runs.
    pub fn instance(&self) -> Option<Arc<ClientInstance>> {
        self.inner.instance.lock().clone()
    }

    fn running(&self) -> Result<Arc<ClientInstance>> {
        runtime::check_pid(self.inner.pid)?;
        match *self.inner.state.lock() {
            State::Running => {}
            State::Created => return Err(Error::InvalidState("producer is not started".into())),
            State::ShutDown => {
                return Err(Error::InvalidState("producer has been shut down".into()))
            }
        }
        self.inner
            .instance
            .lock()
            .clone()
            .ok_or_else(|| Error::InvalidState("producer has been shut down".into()))
    }

    /// Checks and encodes `msg` once for any number of attempts. Callers that guard the message
    /// with a lock release it before sending: nothing here holds on to `msg`.
    pub fn prepare(&self, msg: &Message) -> Result<PreparedSend> {
        let c = &self.inner.config;
        let prepared =
            PreparedSend::with_compression(msg, c.max_message_size, Some(&c.compression))?;
        match self.namespace() {
            Some(ns) => prepared.in_namespace(ns),
            None => Ok(prepared),
        }
    }

    fn namespace(&self) -> Option<&str> {
        Some(self.inner.config.client.namespace.as_str()).filter(|ns| !ns.is_empty())
    }

    /// A result as the caller sees it: the topic without the namespace.
    fn outside_namespace(&self, mut r: SendResult) -> SendResult {
        if let Some(ns) = self.namespace() {
            let topic = namespace::unwrap(ns, &r.queue.topic);
            if topic.len() != r.queue.topic.len() {
                r.queue.topic = Arc::from(&*topic);
            }
        }
        r
    }

    fn message_outside_namespace(&self, mut m: MessageExt) -> MessageExt {
        if let Some(ns) = self.namespace() {
            let topic = namespace::unwrap(ns, m.message.topic()).into_owned();
            if topic.len() != m.message.topic().len() {
                // a part of a topic the broker accepted: valid
                let _ = m.message.set_topic(&topic);
            }
        }
        m
    }

    fn pick_queue<'a>(
        &self,
        info: &'a TopicPublishInfo,
        avoid: Option<&str>,
    ) -> Result<&'a MessageQueue> {
        let counter = self.inner.next_queue.fetch_add(1, Ordering::Relaxed);
        let picked = match &self.inner.faults {
            Some(faults) => faults.select(info, counter, avoid),
            None => info.select_queue(counter, avoid),
        };
        picked.ok_or_else(|| Error::RouteNotFound {
            topic: info
                .queues
                .first()
                .map(|q| q.topic.to_string())
                .unwrap_or_default(),
            reason: "no writable queue".into(),
        })
    }

    fn budget(&self, policy: RetryPolicy, target: &Target, deadline: Instant) -> RetryBudget {
        let c = &self.inner.config;
        let retries = match (policy, target) {
            (RetryPolicy::Sync, Target::Any) => c.retry_times_when_send_failed,
            // Java's sendSelectImpl / send(msg, mq): one attempt, no retry elsewhere.
            (RetryPolicy::Sync, Target::Queue(_)) => 0,
            // Java's async retries go to the same broker when the queue was chosen for them.
            (RetryPolicy::Async, _) => c.retry_times_when_send_async_failed,
        };
        let retry_not_stored = c.retry_next_server && matches!(target, Target::Any);
        RetryBudget::new(1 + retries, deadline, policy, retry_not_stored)
    }

    /// A failure caused by this producer's own shutdown (its connections closed under a send
    /// waiting on them) is reported as that: `Cancelled`, as for sends cancelled before.
    fn unless_shut_down<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(_) if self.inner.cancel.is_fired() => Err(shut_down_error()),
            r => r,
        }
    }

    /// The send: route, queue selection, attempts and retries within one time budget. The only
    /// implementation, for every way of calling it (the inline start of an async send, in
    /// `inline`, makes the first attempt of the same loop without a task).
    async fn send_prepared(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedSend,
        policy: RetryPolicy,
        target: &Target,
    ) -> Result<SendResult> {
        self.send_prepared_from(instance, prepared, policy, target, None)
            .await
    }

    /// `send_prepared` whose first attempt goes to `first` when the round robin already chose it.
    async fn send_prepared_from(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedSend,
        policy: RetryPolicy,
        target: &Target,
        first: Option<MessageQueue>,
    ) -> Result<SendResult> {
        let deadline = Instant::now() + self.inner.config.send_timeout;
        let info = self.unless_shut_down(instance.publish_info(&prepared.topic, deadline).await)?;
        let budget = self.budget(policy, target, deadline);
        self.send_attempts(instance, prepared, target, &info, budget, first)
            .await
    }

    /// The attempts of a send, as many as `budget` allows.
    async fn send_attempts(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedSend,
        target: &Target,
        info: &TopicPublishInfo,
        mut budget: RetryBudget,
        mut first: Option<MessageQueue>,
    ) -> Result<SendResult> {
        loop {
            if self.inner.cancel.is_fired() {
                return Err(shut_down_error());
            }
            let attempt_deadline = Instant::now() + budget.begin_attempt()?;
            let chosen = first.take();
            let mq = match (target, &chosen) {
                (Target::Any, Some(mq)) => mq,
                (Target::Any, None) => self.pick_queue(info, budget.last_broker.as_deref())?,
                (Target::Queue(mq), _) => mq,
            };
            let began = Instant::now();
            let metric =
                crate::metrics::send_attempt(&prepared.topic, &mq.broker_name, budget.is_retry());
            let (result, store_host) = match instance.master_of(mq) {
                Ok(addr) => {
                    let cmd = prepared.request(&self.inner.group, mq);
                    let r = instance
                        .remoting()
                        .invoke(&addr, &cmd, attempt_deadline)
                        .await;
                    (self.attempt_result(prepared, mq, &addr, r), Some(addr))
                }
                Err(e) => (Err(e), None),
            };
            let attempt = Attempt {
                mq,
                began,
                metric,
                store_host,
            };
            if let Next::Done(r) = self.after_attempt(prepared, attempt, result, &mut budget) {
                return r;
            }
        }
    }

    /// The outcome of one attempt from the broker's answer (or the transport's error).
    fn attempt_result(
        &self,
        prepared: &PreparedSend,
        mq: &MessageQueue,
        addr: &str,
        answer: Result<crate::remoting::RemotingCommand>,
    ) -> Result<SendResult> {
        match answer {
            Ok(resp) => prepared.parse_response(&resp, mq, addr),
            Err(e) => self.unless_shut_down(Err(e)),
        }
    }

    /// After an attempt: metrics, trace, latency faults, and whether to retry.
    fn after_attempt(
        &self,
        prepared: &PreparedSend,
        attempt: Attempt<'_>,
        result: Result<SendResult>,
        budget: &mut RetryBudget,
    ) -> Next {
        let Attempt {
            mq,
            began,
            metric,
            store_host,
        } = attempt;
        let stored = result.as_ref().ok().map(|_| prepared.stored_counts());
        metric.finish(began.elapsed(), stored);
        if let (Some(t), Ok(r), Some(addr)) = (self.inner.trace.get(), &result, store_host) {
            if let Some(e) = crate::trace::pub_event(prepared, r, addr, began) {
                t.record(e);
            }
        }
        self.record_latency(mq, began, result.is_err());
        match budget.after(&mq.broker_name, result) {
            Next::Done(r) => Next::Done(r.map(|r| self.outside_namespace(r))),
            Next::Retry => Next::Retry,
        }
    }

    async fn send_prepared_oneway(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedSend,
    ) -> Result<()> {
        let deadline = Instant::now() + self.inner.config.send_timeout;
        let info = instance.publish_info(&prepared.topic, deadline).await?;
        let mq = self.pick_queue(&info, None)?;
        let began = Instant::now();
        let metric = crate::metrics::send_attempt(&prepared.topic, &mq.broker_name, false);
        let result = match instance.master_of(mq) {
            Ok(addr) => {
                instance
                    .remoting()
                    .invoke_oneway(&addr, prepared.request(&self.inner.group, mq))
                    .await
            }
            Err(e) => Err(e),
        };
        // A oneway send counts as sent once written: no answer says whether it was stored.
        let written = result.as_ref().ok().map(|_| prepared.stored_counts());
        metric.finish(began.elapsed(), written);
        self.record_latency(mq, began, result.is_err());
        result
    }

    /// Starts message trace when client.trace-enabled is set.
    fn start_trace(&self, instance: &ClientInstance) -> Result<()> {
        let Some(topic) = &self.inner.config.client.trace_topic else {
            return Ok(());
        };
        let tracer = crate::trace::Tracer::start(
            &self.inner.config.client,
            topic,
            &self.inner.config.group,
            crate::trace::Role::Produce,
            instance.shared().handle(),
        )?;
        let _ = self.inner.trace.set(tracer);
        Ok(())
    }

    /// Feeds latency fault tolerance, when it is on.
    fn record_latency(&self, mq: &MessageQueue, began: Instant, failed: bool) {
        if let Some(faults) = &self.inner.faults {
            faults.update(&mq.broker_name, began.elapsed(), failed);
        }
    }

    /// Sends and waits for the broker's answer, from a thread outside any async runtime (C,
    /// Python and Go callers). The calling thread writes the request itself and sleeps until
    /// the reply arrives.
    pub fn send_blocking(&self, msg: &Message) -> Result<SendResult> {
        let prepared = self.prepare(msg)?;
        self.send_prepared_blocking(&prepared)
    }

    pub fn send_prepared_blocking(&self, prepared: &PreparedSend) -> Result<SendResult> {
        self.send_prepared_to_blocking(prepared, Target::Any)
    }

    /// A blocking send of `prepared` to `mq` only (an ordered send): one attempt.
    pub fn send_prepared_to_queue_blocking(
        &self,
        prepared: &PreparedSend,
        mq: MessageQueue,
    ) -> Result<SendResult> {
        self.check_queue(&prepared.topic, &mq)?;
        self.send_prepared_to_blocking(prepared, Target::Queue(mq))
    }

    fn send_prepared_to_blocking(
        &self,
        prepared: &PreparedSend,
        target: Target,
    ) -> Result<SendResult> {
        let instance = self.running()?;
        runtime::block_on(
            instance.shared(),
            "send",
            self.send_prepared(&instance, prepared, RetryPolicy::Sync, &target),
        )?
    }

    /// Sends and awaits the broker's answer.
    pub async fn send(&self, msg: &Message) -> Result<SendResult> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        self.send_prepared(&instance, &prepared, RetryPolicy::Sync, &Target::Any)
            .await
    }

    /// Sends in the background; `callback` runs exactly once with the result, on the client
    /// instance's callback executor (`client.callback-executor-threads`), never on an I/O
    /// thread. Shutdown makes pending sends fail with `Error::Cancelled`. Invalid messages and a
    /// producer that is not running fail here, before anything is sent, and the callback is
    /// then not called. With `producer.max-in-flight-async-sends` sends in flight this waits for
    /// a free slot or fails with `Error::InFlightFull` (see `producer.block-when-in-flight-full`;
    /// on a library thread, a callback for instance, it never waits).
    pub fn send_with_callback<F>(&self, msg: &Message, callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let prepared = self.prepare(msg)?;
        self.send_prepared_with_callback(prepared, callback)
    }

    pub fn send_prepared_with_callback<F>(&self, prepared: PreparedSend, callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        self.send_prepared_with_callback_to(prepared, Target::Any, callback)
    }

    /// An async send of `prepared` to `mq` only (an ordered send): transport failures are
    /// retried on that same queue.
    pub fn send_prepared_to_queue_with_callback<F>(
        &self,
        prepared: PreparedSend,
        mq: MessageQueue,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        self.check_queue(&prepared.topic, &mq)?;
        self.send_prepared_with_callback_to(prepared, Target::Queue(mq), callback)
    }

    fn send_prepared_with_callback_to<F>(
        &self,
        prepared: PreparedSend,
        target: Target,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let instance = self.running()?;
        let completion = self.admit_with_callback(&instance, callback)?;
        self.send_completing(&instance, prepared, target, completion);
        Ok(())
    }

    /// An async send whose outcome goes to `deliver` on the library thread that finished it (a
    /// runtime thread, or the one that shut the producer down), without the hop to the callback
    /// executor: for handing results to a `CompletionQueue`. `deliver` runs exactly once, must
    /// be quick, and must neither block nor call into the library; the send's slot of the
    /// in-flight window is freed when it returns. Errors as `send_prepared_with_callback`.
    pub fn send_prepared_with_delivery<F>(&self, prepared: PreparedSend, deliver: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let instance = self.running()?;
        let completion = self.admit_delivering(move |outcome, done| {
            deliver(outcome);
            drop(done);
        })?;
        self.send_completing(&instance, prepared, Target::Any, completion);
        Ok(())
    }

    /// Sends `prepared` and completes `completion` with the outcome: most sends start right
    /// here, without a task (see `inline`); the others run in one.
    fn send_completing(
        &self,
        instance: &Arc<ClientInstance>,
        prepared: PreparedSend,
        target: Target,
        completion: Completion<SendResult>,
    ) {
        let Some(inline::GivenBack {
            prepared,
            target,
            completion,
            picked,
        }) = self.start_inline(instance, prepared, target, completion)
        else {
            return;
        };
        let this = self.clone();
        let inst = Arc::clone(instance);
        let work = async move {
            this.send_prepared_from(&inst, &prepared, RetryPolicy::Async, &target, picked)
                .await
        };
        self.spawn_completing(instance, work, completion);
    }

    /// Runs `work` on the runtime and hands its outcome to `callback` on the client instance's
    /// callback executor, exactly once: shutdown makes it `Error::Cancelled`. The work holds a
    /// slot of the in-flight window until the callback has returned. Every async operation with
    /// a callback (sends, requests) goes through here.
    fn spawn_with_callback<T, W, F>(
        &self,
        instance: &ClientInstance,
        work: W,
        callback: F,
    ) -> Result<()>
    where
        T: Send + 'static,
        W: std::future::Future<Output = Result<T>> + Send + 'static,
        F: FnOnce(Result<T>) + Send + 'static,
    {
        let completion = self.admit_with_callback(instance, callback)?;
        self.spawn_completing(instance, work, completion);
        Ok(())
    }

    /// Takes a slot of the in-flight window for an async operation and wraps its callback: the
    /// completion runs `callback` on the instance's callback executor, exactly once (with
    /// Cancelled if it is dropped), and frees the slot when the callback has returned.
    fn admit_with_callback<T, F>(
        &self,
        instance: &ClientInstance,
        callback: F,
    ) -> Result<Completion<T>>
    where
        T: Send + 'static,
        F: FnOnce(Result<T>) + Send + 'static,
    {
        let executor = instance.callback_executor().clone();
        let owner = self.inner.id;
        self.admit_delivering(move |outcome, done| {
            executor.execute(owner, move || {
                let _done = done;
                callback(outcome);
            });
        })
    }

    /// Takes a slot of the in-flight window and returns the completion that hands the outcome,
    /// with the slot (freed when dropped), to `deliver` on the thread that finished the work,
    /// exactly once (Cancelled if the completion is dropped).
    fn admit_delivering<T, D>(&self, deliver: D) -> Result<Completion<T>>
    where
        T: Send + 'static,
        D: FnOnce(Result<T>, CallbackDone) + Send + 'static,
    {
        window::admit(&self.inner.outstanding, &self.inner.config, || {
            self.inner.cancel.is_fired()
        })?;
        let inner = Arc::clone(&self.inner);
        Ok(Completion::new(move |outcome| {
            deliver(outcome, CallbackDone(inner))
        }))
    }

    /// Runs `work` in a task and completes `completion` with its outcome (Cancelled at
    /// shutdown).
    fn spawn_completing<T, W>(&self, instance: &ClientInstance, work: W, completion: Completion<T>)
    where
        T: Send + 'static,
        W: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let this = self.clone();
        let handle = instance.shared().handle().clone();
        handle.spawn(async move {
            // Shutdown fires the cancel before it closes the connections, so a task woken by
            // both must see the cancel first: unbiased, it picked the closed connection half of
            // the time and the send failed with ConnectionClosed instead of Cancelled.
            let outcome = tokio::select! {
                biased;
                _ = this.inner.cancel.fired() => Err(shut_down_error()),
                r = work => r,
            };
            completion.complete(outcome);
        });
    }

    /// Fire and forget: one attempt, no answer awaited. Blocks only while the route is first
    /// fetched or the connection first opened.
    pub fn send_oneway_blocking(&self, msg: &Message) -> Result<()> {
        let prepared = self.prepare(msg)?;
        self.send_prepared_oneway_blocking(&prepared)
    }

    pub fn send_prepared_oneway_blocking(&self, prepared: &PreparedSend) -> Result<()> {
        let instance = self.running()?;
        runtime::block_on(
            instance.shared(),
            "oneway send",
            self.send_prepared_oneway(&instance, prepared),
        )?
    }

    pub async fn send_oneway(&self, msg: &Message) -> Result<()> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        self.send_prepared_oneway(&instance, &prepared).await
    }

    /// Reads a stored message back by its offset message id (`SendResult::offset_msg_id`), as
    /// Java's `DefaultMQProducer.viewMessage`.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let instance = self.running()?;
        let deadline = Instant::now() + instance.config().api_timeout;
        let m = instance.view_message(offset_msg_id, deadline).await?;
        Ok(self.message_outside_namespace(m))
    }

    pub fn view_message_blocking(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let instance = self.running()?;
        runtime::block_on(
            instance.shared(),
            "view message",
            self.view_message(offset_msg_id),
        )?
    }

    /// Messages of `topic` stored between `begin_ms` and `end_ms` whose keys contain `key`, at
    /// most `max_num` per broker, as Java's `DefaultMQProducer.queryMessage`. The broker indexes
    /// keys shortly after storing, so a message sent a moment ago may not be found yet.
    pub async fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let instance = self.running()?;
        validate_topic(topic)?;
        if key.is_empty() || max_num <= 0 {
            return Err(Error::InvalidArgument(
                "query needs a non-empty key and max_num > 0".into(),
            ));
        }
        let deadline = Instant::now() + instance.config().api_timeout * 2;
        let topic = namespace::wrap(self.namespace().unwrap_or(""), topic);
        let found = instance
            .query_message(&topic, key, max_num, begin_ms, end_ms, deadline)
            .await?;
        Ok(found
            .into_iter()
            .map(|m| self.message_outside_namespace(m))
            .collect())
    }

    pub fn query_message_blocking(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let instance = self.running()?;
        runtime::block_on(
            instance.shared(),
            "query message",
            self.query_message(topic, key, max_num, begin_ms, end_ms),
        )?
    }
}

/// Counts an async send's callback as returned, even when it panicked.
struct CallbackDone(Arc<Inner>);

impl Drop for CallbackDone {
    fn drop(&mut self) {
        self.0.outstanding.done();
    }
}

/// Leaves the client instance: UNREGISTER_CLIENT to the brokers (on connections already open;
/// nothing is dialled for it), then the instance closes if no member is left. Blocks for at most
/// the API timeout, or runs in the background when called inside the runtime.
fn leave_instance(instance: Arc<ClientInstance>, group: String) {
    let last = registry::unregister_producer(&instance, &group);
    let shared = Arc::clone(instance.shared());
    let work = async move {
        instance.unregister_group(&group).await;
        if last {
            instance.close();
        }
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(work);
    } else {
        let _ = runtime::block_on(&shared, "shutdown", work);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if runtime::check_pid(self.pid).is_err() {
            // Made in the parent: its sockets and threads are the parent's; touch nothing.
            if let Some(i) = self.instance.get_mut().take() {
                std::mem::forget(i);
            }
            return;
        }
        self.cancel.fire();
        if let Some(instance) = self.instance.get_mut().take() {
            leave_instance(instance, self.group.to_string());
        }
    }
}

/// Java's `Validators.checkGroup` plus the DEFAULT_PRODUCER rule.
fn validate_group(group: &str) -> Result<()> {
    crate::protocol::message::validate_group("producer", group, "DEFAULT_PRODUCER")
}
