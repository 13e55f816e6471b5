//! The producer: lifecycle (as Java's DefaultMQProducer), sync, async and oneway sends.
mod send;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use send::{Next, PreparedSend, RetryBudget, RetryPolicy};

use crate::client::{ClientInstance, MessageQueue, TopicPublishInfo};
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
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
    pub region_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    ShutDown,
}

struct Inner {
    config: ProducerConfig,
    state: Mutex<State>,
    instance: Mutex<Option<Arc<ClientInstance>>>,
    next_queue: AtomicUsize,
}

/// A RocketMQ producer. Cheap to clone; clones share one producer.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl Producer {
    pub fn new(config: ProducerConfig) -> Result<Producer> {
        validate_group(&config.group)?;
        Ok(Producer {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::Created),
                instance: Mutex::new(None),
                next_queue: AtomicUsize::new(ids::random_u32() as usize),
            }),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Starts background work (route refresh, heartbeats). No network I/O happens here; the
    /// first send fetches the route.
    pub fn start(&self) -> Result<()> {
        let mut state = self.inner.state.lock().unwrap();
        match *state {
            State::Created => {}
            State::Running => return Err(Error::InvalidState("producer already started".into())),
            State::ShutDown => {
                return Err(Error::InvalidState(
                    "producer has been shut down and cannot start again".into(),
                ))
            }
        }
        let instance = ClientInstance::start(self.inner.config.client.clone());
        instance.register_producer(&self.inner.config.group);
        *self.inner.instance.lock().unwrap() = Some(instance);
        *state = State::Running;
        Ok(())
    }

    /// Unregisters from the brokers and closes connections. Idempotent. Blocks for at most the
    /// API timeout when called outside an async context.
    pub fn shutdown(&self) {
        let instance = {
            let mut state = self.inner.state.lock().unwrap();
            let was = *state;
            *state = State::ShutDown;
            if was != State::Running {
                return;
            }
            self.inner.instance.lock().unwrap().take()
        };
        if let Some(instance) = instance {
            instance.shutdown_blocking(&self.inner.config.group);
        }
    }

    pub fn client_id(&self) -> Option<String> {
        self.inner
            .instance
            .lock()
            .unwrap()
            .as_ref()
            .map(|i| i.client_id().to_string())
    }

    fn running(&self) -> Result<Arc<ClientInstance>> {
        match *self.inner.state.lock().unwrap() {
            State::Running => {}
            State::Created => return Err(Error::InvalidState("producer is not started".into())),
            State::ShutDown => {
                return Err(Error::InvalidState("producer has been shut down".into()))
            }
        }
        self.inner
            .instance
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| Error::InvalidState("producer has been shut down".into()))
    }

    fn prepare(&self, msg: &Message) -> Result<PreparedSend> {
        PreparedSend::new(msg, self.inner.config.max_message_size)
    }

    fn pick_queue<'a>(
        &self,
        info: &'a TopicPublishInfo,
        avoid: Option<&str>,
    ) -> Result<&'a MessageQueue> {
        let counter = self.inner.next_queue.fetch_add(1, Ordering::Relaxed);
        info.select_queue(counter, avoid)
            .ok_or_else(|| Error::RouteNotFound {
                topic: info
                    .queues
                    .first()
                    .map(|q| q.topic.clone())
                    .unwrap_or_default(),
                reason: "no writable queue".into(),
            })
    }

    fn master(instance: &ClientInstance, mq: &MessageQueue) -> Result<String> {
        instance
            .master_addr(&mq.broker_name)
            .ok_or_else(|| Error::RouteNotFound {
                topic: mq.topic.clone(),
                reason: format!("broker {} has no master address", mq.broker_name),
            })
    }

    fn budget(&self, policy: RetryPolicy, start: Instant) -> RetryBudget {
        let c = &self.inner.config;
        let retries = match policy {
            RetryPolicy::Sync => c.retry_times_when_send_failed,
            RetryPolicy::Async => c.retry_times_when_send_async_failed,
        };
        RetryBudget::new(
            1 + retries,
            start + c.send_timeout,
            policy,
            c.retry_next_server,
        )
    }

    /// Sends and waits for the broker's answer, from a thread outside any async runtime (C,
    /// Python and Go callers). The calling thread writes the request itself and sleeps until
    /// the reply arrives.
    pub fn send_blocking(&self, msg: &Message) -> Result<SendResult> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        let start = Instant::now();
        let info =
            instance.publish_info_blocking(&prepared.topic, self.inner.config.send_timeout)?;
        let mut budget = self.budget(RetryPolicy::Sync, start);
        loop {
            let remaining = budget.begin_attempt()?;
            let mq = self.pick_queue(&info, budget.last_broker.as_deref())?;
            let result = Self::master(&instance, mq).and_then(|addr| {
                let cmd = prepared.request(&self.inner.config.group, mq);
                let resp = instance
                    .remoting()
                    .invoke_blocking(&addr, &cmd, remaining)?;
                prepared.parse_response(&resp, mq, &addr)
            });
            if let Next::Done(r) = budget.after(&mq.broker_name, result) {
                return r;
            }
        }
    }

    /// Sends and awaits the broker's answer.
    pub async fn send(&self, msg: &Message) -> Result<SendResult> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        self.send_prepared(&instance, &prepared, RetryPolicy::Sync)
            .await
    }

    async fn send_prepared(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedSend,
        policy: RetryPolicy,
    ) -> Result<SendResult> {
        let start = Instant::now();
        let timeout = self.inner.config.send_timeout;
        let info =
            match tokio::time::timeout(timeout, instance.publish_info(&prepared.topic, timeout))
                .await
            {
                Ok(r) => r?,
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no route for {} within {timeout:?}",
                        prepared.topic
                    )))
                }
            };
        let mut budget = self.budget(policy, start);
        loop {
            let remaining = budget.begin_attempt()?;
            let mq = self.pick_queue(&info, budget.last_broker.as_deref())?;
            let result = match Self::master(instance, mq) {
                Ok(addr) => {
                    let cmd = prepared.request(&self.inner.config.group, mq);
                    match instance.remoting().invoke(&addr, &cmd, remaining).await {
                        Ok(resp) => prepared.parse_response(&resp, mq, &addr),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            if let Next::Done(r) = budget.after(&mq.broker_name, result) {
                return r;
            }
        }
    }

    /// Sends in the background; `callback` runs exactly once, on a runtime thread, with the
    /// result. Invalid messages and a producer that is not running fail here, before anything
    /// is sent, and the callback is then not called.
    pub fn send_with_callback<F>(&self, msg: &Message, callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        let this = self.clone();
        runtime::handle().spawn(async move {
            let r = this
                .send_prepared(&instance, &prepared, RetryPolicy::Async)
                .await;
            callback(r);
        });
        Ok(())
    }

    /// Fire and forget: one attempt, no answer awaited. Blocks only while the route is first
    /// fetched or the connection first opened.
    pub fn send_oneway_blocking(&self, msg: &Message) -> Result<()> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        let info =
            instance.publish_info_blocking(&prepared.topic, self.inner.config.send_timeout)?;
        let mq = self.pick_queue(&info, None)?;
        let addr = Self::master(&instance, mq)?;
        instance
            .remoting()
            .invoke_oneway_blocking(&addr, prepared.request(&self.inner.config.group, mq))
    }

    pub async fn send_oneway(&self, msg: &Message) -> Result<()> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        let timeout = self.inner.config.send_timeout;
        let info = instance.publish_info(&prepared.topic, timeout).await?;
        let mq = self.pick_queue(&info, None)?;
        let addr = Self::master(&instance, mq)?;
        instance
            .remoting()
            .invoke_oneway(&addr, prepared.request(&self.inner.config.group, mq))
            .await
    }

    /// Reads a stored message back by its offset message id (`SendResult::offset_msg_id`), as
    /// Java's `DefaultMQProducer.viewMessage`.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let instance = self.running()?;
        let timeout = instance.config().api_timeout;
        instance.view_message(offset_msg_id, timeout).await
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
        instance
            .query_message(topic, key, max_num, begin_ms, end_ms)
            .await
    }

    pub fn query_message_blocking(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let timeout = self.running()?.config().api_timeout * 2;
        runtime::block_on_timeout(
            timeout,
            "query message",
            self.query_message(topic, key, max_num, begin_ms, end_ms),
        )
    }

    pub fn view_message_blocking(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let instance = self.running()?;
        let timeout = instance.config().api_timeout;
        runtime::block_on_timeout(
            timeout + Duration::from_millis(100),
            "view message",
            instance.view_message(offset_msg_id, timeout),
        )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.get_mut().unwrap().take() {
            instance.shutdown_blocking(&self.config.group);
        }
    }
}

/// Java's `Validators.checkGroup` plus the DEFAULT_PRODUCER rule.
fn validate_group(group: &str) -> Result<()> {
    validate_topic(group).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(format!("producer group: {}", m.replace("topic", "group")))
        }
        e => e,
    })?;
    if group == "DEFAULT_PRODUCER" {
        return Err(Error::InvalidArgument(
            "producer group DEFAULT_PRODUCER is reserved; choose another".into(),
        ));
    }
    Ok(())
}
