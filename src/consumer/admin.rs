//! What the push consumer answers to the admin tools' requests (see `client::admin`): its
//! running info, its offsets, offset resets, and consuming one message on request.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{offset, ConsumeResult, Inner, State};
use crate::client::admin::{
    ConsumeStatus, DirectOutcome, DirectResult, ProcessQueueInfo, RunningInfo,
};
use crate::client::MessageQueue;
use crate::protocol::message::MessageExt;

/// How long CONSUME_MESSAGE_DIRECTLY waits for the listener: the broker gives up after 10 s.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time given to pulls in flight of a reset queue before the new offsets are written (Java waits
/// 10 s with the whole consumer suspended; here only the reset queues stop).
const RESET_GRACE: Duration = Duration::from_secs(1);
/// The protocol version the client announces (`remoting::command::CLIENT_VERSION`), by name.
const CLIENT_VERSION_NAME: &str = "V5_3_1";

fn is_running(inner: &Inner) -> bool {
    *inner.state.lock() == State::Running
}

pub(super) fn running_info(inner: &Arc<Inner>) -> Option<RunningInfo> {
    if !is_running(inner) {
        return None;
    }
    let c = &inner.config;
    let mut info = RunningInfo::default();
    let threads = c.consume_thread_number.to_string();
    let from = inner.consume_from.lock().wire_name();
    let props: [(&str, String); 22] = [
        ("PROP_NAMESERVER_ADDR", c.client.name_servers.join(";")),
        ("PROP_CONSUME_TYPE", "CONSUME_PASSIVELY".into()),
        (
            "PROP_CONSUMEORDERLY",
            inner.orderly.is_enabled().to_string(),
        ),
        ("PROP_THREADPOOL_CORE_SIZE", threads.clone()),
        (
            "PROP_CONSUMER_START_TIMESTAMP",
            inner.started_ms.load(Ordering::Relaxed).to_string(),
        ),
        ("PROP_CLIENT_VERSION", CLIENT_VERSION_NAME.into()),
        ("consumerGroup", inner.group.to_string()),
        (
            "messageModel",
            if c.broadcasting {
                "BROADCASTING"
            } else {
                "CLUSTERING"
            }
            .into(),
        ),
        ("consumeFromWhere", from.into()),
        (
            "consumeTimestamp",
            c.consume_timestamp.clone().unwrap_or_default(),
        ),
        ("allocateMessageQueueStrategy", c.allocate_strategy.clone()),
        ("consumeThreadMin", threads.clone()),
        ("consumeThreadMax", threads),
        (
            "consumeMessageBatchMaxSize",
            c.consume_message_batch_max_size.to_string(),
        ),
        ("pullBatchSize", c.pull_batch_size.to_string()),
        (
            "pullThresholdForQueue",
            c.pull_threshold_for_queue.to_string(),
        ),
        (
            "pullThresholdSizeForQueue",
            (c.pull_threshold_size_for_queue / (1024 * 1024)).to_string(),
        ),
        ("maxReconsumeTimes", c.max_reconsume_times.to_string()),
        (
            "consumeTimeout",
            (c.consume_timeout.as_millis() / 60_000).to_string(),
        ),
        (
            "persistConsumerOffsetInterval",
            c.persist_offset_interval.as_millis().to_string(),
        ),
        ("instanceName", c.client.instance_name.clone()),
        ("unitMode", "false".into()),
    ];
    info.properties = props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let topics: Vec<String> = {
        let subs = inner.subscriptions.lock();
        info.subscriptions = subs.iter().map(|s| s.to_json()).collect();
        subs.iter().map(|s| s.topic.clone()).collect()
    };
    for t in topics {
        // Rates and times are not measured yet.
        info.status.insert(t, ConsumeStatus::default());
    }
    let queues: Vec<(MessageQueue, Arc<super::ProcessQueue>)> = inner
        .queues
        .lock()
        .iter()
        .map(|(q, o)| (q.clone(), Arc::clone(&o.pq)))
        .collect();
    for (mq, pq) in queues {
        let snap = pq.snapshot();
        let pqi = ProcessQueueInfo {
            commit_offset: inner.offsets.get(&mq).unwrap_or_else(|| pq.commit_offset()),
            cached_msg_min_offset: snap.min_offset,
            cached_msg_max_offset: snap.max_offset,
            cached_msg_count: snap.count as i32,
            cached_msg_size_in_mib: (snap.bytes / (1024 * 1024)) as i32,
            dropped: pq.is_dropped(),
            last_pull_timestamp: snap.last_pull_ms,
            last_consume_timestamp: snap.last_consume_ms,
            ..Default::default()
        };
        info.queues.push((mq, pqi));
    }
    Some(info)
}

/// The offsets of the topic's queues this consumer owns.
pub(super) fn offset_table(inner: &Inner, topic: &str) -> Vec<(MessageQueue, i64)> {
    inner
        .queues
        .lock()
        .iter()
        .filter(|(q, _)| &*q.topic == topic)
        .map(|(q, o)| {
            (
                q.clone(),
                inner.offsets.get(q).unwrap_or_else(|| o.pq.commit_offset()),
            )
        })
        .collect()
}

/// Stops the owned queues among `offsets` and takes them again from the given offsets: they
/// are written to the broker (or the local file) and a rebalance takes the queues back.
pub(super) fn reset_offsets(inner: &Arc<Inner>, topic: &str, offsets: Vec<(MessageQueue, i64)>) {
    let Some(instance) = inner.instance.lock().clone() else {
        return;
    };
    let mut reset = Vec::new();
    for (mq, o) in offsets {
        let owned = inner.queues.lock().remove(&mq);
        let Some(owned) = owned else {
            continue; // another consumer of the group owns it and resets it
        };
        owned.pq.drop_queue();
        owned.pull.abort();
        inner.offsets.reset(&mq, o);
        reset.push((mq, o));
    }
    if reset.is_empty() {
        return;
    }
    crate::log_info!(
        "rmq::consumer",
        "group {} resets {} queue(s) of topic {topic}: {reset:?}",
        inner.group,
        reset.len()
    );
    let inner = Arc::clone(inner);
    let handle = instance.shared().handle().clone();
    handle.spawn(async move {
        if !inner.pause(RESET_GRACE).await {
            return;
        }
        for (mq, o) in &reset {
            inner.offsets.set(mq, *o);
            if let Err(e) = offset::commit(&inner, &instance, mq, *o).await {
                crate::log_warn!(
                    "rmq::consumer",
                    "reset offset {o} of {mq:?} not stored ({e}); the queue starts there anyway"
                );
            }
        }
        inner.rebalance_now.notify_one();
    });
}

/// Runs the listener on `msg` on the consumer's own threads and waits for its answer.
pub(super) fn consume_directly(inner: &Arc<Inner>, mut msg: MessageExt) -> Option<DirectResult> {
    if !is_running(inner) {
        return None;
    }
    let listener = inner.listener.lock().clone()?;
    if msg.message.topic().starts_with("%RETRY%") {
        if let Some(origin) = msg.message.property("RETRY_TOPIC").map(str::to_string) {
            let _ = msg.message.set_topic(&origin);
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let batch = [Arc::new(msg)];
    let job = move || {
        let start = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| listener(&batch)));
        let _ = tx.send((r, start.elapsed()));
    };
    let failed = |remark: String| DirectResult {
        outcome: DirectOutcome::ThrowException,
        remark: Some(remark),
        spent_ms: 0,
    };
    if let Err(e) = inner.executor.spawn(inner.id, job) {
        return Some(failed(format!("the consumer cannot run its listener: {e}")));
    }
    Some(match rx.recv_timeout(DIRECT_TIMEOUT) {
        Ok((r, spent)) => {
            let spent_ms = spent.as_millis() as i64;
            match r {
                Ok(ConsumeResult::Success) => DirectResult {
                    outcome: DirectOutcome::Success,
                    remark: None,
                    spent_ms,
                },
                Ok(ConsumeResult::ReconsumeLater { .. }) => DirectResult {
                    outcome: DirectOutcome::Later,
                    remark: None,
                    spent_ms,
                },
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the listener panicked".into());
                    DirectResult {
                        outcome: DirectOutcome::ThrowException,
                        remark: Some(what),
                        spent_ms,
                    }
                }
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => failed(format!(
            "the listener did not return within {} s",
            DIRECT_TIMEOUT.as_secs()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            failed("the consumer shut down before running the listener".into())
        }
    })
}
