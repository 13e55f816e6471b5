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
    let addr = instance.master_of(mq)?;
    let cmd = req::update_consumer_offset(
        &inner.group,
        &mq.topic,
        &mq.broker_name,
        mq.queue_id,
        offset,
    );
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
    let addr = instance.master_of(mq)?;
    let stored = match inner.local_offsets.get() {
        Some(local) => local.get(mq),
        None => {
            ask_offset(
                instance,
                &addr,
                req::query_consumer_offset(&inner.group, &mq.topic, &mq.broker_name, mq.queue_id),
            )
            .await?
        }
    };
    if let Some(o) = stored.filter(|o| *o >= 0) {
        return Ok(o);
    }
    let retry = mq.topic.starts_with("%RETRY%");
    let max_offset = || async {
        ask_offset(
            instance,
            &addr,
            req::get_max_offset(&mq.topic, &mq.broker_name, mq.queue_id),
        )
        .await?
        .ok_or_else(|| Error::Protocol(format!("{addr} has no max offset for {mq:?}")))
    };
    let from = *inner.consume_from.lock();
    match from {
        ConsumeFrom::First => Ok(0),
        ConsumeFrom::Last if retry => Ok(0),
        ConsumeFrom::Last => max_offset().await,
        ConsumeFrom::Timestamp(_) if retry => max_offset().await,
        ConsumeFrom::Timestamp(ts) => ask_offset(
            instance,
            &addr,
            req::search_offset_by_timestamp(&mq.topic, &mq.broker_name, mq.queue_id, ts),
        )
        .await?
        .ok_or_else(|| Error::Protocol(format!("{addr} found no offset for the timestamp"))),
    }
}
