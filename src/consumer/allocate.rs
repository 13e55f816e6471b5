//! Queue allocation among the consumers of a group. Every consumer runs the same strategy over the
//! same sorted inputs (queues by topic, broker, id; client ids as strings), so together they
//! take every queue exactly once. The rules are Java's, so rmq and Java consumers can share a
//! group.
use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::client::MessageQueue;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocateStrategy {
    /// Contiguous blocks (Java AllocateMessageQueueAveragely, the default).
    Averagely,
    /// Round robin (AllocateMessageQueueAveragelyByCircle).
    AveragelyByCircle,
    /// MD5 ring of client ids with virtual nodes (AllocateMessageQueueConsistentHash).
    ConsistentHash { virtual_nodes: usize },
}

/// Java's default virtual node count.
pub const DEFAULT_VIRTUAL_NODES: usize = 10;

impl AllocateStrategy {
    pub fn from_name(name: &str) -> Result<AllocateStrategy> {
        match name {
            "averagely" => Ok(AllocateStrategy::Averagely),
            "averagely-by-circle" => Ok(AllocateStrategy::AveragelyByCircle),
            "consistent-hash" => Ok(AllocateStrategy::ConsistentHash {
                virtual_nodes: DEFAULT_VIRTUAL_NODES,
            }),
            other => Err(Error::InvalidArgument(format!(
                "unknown allocate strategy '{other}' (averagely, averagely-by-circle, consistent-hash)"
            ))),
        }
    }

    /// The queues of `queues` (sorted) that `me` takes among `ids` (sorted). Empty when `me` is
    /// not in `ids` (the broker does not know us yet).
    pub fn allocate(self, me: &str, queues: &[MessageQueue], ids: &[String]) -> Vec<MessageQueue> {
        let Some(index) = ids.iter().position(|id| id == me) else {
            return Vec::new();
        };
        if queues.is_empty() {
            return Vec::new();
        }
        match self {
            AllocateStrategy::Averagely => {
                let (n, c) = (queues.len(), ids.len());
                let m = n % c;
                let size = if n <= c {
                    1
                } else if index < m {
                    n / c + 1
                } else {
                    n / c
                };
                let start = if index < m {
                    index * size
                } else {
                    index * size + m
                };
                let take = size.min(n.saturating_sub(start));
                queues[start.min(n)..start.min(n) + take].to_vec()
            }
            AllocateStrategy::AveragelyByCircle => queues
                .iter()
                .enumerate()
                .filter(|(k, _)| k % ids.len() == index)
                .map(|(_, q)| q.clone())
                .collect(),
            AllocateStrategy::ConsistentHash { virtual_nodes } => {
                let mut ring: BTreeMap<i64, &str> = BTreeMap::new();
                for id in ids {
                    for replica in 0..virtual_nodes {
                        ring.insert(md5_hash(&format!("{id}-{replica}")), id);
                    }
                }
                queues
                    .iter()
                    .filter(|q| {
                        let h = md5_hash(&java_queue_string(q));
                        let owner = ring
                            .range(h..)
                            .next()
                            .or_else(|| ring.iter().next())
                            .map(|(_, id)| *id);
                        owner == Some(me)
                    })
                    .cloned()
                    .collect()
            }
        }
    }
}

/// The key Java hashes for a queue (`MessageQueue.toString()`).
fn java_queue_string(q: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        q.topic, q.broker_name, q.queue_id
    )
}

/// The first four bytes of the MD5 digest as an unsigned big-endian number (Java's ring hash).
fn md5_hash(key: &str) -> i64 {
    let d = Md5::digest(key.as_bytes());
    i64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n)
            .map(|i| MessageQueue {
                topic: Arc::from("T"),
                broker_name: Arc::from(if i % 2 == 0 { "a" } else { "b" }),
                queue_id: i,
            })
            .collect()
    }

    fn ids(c: usize) -> Vec<String> {
        (0..c).map(|i| format!("10.0.0.{i}@x")).collect()
    }

    #[test]
    fn every_strategy_partitions_the_queues() {
        for strategy in [
            AllocateStrategy::Averagely,
            AllocateStrategy::AveragelyByCircle,
            AllocateStrategy::ConsistentHash { virtual_nodes: 10 },
        ] {
            for n in [1, 3, 4, 8, 13] {
                for c in 1..=5 {
                    let qs = queues(n);
                    let ids = ids(c);
                    let mut seen = HashSet::new();
                    let mut total = 0;
                    for id in &ids {
                        for q in strategy.allocate(id, &qs, &ids) {
                            total += 1;
                            seen.insert(q);
                        }
                    }
                    assert_eq!(
                        total, n as usize,
                        "{strategy:?} n={n} c={c}: no queue twice"
                    );
                    assert_eq!(
                        seen.len(),
                        n as usize,
                        "{strategy:?} n={n} c={c}: every queue"
                    );
                }
            }
        }
    }

    #[test]
    fn averagely_gives_contiguous_blocks_as_java() {
        let qs = queues(8);
        let ids = ids(3);
        let got: Vec<Vec<i32>> = ids
            .iter()
            .map(|id| {
                AllocateStrategy::Averagely
                    .allocate(id, &qs, &ids)
                    .iter()
                    .map(|q| q.queue_id)
                    .collect()
            })
            .collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        let by_circle: Vec<i32> = AllocateStrategy::AveragelyByCircle
            .allocate(&ids[1], &qs, &ids)
            .iter()
            .map(|q| q.queue_id)
            .collect();
        assert_eq!(by_circle, vec![1, 4, 7]);
        assert!(AllocateStrategy::Averagely
            .allocate("stranger", &qs, &ids)
            .is_empty());
    }

    #[test]
    fn md5_ring_hash_takes_the_first_four_digest_bytes() {
        // MD5("") = d41d8cd9...
        assert_eq!(md5_hash(""), 0xd41d8cd9);
    }
}
