//! Latency fault tolerance (`producer.send-latency-fault-enable`), with the Java client's tables:
//! after every attempt a broker is marked not available for a time looked up from the attempt's
//! latency; a failed attempt counts as 30 s of latency, so the broker is left alone for 10
//! minutes. Queue selection then prefers brokers that are available, and when none is, the one
//! that becomes available first. The table belongs to one producer.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::route::{MessageQueue, TopicPublishInfo};

/// Latency thresholds (ms) and how long (ms) a broker that reached each is not available.
const LATENCY_MAX_MS: [u64; 7] = [50, 100, 550, 1000, 2000, 3000, 15000];
const NOT_AVAILABLE_MS: [u64; 7] = [0, 0, 30_000, 60_000, 120_000, 180_000, 600_000];
/// The latency a failed attempt counts as.
const FAILURE_LATENCY_MS: u64 = 30_000;

/// How long a broker whose attempt took `latency` (or failed) is not available.
pub fn not_available_for(latency: Duration, failed: bool) -> Duration {
    let ms = if failed {
        FAILURE_LATENCY_MS
    } else {
        latency.as_millis().min(u64::MAX as u128) as u64
    };
    let i = LATENCY_MAX_MS.iter().rposition(|max| ms >= *max);
    Duration::from_millis(i.map_or(0, |i| NOT_AVAILABLE_MS[i]))
}

#[derive(Debug, Clone, Copy)]
struct FaultItem {
    latency: Duration,
    available_at: Instant,
}

/// Per-broker latency and availability, by broker name.
#[derive(Default)]
pub struct LatencyFaults {
    items: Mutex<HashMap<Arc<str>, FaultItem>>,
}

impl LatencyFaults {
    /// Records an attempt on `broker` that took `latency` and failed or not.
    pub fn update(&self, broker: &Arc<str>, latency: Duration, failed: bool) {
        let item = FaultItem {
            latency: if failed {
                Duration::from_millis(FAILURE_LATENCY_MS)
            } else {
                latency
            },
            available_at: Instant::now() + not_available_for(latency, failed),
        };
        self.items.lock().insert(Arc::clone(broker), item);
    }

    /// Whether `broker` may be chosen now (unknown brokers are).
    pub fn is_available(&self, broker: &str) -> bool {
        let now = Instant::now();
        self.items
            .lock()
            .get(broker)
            .map_or(true, |i| now >= i.available_at)
    }

    /// Round robin from `counter` over the queues of available brokers, skipping `avoid` (the
    /// broker that just failed) while another one is available. With no broker available: a
    /// queue of the broker that becomes available first (then the one with the lower latency),
    /// still skipping `avoid` when possible.
    pub fn select<'a>(
        &self,
        info: &'a TopicPublishInfo,
        counter: usize,
        avoid: Option<&str>,
    ) -> Option<&'a MessageQueue> {
        let n = info.queues.len();
        if n == 0 {
            return None;
        }
        let now = Instant::now();
        let items = self.items.lock();
        let available = |q: &MessageQueue| {
            items
                .get(&*q.broker_name)
                .map_or(true, |i| now >= i.available_at)
        };
        let ring = (0..n).map(|i| &info.queues[counter.wrapping_add(i) % n]);
        let not_avoided = |q: &&MessageQueue| Some(&*q.broker_name) != avoid;
        if let Some(q) = ring.clone().filter(not_avoided).find(|q| available(q)) {
            return Some(q);
        }
        if let Some(q) = ring.clone().find(|q| available(q)) {
            return Some(q);
        }
        // Every broker is marked: the least bad one.
        let rank = |q: &MessageQueue| {
            let i = items.get(&*q.broker_name);
            (
                Some(&*q.broker_name) == avoid,
                i.map(|i| i.available_at),
                i.map(|i| i.latency),
            )
        };
        let best = ring.clone().min_by_key(|q| rank(q))?;
        ring.clone().find(|q| q.broker_name == best.broker_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::route::TopicRouteData;

    fn two_brokers() -> TopicPublishInfo {
        let json = r#"{"brokerDatas":[
            {"brokerAddrs":{"0":"h1:1"},"brokerName":"a"},
            {"brokerAddrs":{"0":"h2:1"},"brokerName":"b"}],
          "queueDatas":[
            {"brokerName":"a","perm":6,"readQueueNums":2,"writeQueueNums":2},
            {"brokerName":"b","perm":6,"readQueueNums":2,"writeQueueNums":2}]}"#;
        TopicPublishInfo::from_route(
            "T",
            TopicRouteData::from_json(json.as_bytes()).unwrap(),
            None,
        )
    }

    #[test]
    fn the_java_tables() {
        let ms = Duration::from_millis;
        assert_eq!(not_available_for(ms(0), false), ms(0));
        assert_eq!(not_available_for(ms(549), false), ms(0));
        assert_eq!(not_available_for(ms(550), false), ms(30_000));
        assert_eq!(not_available_for(ms(999), false), ms(30_000));
        assert_eq!(not_available_for(ms(1000), false), ms(60_000));
        assert_eq!(not_available_for(ms(2000), false), ms(120_000));
        assert_eq!(not_available_for(ms(3000), false), ms(180_000));
        assert_eq!(not_available_for(ms(15_000), false), ms(600_000));
        assert_eq!(not_available_for(ms(1), true), ms(600_000));
    }

    fn brokers(f: &LatencyFaults, info: &TopicPublishInfo, avoid: Option<&str>) -> Vec<String> {
        (0..8)
            .map(|c| f.select(info, c, avoid).unwrap().broker_name.to_string())
            .collect()
    }

    #[test]
    fn fast_brokers_keep_round_robin() {
        let info = two_brokers();
        let f = LatencyFaults::default();
        f.update(&"a".into(), Duration::from_millis(10), false);
        f.update(&"b".into(), Duration::from_millis(500), false);
        let picks: Vec<i32> = (0..4)
            .map(|c| f.select(&info, c, None).unwrap().queue_id)
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert!(brokers(&f, &info, None).contains(&"b".to_string()));
    }

    #[test]
    fn a_slow_or_failed_broker_is_left_alone() {
        let info = two_brokers();
        let f = LatencyFaults::default();
        f.update(&"b".into(), Duration::from_millis(600), false);
        assert!(!f.is_available("b"));
        assert!(brokers(&f, &info, None).iter().all(|b| b == "a"));
        let f = LatencyFaults::default();
        f.update(&"a".into(), Duration::from_millis(1), true);
        assert!(brokers(&f, &info, None).iter().all(|b| b == "b"));
        // the only available broker is used, even when it is the one that just failed
        assert!(brokers(&f, &info, Some("b")).iter().all(|b| b == "b"));
    }

    #[test]
    fn with_every_broker_marked_the_least_bad_one_is_used() {
        let info = two_brokers();
        let f = LatencyFaults::default();
        f.update(&"a".into(), Duration::from_millis(1), true); // 600 s
        f.update(&"b".into(), Duration::from_millis(700), false); // 30 s
        assert!(brokers(&f, &info, None).iter().all(|b| b == "b"));
        // b just failed: a, although it waits longer
        assert!(brokers(&f, &info, Some("b")).iter().all(|b| b == "a"));
    }

    #[test]
    fn the_failed_broker_is_avoided_among_available_ones() {
        let info = two_brokers();
        let f = LatencyFaults::default();
        assert!(brokers(&f, &info, Some("a")).iter().all(|b| b == "b"));
        let empty = TopicPublishInfo::from_route("T", TopicRouteData::default(), None);
        assert!(f.select(&empty, 0, None).is_none());
    }
}
