//! The consumer's background task: rebalance every `consumer.rebalance-interval` (20 s) and at
//! once when a broker says the group changed; commit offsets every
//! `consumer.persist-consumer-offset-interval` (5 s); send back messages whose listener call outlived the
//! consume timeout.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::{consume, lock, offset, orderly, pull, Inner, OwnedQueue};
use crate::client::{ClientInstance, MessageQueue};
use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::consumer as req;
use crate::protocol::route::{TopicRouteData, PERM_READ};

pub(crate) async fn background(inner: Arc<Inner>, instance: Arc<ClientInstance>) {
    let rebalance_interval = inner.config.rebalance_interval;
    let persist_interval = inner.config.persist_offset_interval;
    rebalance(&inner, &instance).await;
    let mut next_rebalance = Instant::now() + rebalance_interval;
    let mut next_persist = Instant::now() + persist_interval;
    loop {
        let wake = next_rebalance.min(next_persist);
        let asked = tokio::select! {
            _ = inner.stopped() => return,
            _ = inner.rebalance_now.notified() => true,
            _ = tokio::time::sleep_until(wake.into()) => false,
        };
        let now = Instant::now();
        if now >= next_persist {
            offset::commit_all_oneway(&inner, &instance).await;
            consume::send_back_expired(&inner, &instance);
            next_persist = now + persist_interval;
        }
        if asked || now >= next_rebalance {
            rebalance(&inner, &instance).await;
            next_rebalance = Instant::now() + rebalance_interval;
        }
    }
}

/// The readable queues of a route, sorted (topic, broker, id) as every consumer sorts them.
pub(crate) fn subscribe_queues(topic: &str, route: &TopicRouteData) -> Vec<MessageQueue> {
    let topic: Arc<str> = Arc::from(topic);
    let mut qs: Vec<MessageQueue> = route
        .queue_datas
        .iter()
        .filter(|qd| qd.perm & PERM_READ != 0)
        .flat_map(|qd| {
            let broker: Arc<str> = Arc::from(qd.broker_name.as_str());
            let topic = Arc::clone(&topic);
            (0..qd.read_queue_nums).map(move |queue_id| MessageQueue {
                topic: Arc::clone(&topic),
                broker_name: Arc::clone(&broker),
                queue_id,
            })
        })
        .collect();
    qs.sort();
    qs
}

/// The group's consumer ids, from a broker of the route (the first with a master).
async fn consumer_ids(
    inner: &Inner,
    instance: &ClientInstance,
    route: &TopicRouteData,
) -> Result<Vec<String>> {
    group_consumer_ids(&inner.group, instance, route).await
}

/// The consumer ids of `group`, sorted, from a broker of the route.
pub(crate) async fn group_consumer_ids(
    group: &str,
    instance: &ClientInstance,
    route: &TopicRouteData,
) -> Result<Vec<String>> {
    let mut brokers: Vec<_> = route.broker_datas.iter().collect();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let addr = brokers
        .iter()
        .find_map(|b| {
            b.master_addr()
                .or_else(|| b.broker_addrs.values().next().map(String::as_str))
        })
        .ok_or_else(|| Error::Protocol("the route names no broker address".into()))?
        .to_string();
    let resp = instance
        .remoting()
        .invoke(
            &addr,
            &req::get_consumer_list_by_group(group),
            Instant::now() + instance.config().api_timeout,
        )
        .await?;
    if resp.code != response::SUCCESS {
        return Err(Error::broker(resp.code, resp.remark_str(), addr));
    }
    let mut ids = req::parse_consumer_list(&resp.body)?;
    ids.sort();
    ids.dedup();
    Ok(ids)
}

pub(crate) async fn rebalance(inner: &Arc<Inner>, instance: &Arc<ClientInstance>) {
    let topics: Vec<String> = inner
        .subscriptions
        .lock()
        .iter()
        .map(|s| s.topic.clone())
        .collect();
    for topic in topics {
        if inner.is_stopping() {
            return;
        }
        let deadline = Instant::now() + instance.config().api_timeout;
        // Any failure keeps the queues as they are until the next round.
        let Ok(route) = instance.subscribe_route(&topic, deadline).await else {
            continue;
        };
        let all = subscribe_queues(&topic, &route);
        let mine = if inner.config.broadcasting {
            all // every consumer of a broadcasting group reads every queue
        } else {
            let Ok(ids) = consumer_ids(inner, instance, &route).await else {
                continue;
            };
            inner.strategy.allocate(instance.client_id(), &all, &ids)
        };
        update_queues(inner, instance, &topic, mine).await;
    }
}

/// Releases the topic's queues not in `mine` (offset committed first) and takes the new ones.
async fn update_queues(
    inner: &Arc<Inner>,
    instance: &Arc<ClientInstance>,
    topic: &str,
    mine: Vec<MessageQueue>,
) {
    let keep: HashSet<&MessageQueue> = mine.iter().collect();
    let released: Vec<(MessageQueue, OwnedQueue)> = {
        let mut queues = inner.queues.lock();
        let gone: Vec<MessageQueue> = queues
            .keys()
            .filter(|q| &*q.topic == topic && !keep.contains(q))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|q| queues.remove(&q).map(|o| (q, o)))
            .collect()
    };
    for (mq, owned) in released {
        if inner.orderly.is_enabled() {
            orderly::release(inner, instance, mq, owned).await;
        } else {
            release(inner, instance, &mq, owned).await;
        }
    }
    for mq in mine {
        if inner.is_stopping() {
            return;
        }
        if inner.queues.lock().contains_key(&mq) {
            continue;
        }
        // Orderly: only a queue locked at its broker is taken (and its offset read after that).
        if inner.orderly.is_enabled() && !lock::lock_one(inner, instance, &mq).await {
            lock::retry_refused_soon(inner);
            continue;
        }
        // A queue whose start cannot be read is not taken now; the next round tries again.
        let Ok(start) = offset::start_offset(inner, instance, &mq).await else {
            continue;
        };
        let Some(sub) = inner.subscription(topic) else {
            return;
        };
        let pq = Arc::new(super::ProcessQueue::new(start));
        if inner.orderly.is_enabled() {
            pq.orderly.lock.mark_locked();
        }
        let mut queues = inner.queues.lock();
        if inner.is_stopping() {
            return;
        }
        let pull = instance.shared().handle().spawn(pull::pull_loop(
            Arc::clone(inner),
            Arc::clone(instance),
            mq.clone(),
            Arc::clone(&pq),
            sub,
        ));
        queues.insert(mq, OwnedQueue { pq, pull });
    }
}

/// Stops a queue: no more pulls, its in-flight results are ignored (its messages will be
/// delivered to the next owner from the committed offset), and the offset is committed.
pub(crate) async fn release(
    inner: &Inner,
    instance: &ClientInstance,
    mq: &MessageQueue,
    owned: OwnedQueue,
) {
    owned.pq.drop_queue();
    owned.pull.abort();
    let offset = owned.pq.commit_offset();
    let _ = offset::commit(inner, instance, mq, offset).await;
    inner.offsets.remove(mq);
}
