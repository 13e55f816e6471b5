//! Consumer offsets kept by the broker (clustering): read when a queue is taken, committed every
//! `consumer.persist-consumer-offset-interval` (oneway), and synchronously when a queue is
//! released and at shutdown. The value is always the next offset to consume: the lowest message
//! still in flight, or the next to pull. Broadcasting consumers keep them in a local file
//! instead (`local_offset`), written at the same moments.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{ConsumeFrom, Inner};
use crate::client::{ClientInstance, MessageQueue};
use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::consumer as req;

/// Java's timeout of offset queries and updates.
const OFFSET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct OffsetStore {
    table: Mutex<HashMap<MessageQueue, i64>>,
    /// Offsets an admin reset set, for queues to start from when next taken.
    resets: Mutex<HashMap<MessageQueue, i64>>,
}

impl OffsetStore {
    /// Moves the queue's offset forward (never back: results arrive out of order).
    pub fn advance(&self, mq: &MessageQueue, offset: i64) {
        let mut t = self.table.lock();
        let slot = t.entry(mq.clone()).or_insert(offset);
        if offset > *slot {
            *slot = offset;
        }
    }

    /// Sets the queue's offset, also backwards (an offset the broker corrected).
    pub fn set(&self, mq: &MessageQueue, offset: i64) {
        self.table.lock().insert(mq.clone(), offset);
    }

    pub fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.table.lock().get(mq).copied()
    }

    pub fn remove(&self, mq: &MessageQueue) {
        self.table.lock().remove(mq);
    }

    /// Makes the queue start at `offset` the next time it is taken.
    pub fn reset(&self, mq: &MessageQueue, offset: i64) {
        self.resets.lock().insert(mq.clone(), offset);
        self.set(mq, offset);
    }

    fn take_reset(&self, mq: &MessageQueue) -> Option<i64> {
        self.resets.lock().remove(mq)
    }
}

/// Commits `offset` and waits for the broker's answer (queue release, shutdown).
pub(crate) async fn commit(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    offset: i64,
) -> Result<()> {
    if let Some(local) = inner.local_offsets.get() {
        return local.persist(&[(mq.clone(), offset)]);
    }
    commit_for(&inner.group, instance, mq, offset).await
}

/// Commits `group`'s `offset` of `mq` and waits for the broker's answer.
pub(crate) async fn commit_for(
    group: &str,
    instance: &ClientInstance,
    mq: &MessageQueue,
    offset: i64,
) -> Result<()> {
    let addr = instance.master_of(mq)?;
    let cmd = req::update_consumer_offset(group, &mq.topic, &mq.broker_name, mq.queue_id, offset);
    let resp = instance
        .remoting()
        .invoke(&addr, &cmd, Instant::now() + OFFSET_TIMEOUT)
        .await?;
    match resp.code {
        response::SUCCESS => Ok(()),
        code => Err(Error::broker(code, resp.remark_str(), &*addr)),
    }
}

/// The periodic commit: oneway, every offset of the queues still owned.
pub(crate) async fn commit_all_oneway(inner: &Inner, instance: &ClientInstance) {
    let owned: Vec<MessageQueue> = inner.queues.lock().keys().cloned().collect();
    if let Some(local) = inner.local_offsets.get() {
        let offsets: Vec<(MessageQueue, i64)> = owned
            .into_iter()
            .filter_map(|mq| inner.offsets.get(&mq).map(|o| (mq, o)))
            .collect();
        if let Err(e) = local.persist(&offsets) {
            crate::log_warn!("rmq::consumer", "broadcasting offsets not saved: {e}");
        }
        return;
    }
    for mq in owned {
        let Some(offset) = inner.offsets.get(&mq) else {
            continue;
        };
        let Ok(addr) = instance.master_of(&mq) else {
            continue;
        };
        let cmd = req::update_consumer_offset(
            &inner.group,
            &mq.topic,
            &mq.broker_name,
            mq.queue_id,
            offset,
        );
        let _ = instance.remoting().invoke_oneway(&addr, cmd).await;
    }
}

async fn ask_offset(
    instance: &ClientInstance,
    addr: &str,
    cmd: crate::remoting::RemotingCommand,
) -> Result<Option<i64>> {
    let resp = instance
        .remoting()
        .invoke(addr, &cmd, Instant::now() + OFFSET_TIMEOUT)
        .await?;
    match resp.code {
        response::SUCCESS => resp.ext_parse::<i64>("offset").map(Some).ok_or_else(|| {
            Error::Protocol(format!("{addr} answered an offset query without 'offset'"))
        }),
        response::QUERY_NOT_FOUND => Ok(None),
        code => Err(Error::broker(code, resp.remark_str(), addr)),
    }
}

/// `group`'s offset of `mq` stored at the broker; None when it has none.
pub(crate) async fn committed(
    group: &str,
    instance: &ClientInstance,
    mq: &MessageQueue,
) -> Result<Option<i64>> {
    let addr = instance.master_of(mq)?;
    let cmd = req::query_consumer_offset(group, &mq.topic, &mq.broker_name, mq.queue_id);
    Ok(ask_offset(instance, &addr, cmd).await?.filter(|o| *o >= 0))
}

/// Which end of a queue (GET_MIN_OFFSET, GET_MAX_OFFSET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Min,
    Max,
}

/// The queue's lowest stored offset, or the offset after its last message.
pub(crate) async fn queue_end(
    instance: &ClientInstance,
    mq: &MessageQueue,
    end: End,
) -> Result<i64> {
    let addr = instance.master_of(mq)?;
    let cmd = match end {
        End::Min => req::get_min_offset(&mq.topic, &mq.broker_name, mq.queue_id),
        End::Max => req::get_max_offset(&mq.topic, &mq.broker_name, mq.queue_id),
    };
    ask_offset(instance, &addr, cmd).await?.ok_or_else(|| {
        let which = if end == End::Min { "min" } else { "max" };
        Error::Protocol(format!("{addr} has no {which} offset for {mq:?}"))
    })
}

/// The offset of the first message of `mq` stored at or after `timestamp_ms` (the end of the
/// queue when there is none).
pub(crate) async fn offset_for_timestamp(
    instance: &ClientInstance,
    mq: &MessageQueue,
    timestamp_ms: i64,
) -> Result<i64> {
    let addr = instance.master_of(mq)?;
    let cmd =
        req::search_offset_by_timestamp(&mq.topic, &mq.broker_name, mq.queue_id, timestamp_ms);
    ask_offset(instance, &addr, cmd)
        .await?
        .ok_or_else(|| Error::Protocol(format!("{addr} found no offset for the timestamp")))
}

/// Where pulling of a newly taken queue starts: the group's stored offset, else
/// consume-from-where (retry topics start at 0 for `last`, at their end for `timestamp`, as Java).
pub(crate) async fn start_offset(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
) -> Result<i64> {
    if let Some(o) = inner.offsets.take_reset(mq) {
        return Ok(o);
    }
    let from = *inner.consume_from.lock();
    let stored = match inner.local_offsets.get() {
        Some(local) => local.get(mq).filter(|o| *o >= 0),
        None => committed(&inner.group, instance, mq).await?,
    };
    start_offset_from(stored, from, instance, mq).await
}

/// `start_offset` of any consumer of `group`, whose offsets the brokers keep.
pub(crate) async fn start_offset_for(
    group: &str,
    from: ConsumeFrom,
    instance: &ClientInstance,
    mq: &MessageQueue,
) -> Result<i64> {
    let stored = committed(group, instance, mq).await?;
    start_offset_from(stored, from, instance, mq).await
}

/// The stored offset when there is one, else where consume-from-where points.
async fn start_offset_from(
    stored: Option<i64>,
    from: ConsumeFrom,
    instance: &ClientInstance,
    mq: &MessageQueue,
) -> Result<i64> {
    if let Some(o) = stored {
        return Ok(o);
    }
    let retry = mq.topic.starts_with("%RETRY%");
    match from {
        ConsumeFrom::First => Ok(0),
        ConsumeFrom::Last if retry => Ok(0),
        ConsumeFrom::Last => queue_end(instance, mq, End::Max).await,
        ConsumeFrom::Timestamp(_) if retry => queue_end(instance, mq, End::Max).await,
        ConsumeFrom::Timestamp(ts) => offset_for_timestamp(instance, mq, ts).await,
    }
}
