//! Broker-side queue locks of orderly consumption (LOCK_BATCH_MQ, UNLOCK_BATCH_MQ): a queue is
//! locked at its broker's master before it is taken, locked again every 20 s while owned, and
//! unlocked once it is released (after its offset is committed) and at shutdown. The broker keeps
//! a lock 60 s; the consumer trusts its own for 30 s after the last successful lock, so a
//! consumer cut off from its broker stops consuming before another can take the queue.
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Inner;
use crate::client::{ClientInstance, MessageQueue};
use crate::error::{Error, Result};
use crate::protocol::code::{request, response};
use crate::remoting::RemotingCommand;

/// Java's timeout of lock and unlock requests.
const LOCK_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often owned queues are locked again (Java's rebalance lock interval).
pub(crate) const RELOCK_INTERVAL: Duration = Duration::from_secs(20);
/// How long a successful lock is trusted here (Java's client-side lock max live time; the
/// broker keeps it 60 s).
const LOCK_MAX_LIVE: Duration = Duration::from_secs(30);
/// When a rebalance tries again after a broker refused a queue's lock (its previous owner has
/// not released it yet).
const RETRY_REFUSED_LOCK: Duration = Duration::from_secs(1);

/// The lock as this consumer sees it, per owned queue.
#[derive(Default)]
pub(crate) struct QueueLock {
    /// The last successful lock; None when never locked or refused since.
    locked_at: Mutex<Option<Instant>>,
}

impl QueueLock {
    pub fn mark_locked(&self) {
        *self.locked_at.lock() = Some(Instant::now());
    }

    pub fn mark_unlocked(&self) {
        *self.locked_at.lock() = None;
    }

    /// Locked, and recently enough to be sure the broker still holds it for us.
    pub fn is_valid(&self) -> bool {
        self.locked_at
            .lock()
            .is_some_and(|t| t.elapsed() < LOCK_MAX_LIVE)
    }
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "camelCase")]
struct WireQueue {
    topic: String,
    broker_name: String,
    queue_id: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LockBody<'a> {
    consumer_group: &'a str,
    client_id: &'a str,
    only_this_broker: bool,
    mq_set: Vec<WireQueue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockedBody {
    #[serde(default, rename = "lockOKMQSet")]
    lock_ok_mq_set: Vec<WireQueue>,
}

/// LOCK_BATCH_MQ or UNLOCK_BATCH_MQ for `mqs` (all of one broker).
fn lock_request(code: i32, group: &str, client_id: &str, mqs: &[&MessageQueue]) -> RemotingCommand {
    let body = LockBody {
        consumer_group: group,
        client_id,
        only_this_broker: false,
        mq_set: mqs
            .iter()
            .map(|q| WireQueue {
                topic: q.topic.to_string(),
                broker_name: q.broker_name.to_string(),
                queue_id: q.queue_id,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&body).expect("plain strings and numbers serialize");
    RemotingCommand::request(code, Vec::new()).with_body(Bytes::from(json))
}

/// The queues of a LOCK_BATCH_MQ answer that the broker locked for us.
fn parse_locked(body: &[u8]) -> Result<HashSet<WireQueue>> {
    let b: LockedBody = serde_json::from_slice(&crate::protocol::json::quote_bare_keys(body))
        .map_err(|e| Error::Protocol(format!("bad LOCK_BATCH_MQ answer: {e}")))?;
    Ok(b.lock_ok_mq_set.into_iter().collect())
}

fn by_broker(mqs: &[MessageQueue]) -> BTreeMap<&str, Vec<&MessageQueue>> {
    let mut m: BTreeMap<&str, Vec<&MessageQueue>> = BTreeMap::new();
    for q in mqs {
        m.entry(&q.broker_name).or_default().push(q);
    }
    m
}

/// Locks `mqs` at their brokers; returns those locked for this consumer. A broker that does not
/// answer locks none of its queues.
pub(crate) async fn lock(
    inner: &Inner,
    instance: &ClientInstance,
    mqs: &[MessageQueue],
) -> HashSet<MessageQueue> {
    let mut locked = HashSet::new();
    for (broker, qs) in by_broker(mqs) {
        let Some(addr) = instance.master_addr(broker) else {
            continue;
        };
        let cmd = lock_request(
            request::LOCK_BATCH_MQ,
            &inner.group,
            instance.client_id(),
            &qs,
        );
        let ok = match instance
            .remoting()
            .invoke(&addr, &cmd, Instant::now() + LOCK_TIMEOUT)
            .await
        {
            Ok(resp) if resp.code == response::SUCCESS => match parse_locked(&resp.body) {
                Ok(set) => set,
                Err(e) => {
                    crate::log_warn!("rmq::consumer", "{addr}: {e}");
                    continue;
                }
            },
            Ok(resp) => {
                crate::log_warn!(
                    "rmq::consumer",
                    "{addr} refused LOCK_BATCH_MQ: {} {}",
                    resp.code,
                    resp.remark_str()
                );
                continue;
            }
            Err(e) => {
                crate::log_warn!("rmq::consumer", "LOCK_BATCH_MQ to {addr}: {e}");
                continue;
            }
        };
        for q in qs {
            let w = WireQueue {
                topic: q.topic.to_string(),
                broker_name: q.broker_name.to_string(),
                queue_id: q.queue_id,
            };
            if ok.contains(&w) {
                locked.insert(q.clone());
            }
        }
    }
    locked
}

/// Locks one queue; true when the broker holds it for this consumer.
pub(crate) async fn lock_one(inner: &Inner, instance: &ClientInstance, mq: &MessageQueue) -> bool {
    lock(inner, instance, std::slice::from_ref(mq))
        .await
        .contains(mq)
}

/// Unlocks `mqs` at their brokers and waits for the answers (failures only logged: the broker's
/// lock then expires by itself within 60 s).
pub(crate) async fn unlock(inner: &Inner, instance: &ClientInstance, mqs: &[MessageQueue]) {
    for (broker, qs) in by_broker(mqs) {
        let Some(addr) = instance.master_addr(broker) else {
            continue;
        };
        let cmd = lock_request(
            request::UNLOCK_BATCH_MQ,
            &inner.group,
            instance.client_id(),
            &qs,
        );
        match instance
            .remoting()
            .invoke(&addr, &cmd, Instant::now() + LOCK_TIMEOUT)
            .await
        {
            Ok(resp) if resp.code == response::SUCCESS => {}
            Ok(resp) => crate::log_warn!(
                "rmq::consumer",
                "{addr} refused UNLOCK_BATCH_MQ: {} {}",
                resp.code,
                resp.remark_str()
            ),
            Err(e) => crate::log_warn!("rmq::consumer", "UNLOCK_BATCH_MQ to {addr}: {e}"),
        }
    }
}

/// Locks every owned queue again every 20 s; a queue the broker no longer grants stops being
/// consumed (and pulled) until a lock succeeds again. Ends at shutdown.
pub(crate) async fn relock_loop(inner: Arc<Inner>, instance: Arc<ClientInstance>) {
    loop {
        if !inner.pause(RELOCK_INTERVAL).await {
            return;
        }
        let owned: Vec<(MessageQueue, Arc<super::ProcessQueue>)> = inner
            .queues
            .lock()
            .iter()
            .map(|(q, o)| (q.clone(), Arc::clone(&o.pq)))
            .collect();
        let mqs: Vec<MessageQueue> = owned.iter().map(|(q, _)| q.clone()).collect();
        let locked = lock(&inner, &instance, &mqs).await;
        let mut released = Vec::new();
        for (mq, pq) in owned {
            if !locked.contains(&mq) {
                pq.orderly.lock.mark_unlocked();
            } else if pq.is_dropped() {
                // Released while we locked: its unlock may have come first; undo ours.
                released.push(mq);
            } else {
                pq.orderly.lock.mark_locked();
            }
        }
        if !released.is_empty() {
            unlock(&inner, &instance, &released).await;
        }
    }
}

/// Asks for another rebalance soon, once per refusal burst, so a queue whose previous owner has
/// just released it is taken without waiting for the next regular rebalance.
pub(crate) fn retry_refused_soon(inner: &Arc<Inner>) {
    let pending = &inner.orderly.retry_pending;
    if pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let (inner, pending) = (Arc::clone(inner), Arc::clone(pending));
    tokio::spawn(async move {
        let go_on = inner.pause(RETRY_REFUSED_LOCK).await;
        pending.store(false, Ordering::Release);
        if go_on {
            inner.rebalance_now.notify_one();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_bodies_match_the_java_field_names() {
        let q = MessageQueue {
            topic: Arc::from("T"),
            broker_name: Arc::from("b"),
            queue_id: 3,
        };
        let cmd = lock_request(request::LOCK_BATCH_MQ, "G", "1.2.3.4@x", &[&q]);
        let v: serde_json::Value = serde_json::from_slice(&cmd.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"consumerGroup": "G", "clientId": "1.2.3.4@x",
                "onlyThisBroker": false,
                "mqSet": [{"topic": "T", "brokerName": "b", "queueId": 3}]})
        );
        let ok = parse_locked(br#"{"lockOKMQSet":[{"brokerName":"b","queueId":3,"topic":"T"}]}"#)
            .unwrap();
        assert!(ok.contains(&WireQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: 3
        }));
        assert!(parse_locked(b"{}").unwrap().is_empty());
    }

    #[test]
    fn a_lock_is_trusted_only_after_success() {
        let l = QueueLock::default();
        assert!(!l.is_valid());
        l.mark_locked();
        assert!(l.is_valid());
        l.mark_unlocked();
        assert!(!l.is_valid());
    }
}
