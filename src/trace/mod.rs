//! Message trace (`client.trace-enabled`): Pub records of sends the brokers answered (a batch:
//! one record, its ids joined by commas, as Java's; oneway sends have no answer and, as in Java,
//! no record), EndTransaction records of a transaction producer's ends (after the local
//! transaction, or answering a broker's check), and SubBefore / SubAfter records around each
//! listener call, in the Java client's format
//! (`encode`), written as messages to `client.trace-topic` (RMQ_SYS_TRACE_TOPIC by default) so
//! that `mqadmin queryMsgTraceById` shows them.
//!
//! The send and consume paths only hand an event to a bounded queue (`try_send`: never waits;
//! when the queue is full the event is dropped and counted, `dropped()`). A background task of
//! the client instance's runtime encodes events into batches and sends a batch when it reaches
//! about 118 KB (or 16 KB of keys) or has waited 500 ms, as Java's AsyncTraceDispatcher, through
//! an internal producer of the same client instance (group
//! `_INNER_TRACE_PRODUCER-<group>-<PRODUCE|CONSUME>-<n>`). Shutdown of the traced client sends
//! what is queued, then stops that producer.
pub mod encode;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::client::namespace;
use crate::config::{ClientConfig, ProducerConfig};
use crate::error::Result;
use crate::producer::{PreparedSend, Producer, SendResult, SendStatus};
use crate::protocol::ids;
use crate::protocol::message::{Message, MessageExt};
use crate::protocol::transaction::SYSFLAG_TRANSACTION_PREPARED;

pub const DEFAULT_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Events waiting for the background task, per traced client.
const QUEUE_CAPACITY: usize = 2048;
/// Java's maxMsgSize (128000) less its 10000 margin.
const MAX_BATCH_BODY: usize = 118_000;
/// Keys travel as one property; properties are limited to 32767 bytes.
const MAX_BATCH_KEYS: usize = 16_000;
const MAX_BATCH_WAIT: Duration = Duration::from_millis(500);
/// Trace messages being sent at once, per traced client.
const MAX_SENDS_IN_FLIGHT: usize = 4;

static DROPPED: AtomicU64 = AtomicU64::new(0);
static TRACER_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Trace events dropped because a tracer's queue was full, since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// What the send and consume paths hand over; encoded in the background.
pub(crate) enum Event {
    Pub {
        timestamp: i64,
        region_id: Cow<'static, str>,
        /// As sent (in the namespace, if any).
        topic: Arc<str>,
        /// The encoded properties sent (tags and keys are read from them).
        properties: Arc<str>,
        msg_id: String,
        offset_msg_id: String,
        store_host: Arc<str>,
        body_length: usize,
        cost_ms: i64,
        /// The send's sysFlag (a half message?); the type is worked out in the background.
        sys_flag: i32,
        success: bool,
    },
    SubBefore {
        timestamp: i64,
        request_id: Arc<str>,
        msgs: Arc<[Arc<MessageExt>]>,
    },
    EndTransaction(Box<EndTransaction>),
    SubAfter {
        timestamp: i64,
        request_id: Arc<str>,
        msgs: Arc<[Arc<MessageExt>]>,
        cost_ms: i64,
        success: bool,
    },
}

/// A transaction's end (Java's EndTransactionContext).
pub(crate) struct EndTransaction {
    pub timestamp: i64,
    /// The message's MSG_REGION (a checked message has it), else DefaultRegion.
    pub region_id: String,
    /// As sent (in the namespace, if any).
    pub topic: String,
    pub msg_id: String,
    pub tags: Option<String>,
    pub keys: Option<String>,
    /// The master the end goes to.
    pub store_host: String,
    /// The message's UNIQ_KEY, as Java's Message.getTransactionId() then holds.
    pub transaction_id: Option<String>,
    pub state: &'static str,
    pub from_transaction_check: bool,
}

impl EndTransaction {
    /// The record of ending the transaction of `msg` (as sent, or as the broker's check carried
    /// it) with `state`, sent to `store_host`.
    pub(crate) fn event(
        msg: &Message,
        msg_id: &str,
        store_host: &str,
        state: &'static str,
        from_transaction_check: bool,
    ) -> Event {
        let prop = |p: &str| msg.property(p).map(str::to_string);
        Event::EndTransaction(Box::new(EndTransaction {
            timestamp: ids::now_ms(),
            region_id: prop("MSG_REGION")
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "DefaultRegion".to_string()),
            topic: msg.topic().to_string(),
            msg_id: msg_id.to_string(),
            tags: msg.tags().map(str::to_string),
            keys: msg.keys().map(str::to_string),
            store_host: store_host.to_string(),
            transaction_id: prop(crate::protocol::message::PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                .filter(|t| !t.is_empty()),
            state,
            from_transaction_check,
        }))
    }
}

/// The tracing of one producer or consumer.
pub(crate) struct Tracer {
    tx: mpsc::Sender<Event>,
    stop: watch::Sender<bool>,
    /// Set by `close`: later events are ignored (not counted as dropped).
    closed: AtomicBool,
}

#[derive(Clone, Copy)]
pub(crate) enum Role {
    Produce,
    Consume,
}

impl Tracer {
    /// Starts the internal producer and the background task on `handle`. No network I/O here.
    pub(crate) fn start(
        client: &ClientConfig,
        trace_topic: &str,
        group: &str,
        role: Role,
        handle: &tokio::runtime::Handle,
    ) -> Result<Tracer> {
        let n = TRACER_COUNTER.fetch_add(1, Relaxed) + 1;
        let role_name = match role {
            Role::Produce => "PRODUCE",
            Role::Consume => "CONSUME",
        };
        let producer_group = format!("_INNER_TRACE_PRODUCER-{group}-{role_name}-{n}");
        let mut config = ProducerConfig::new("127.0.0.1:9876", &producer_group)?;
        config.client = client.clone();
        config.client.trace_topic = None; // its own sends are not traced
        config.client.namespace.clear(); // the trace topic is a system topic
        config.send_timeout = Duration::from_secs(5);
        config.max_message_size = 128_000 + 64 * 1024;
        // Trace bodies are not compressed: that CPU would be taken from the traced program.
        config.compression.threshold = usize::MAX;
        let producer = Producer::new(config)?;
        producer.start()?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let task = Dispatcher {
            producer,
            topic: trace_topic.to_string(),
            group: Arc::from(namespace::unwrap(&client.namespace, group).as_ref()),
            namespace: client.namespace.clone(),
            body: String::new(),
            keys: HashSet::new(),
            keys_len: 0,
            first: None,
            sends: JoinSet::new(),
        };
        handle.spawn(task.run(rx, stop_rx));
        Ok(Tracer {
            tx,
            stop,
            closed: AtomicBool::new(false),
        })
    }

    /// Hands an event to the background task; never waits. A full queue drops it (counted).
    pub(crate) fn record(&self, e: Event) {
        if self.closed.load(Relaxed) {
            return;
        }
        if self.tx.try_send(e).is_err() {
            DROPPED.fetch_add(1, Relaxed);
        }
    }

    /// Sends what is queued, then stops the internal producer. Does not wait.
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        let _ = self.stop.send(true);
    }

    /// A SubBefore record for a listener call about to run on `batch` (or a batch a poll took);
    /// `None` when no message of it is traced (Java skips messages whose TRACE_ON property is
    /// "false"). Hand the span to `consume_after` once the batch's outcome is known.
    pub(crate) fn consume_before(&self, batch: &[Arc<MessageExt>]) -> Option<ConsumeSpan> {
        let msgs: Arc<[Arc<MessageExt>]> = batch
            .iter()
            .filter(|m| m.message.property("TRACE_ON") != Some("false"))
            .cloned()
            .collect();
        if msgs.is_empty() {
            return None;
        }
        let request_id: Arc<str> = Arc::from(ids::new_uniq_id());
        self.record(Event::SubBefore {
            timestamp: ids::now_ms(),
            request_id: Arc::clone(&request_id),
            msgs: Arc::clone(&msgs),
        });
        Some(ConsumeSpan {
            request_id,
            msgs,
            began: Instant::now(),
            batch_len: batch.len(),
        })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A listener call (or a polled batch) between its SubBefore and SubAfter records.
pub(crate) struct ConsumeSpan {
    request_id: Arc<str>,
    msgs: Arc<[Arc<MessageExt>]>,
    began: Instant,
    batch_len: usize,
}

impl Tracer {
    /// The SubAfter record of `span`: `success` when every message of it was consumed.
    pub(crate) fn consume_after(&self, span: ConsumeSpan, success: bool) {
        let cost_ms = span.began.elapsed().as_millis() as i64 / span.batch_len.max(1) as i64;
        self.record(Event::SubAfter {
            timestamp: ids::now_ms(),
            request_id: span.request_id,
            msgs: span.msgs,
            cost_ms,
            success,
        });
    }
}

struct Dispatcher {
    producer: Producer,
    topic: String,
    /// The traced client's group, without namespace.
    group: Arc<str>,
    namespace: String,
    body: String,
    keys: HashSet<String>,
    keys_len: usize,
    /// When the oldest event of the batch arrived.
    first: Option<tokio::time::Instant>,
    sends: JoinSet<()>,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
        loop {
            let due = self.first.map(|t| t + MAX_BATCH_WAIT);
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => self.add(e).await,
                    None => break,
                },
                _ = async { tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)).await }, if due.is_some() => {
                    self.flush().await;
                }
                // The only value ever sent is true (and a dropped sender means stop too).
                _ = stop.changed() => break,
            }
        }
        while let Ok(e) = rx.try_recv() {
            self.add(e).await;
        }
        self.flush().await;
        while self.sends.join_next().await.is_some() {}
        self.producer.shutdown();
    }

    async fn add(&mut self, e: Event) {
        if self.first.is_none() {
            self.first = Some(tokio::time::Instant::now());
        }
        let mut keys: Vec<String> = Vec::new();
        let group = &*self.group;
        match &e {
            Event::Pub {
                timestamp,
                region_id,
                topic,
                properties,
                msg_id,
                offset_msg_id,
                store_host,
                body_length,
                cost_ms,
                sys_flag,
                success,
            } => {
                let delayed = [
                    "DELAY",
                    "TIMER_DELIVER_MS",
                    "TIMER_DELAY_SEC",
                    "TIMER_DELAY_MS",
                ]
                .iter()
                .any(|p| encode::encoded_property(properties, p).is_some());
                let msg_type = if sys_flag & SYSFLAG_TRANSACTION_PREPARED != 0 {
                    encode::MSG_TYPE_TRANS_HALF
                } else if delayed {
                    encode::MSG_TYPE_DELAY
                } else {
                    encode::MSG_TYPE_NORMAL
                };
                let tags = encode::encoded_property(properties, "TAGS").unwrap_or(encode::ABSENT);
                let msg_keys = encode::encoded_property(properties, "KEYS");
                let topic = namespace::unwrap(&self.namespace, topic);
                encode::Pub {
                    timestamp: *timestamp,
                    region_id,
                    group,
                    topic: &topic,
                    msg_id,
                    tags,
                    keys: msg_keys.unwrap_or(encode::ABSENT),
                    store_host,
                    body_length: *body_length,
                    cost_ms: *cost_ms,
                    msg_type,
                    offset_msg_id,
                    success: *success,
                }
                .encode(&mut self.body);
                keys.extend(encode::trace_keys(msg_id, msg_keys.unwrap_or("")).map(str::to_string));
            }
            Event::SubBefore {
                timestamp,
                request_id,
                msgs,
            } => {
                let beans = beans(msgs);
                let region_id = msgs
                    .iter()
                    .rev()
                    .find_map(|m| m.message.property("MSG_REGION"))
                    .unwrap_or("");
                encode::SubBefore {
                    timestamp: *timestamp,
                    region_id,
                    group,
                    request_id,
                    beans: &beans,
                }
                .encode(&mut self.body);
                keys.extend(consumed_keys(msgs));
            }
            Event::EndTransaction(e) => {
                let topic = namespace::unwrap(&self.namespace, &e.topic);
                encode::EndTransaction {
                    timestamp: e.timestamp,
                    region_id: &e.region_id,
                    group,
                    topic: &topic,
                    msg_id: &e.msg_id,
                    tags: e.tags.as_deref().unwrap_or(encode::ABSENT),
                    keys: e.keys.as_deref().unwrap_or(encode::ABSENT),
                    store_host: &e.store_host,
                    transaction_id: e.transaction_id.as_deref().unwrap_or(encode::ABSENT),
                    state: e.state,
                    from_transaction_check: e.from_transaction_check,
                }
                .encode(&mut self.body);
                let own = e.keys.as_deref().unwrap_or("");
                keys.extend(encode::trace_keys(&e.msg_id, own).map(str::to_string));
            }
            Event::SubAfter {
                timestamp,
                request_id,
                msgs,
                cost_ms,
                success,
            } => {
                let beans = beans(msgs);
                encode::SubAfter {
                    request_id,
                    beans: &beans,
                    cost_ms: *cost_ms,
                    success: *success,
                    context_code: if *success {
                        encode::CONTEXT_SUCCESS
                    } else {
                        encode::CONTEXT_FAILED
                    },
                    timestamp: *timestamp,
                    group,
                }
                .encode(&mut self.body);
                keys.extend(consumed_keys(msgs));
            }
        }
        for k in keys {
            let len = k.len() + 1;
            if self.keys.insert(k) {
                self.keys_len += len;
            }
        }
        if self.body.len() >= MAX_BATCH_BODY || self.keys_len >= MAX_BATCH_KEYS {
            self.flush().await;
        }
    }

    /// Sends the batch in the background (at most MAX_SENDS_IN_FLIGHT at once).
    async fn flush(&mut self) {
        self.first = None;
        if self.body.is_empty() {
            return;
        }
        let body = std::mem::take(&mut self.body);
        let keys: Vec<String> = self.keys.drain().collect();
        self.keys_len = 0;
        let mut msg = Message::new(self.topic.clone(), body.into_bytes());
        if let Err(e) = msg.set_key_list(&keys) {
            crate::log_warn!("rmq::trace", "trace data not sent: {e}");
            return;
        }
        while self.sends.len() >= MAX_SENDS_IN_FLIGHT {
            let _ = self.sends.join_next().await;
        }
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        self.sends.spawn(async move {
            if let Err(e) = producer.send(&msg).await {
                crate::log_warn!("rmq::trace", "trace data not sent to {topic}: {e}");
            }
        });
    }
}

/// The Pub event of a send the broker answered. A batch is one event, as Java's MessageBatch:
/// the result's ids (joined by commas), the batch's topic and encoded body length, and no tags
/// or keys of its own.
pub(crate) fn pub_event(
    prepared: &PreparedSend,
    r: &SendResult,
    store_host: Arc<str>,
    began: Instant,
) -> Option<Event> {
    let cost = began.elapsed();
    Some(Event::Pub {
        timestamp: ids::now_ms() - cost.as_millis() as i64,
        region_id: r.region_id.clone(),
        topic: Arc::clone(&prepared.topic),
        properties: Arc::clone(prepared.encoded_properties()),
        msg_id: r.msg_id.clone(),
        offset_msg_id: r.offset_msg_id.clone(),
        store_host,
        body_length: prepared.body_len(),
        cost_ms: cost.as_millis() as i64,
        sys_flag: prepared.sys_flag(),
        success: r.status == SendStatus::SendOk,
    })
}

fn beans(msgs: &[Arc<MessageExt>]) -> Vec<encode::Bean<'_>> {
    msgs.iter()
        .map(|m| encode::Bean {
            msg_id: m.msg_id(),
            retry_times: m.reconsume_times,
            keys: m.message.keys().unwrap_or(encode::ABSENT),
        })
        .collect()
}

/// The trace keys of consumed messages: each one's id and own keys.
fn consumed_keys(msgs: &[Arc<MessageExt>]) -> impl Iterator<Item = String> + '_ {
    msgs.iter().flat_map(|m| {
        encode::trace_keys(m.msg_id(), m.message.keys().unwrap_or("")).map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::SubBefore {
            timestamp: 0,
            request_id: Arc::from("R"),
            msgs: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting_and_a_closed_one_ignores() {
        let (tx, _rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, _stop_rx) = watch::channel(false);
        let tracer = Tracer {
            tx,
            stop,
            closed: AtomicBool::new(false),
        };
        let before = dropped();
        // Nobody reads: the queue fills, then every further record is dropped at once.
        for _ in 0..QUEUE_CAPACITY + 5 {
            tracer.record(event());
        }
        assert_eq!(dropped() - before, 5);
        tracer.close();
        tracer.record(event());
        assert_eq!(
            dropped() - before,
            5,
            "records after close are ignored, not dropped"
        );
    }
}
