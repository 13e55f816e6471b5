//! From a topic route to the queues a producer may write to.
use std::sync::Arc;

use super::super::protocol::route::{TopicRouteData, PERM_WRITE};

/// A queue of a topic on a broker. The names are shared, so copies cost no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    pub topic: Arc<str>,
    pub broker_name: Arc<str>,
    pub queue_id: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicPublishInfo {
    pub queues: Vec<MessageQueue>,
    pub route: TopicRouteData,
    /// Built from the TBW102 template because the topic does not exist yet.
    pub from_default_topic: bool,
}

impl TopicPublishInfo {
    /// Java's `topicRouteData2TopicPublishInfo`: order-topic config first; otherwise writable
    /// queues of brokers that have a master, brokers sorted by name. `queue_limit` caps the
    /// queue count per broker (the TBW102 fallback uses min(4, readQueueNums)).
    pub fn from_route(
        topic: &str,
        route: TopicRouteData,
        queue_limit: Option<i32>,
    ) -> TopicPublishInfo {
        let mut queues = Vec::new();
        let topic: Arc<str> = Arc::from(topic);
        match route.order_topic_conf.as_deref().filter(|c| !c.is_empty()) {
            Some(_) => {
                for (broker, n) in route.order_queue_counts() {
                    let broker: Arc<str> = Arc::from(broker);
                    for queue_id in 0..n {
                        queues.push(MessageQueue {
                            topic: Arc::clone(&topic),
                            broker_name: Arc::clone(&broker),
                            queue_id,
                        });
                    }
                }
            }
            None => {
                let mut qds: Vec<_> = route.queue_datas.iter().collect();
                qds.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
                for qd in qds {
                    if qd.perm & PERM_WRITE == 0 {
                        continue;
                    }
                    let has_master = route
                        .broker(&qd.broker_name)
                        .and_then(|b| b.master_addr())
                        .is_some();
                    if !has_master {
                        continue;
                    }
                    let n = match queue_limit {
                        Some(limit) => limit.min(qd.read_queue_nums).min(qd.write_queue_nums),
                        None => qd.write_queue_nums,
                    };
                    let broker: Arc<str> = Arc::from(qd.broker_name.as_str());
                    for queue_id in 0..n {
                        queues.push(MessageQueue {
                            topic: Arc::clone(&topic),
                            broker_name: Arc::clone(&broker),
                            queue_id,
                        });
                    }
                }
            }
        }
        TopicPublishInfo {
            queues,
            route,
            from_default_topic: queue_limit.is_some(),
        }
    }

    /// Round robin from `counter`, skipping the broker that just failed when another exists.
    pub fn select_queue(
        &self,
        counter: usize,
        avoid_broker: Option<&str>,
    ) -> Option<&MessageQueue> {
        let n = self.queues.len();
        if n == 0 {
            return None;
        }
        if let Some(avoid) = avoid_broker {
            for i in 0..n {
                let q = &self.queues[counter.wrapping_add(i) % n];
                if &*q.broker_name != avoid {
                    return Some(q);
                }
            }
        }
        Some(&self.queues[counter % n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: &str) -> TopicRouteData {
        TopicRouteData::from_json(json.as_bytes()).unwrap()
    }

    const TWO_BROKERS: &str = r#"{"brokerDatas":[
        {"brokerAddrs":{"0":"h1:1"},"brokerName":"b","cluster":"c"},
        {"brokerAddrs":{"0":"h2:1"},"brokerName":"a","cluster":"c"},
        {"brokerAddrs":{"1":"h3:1"},"brokerName":"slave-only","cluster":"c"}],
      "queueDatas":[
        {"brokerName":"b","perm":6,"readQueueNums":2,"writeQueueNums":2},
        {"brokerName":"a","perm":6,"readQueueNums":8,"writeQueueNums":8},
        {"brokerName":"slave-only","perm":6,"readQueueNums":2,"writeQueueNums":2},
        {"brokerName":"ro","perm":4,"readQueueNums":2,"writeQueueNums":2}]}"#;

    #[test]
    fn writable_master_queues_sorted_by_broker() {
        let info = TopicPublishInfo::from_route("T", route(TWO_BROKERS), None);
        let names: Vec<(&str, i32)> = info
            .queues
            .iter()
            .map(|q| (&*q.broker_name, q.queue_id))
            .collect();
        assert_eq!(names.len(), 10);
        assert_eq!(names[0], ("a", 0));
        assert_eq!(names[7], ("a", 7));
        assert_eq!(names[8], ("b", 0));
        assert!(!info.from_default_topic);
    }

    #[test]
    fn default_topic_fallback_caps_queue_count() {
        let info = TopicPublishInfo::from_route("NEW", route(TWO_BROKERS), Some(4));
        assert_eq!(info.queues.len(), 4 + 2);
        assert!(info.queues.iter().all(|q| &*q.topic == "NEW"));
        assert!(info.from_default_topic);
    }

    #[test]
    fn order_topic_conf_wins() {
        let mut r = route(TWO_BROKERS);
        r.order_topic_conf = Some("b:3;a:1".into());
        let info = TopicPublishInfo::from_route("T", r, None);
        assert_eq!(info.queues.len(), 4);
        assert_eq!(&*info.queues[0].broker_name, "b");
        assert_eq!(&*info.queues[3].broker_name, "a");
    }

    #[test]
    fn selection_round_robins_and_avoids_failed_broker() {
        let info = TopicPublishInfo::from_route("T", route(TWO_BROKERS), None);
        let picks: Vec<i32> = (0..10)
            .map(|c| info.select_queue(c, None).unwrap().queue_id)
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        for c in 0..20 {
            assert_eq!(&*info.select_queue(c, Some("a")).unwrap().broker_name, "b");
            assert_eq!(&*info.select_queue(c, Some("b")).unwrap().broker_name, "a");
        }
        // only one broker: fall back to it rather than fail
        let single = TopicPublishInfo::from_route(
            "T",
            route(
                r#"{"brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"x"}],"queueDatas":[{"brokerName":"x","perm":6,"readQueueNums":1,"writeQueueNums":1}]}"#,
            ),
            None,
        );
        assert_eq!(
            &*single.select_queue(5, Some("x")).unwrap().broker_name,
            "x"
        );
        let empty = TopicPublishInfo::from_route("T", TopicRouteData::default(), None);
        assert!(empty.select_queue(0, None).is_none());
    }
}
