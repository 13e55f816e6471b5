//! Ordered sends: a queue chosen by a selector (as Java's `send(msg, selector, arg)`) or given
//! explicitly (`send(msg, mq)`). Either way the send is pinned to that queue: a sync send makes
//! one attempt, an async send retries transport failures on the same queue, as Java does
//! (`sendSelectImpl` passes no publish info to the kernel, so nothing moves). A send that moved
//! to another queue would break the order of its sharding key.
//!
//! The selector runs on the calling thread, before the send is accepted, for blocking and
//! async sends alike: it never runs on an I/O or callback thread. The call blocks only while
//! the topic's route is first fetched.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::send::RetryPolicy;
use super::{Producer, SendResult, Target};
use crate::client::{ClientInstance, MessageQueue, TopicPublishInfo};
use crate::error::{Error, Result};
use crate::protocol::ids;
use crate::protocol::message::Message;
use crate::runtime;

/// How an ordered send picks its queue from the topic's writable queues (sorted by broker name,
/// then queue id, as Java lists them to selectors).
pub enum QueueSelector<'a> {
    /// Java's `SelectMessageQueueByHash` of a sharding key: `abs(key.hashCode() % n)` with
    /// Java's `String.hashCode`, so Java producers put the same key on the same queue.
    ByHash(&'a str),
    /// Java's `SelectMessageQueueByRandom`.
    Random,
    /// The producer's own round-robin counter.
    RoundRobin,
    /// The caller's choice: an index into the queues. An index out of range or a panic fails
    /// the send with `Error::QueueSelector`; nothing is sent.
    Custom(&'a (dyn Fn(&[MessageQueue]) -> usize + 'a)),
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The queue index `SelectMessageQueueByHash` picks for `key` among `n` queues (n > 0).
pub fn hash_index(key: &str, n: usize) -> usize {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    (java_string_hash(key) % n).unsigned_abs() as usize
}

impl QueueSelector<'_> {
    fn pick(
        &self,
        queues: &[MessageQueue],
        counter: &std::sync::atomic::AtomicUsize,
    ) -> Result<usize> {
        let n = queues.len();
        Ok(match self {
            QueueSelector::ByHash(key) => hash_index(key, n),
            QueueSelector::Random => ids::random_u32() as usize % n,
            QueueSelector::RoundRobin => counter.fetch_add(1, Ordering::Relaxed) % n,
            QueueSelector::Custom(f) => {
                return catch_unwind(AssertUnwindSafe(|| f(queues))).map_err(|p| {
                    Error::QueueSelector(format!("the selector panicked: {}", panic_text(&*p)))
                })
            }
        })
    }
}

pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The queue at `index`, or the selector's error.
fn chosen(info: &TopicPublishInfo, index: Result<usize>) -> Result<MessageQueue> {
    let index = index?;
    let n = info.queues.len();
    info.queues.get(index).cloned().ok_or_else(|| {
        Error::QueueSelector(format!(
            "the selector chose queue index {index}, but the topic has {n} writable queue(s)"
        ))
    })
}

fn no_queue(topic: &str) -> Error {
    Error::RouteNotFound {
        topic: topic.to_string(),
        reason: "no writable queue".into(),
    }
}

/// An explicit queue must belong to the message's topic and name a broker and a queue.
fn check_queue(topic: &str, mq: &MessageQueue) -> Result<()> {
    if &*mq.topic != topic {
        return Err(Error::InvalidArgument(format!(
            "the queue belongs to topic '{}', the message to '{topic}'",
            mq.topic
        )));
    }
    if mq.broker_name.is_empty() {
        return Err(Error::InvalidArgument(
            "the queue has no broker name".into(),
        ));
    }
    if mq.queue_id < 0 {
        return Err(Error::InvalidArgument(format!(
            "queue id {} is negative",
            mq.queue_id
        )));
    }
    Ok(())
}

impl Producer {
    async fn writable_queues(
        &self,
        instance: &ClientInstance,
        topic: &str,
    ) -> Result<Arc<TopicPublishInfo>> {
        let deadline = Instant::now() + self.inner.config.send_timeout;
        let info = instance.publish_info(topic, deadline).await?;
        if info.queues.is_empty() {
            return Err(no_queue(topic));
        }
        Ok(info)
    }

    /// Runs `pick` on the calling thread over the writable queues of `topic` (fetching the route
    /// first if needed) and returns the queue it chose. The one selection, for every caller.
    pub fn select_queue_blocking(
        &self,
        topic: &str,
        pick: impl FnOnce(&[MessageQueue]) -> Result<usize>,
    ) -> Result<MessageQueue> {
        let instance = self.running()?;
        let info = runtime::block_on(
            instance.shared(),
            "queue selection",
            self.writable_queues(&instance, topic),
        )??;
        chosen(&info, pick(&info.queues))
    }

    /// The queue `selector` chooses for `msg` (see `select_queue_blocking`).
    pub fn select_blocking(&self, msg: &Message, selector: &QueueSelector) -> Result<MessageQueue> {
        self.select_queue_blocking(msg.topic(), |qs| selector.pick(qs, &self.inner.next_queue))
    }

    /// Sends to the queue `selector` chooses and waits for the broker's answer. One attempt:
    /// an ordered send never moves to another queue.
    pub fn send_select_blocking(
        &self,
        msg: &Message,
        selector: &QueueSelector,
    ) -> Result<SendResult> {
        let prepared = self.prepare(msg)?;
        let mq = self.select_blocking(msg, selector)?;
        self.send_prepared_to_blocking(&prepared, Target::Queue(mq))
    }

    /// `send_select_blocking`, awaited.
    pub async fn send_select(
        &self,
        msg: &Message,
        selector: &QueueSelector<'_>,
    ) -> Result<SendResult> {
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        let info = self.writable_queues(&instance, msg.topic()).await?;
        let mq = chosen(&info, selector.pick(&info.queues, &self.inner.next_queue))?;
        self.send_prepared(&instance, &prepared, RetryPolicy::Sync, &Target::Queue(mq))
            .await
    }

    /// Async ordered send: `selector` runs here, on the calling thread; the send then goes to
    /// that queue in the background, retrying transport failures on the same queue, and
    /// `callback` runs as for `send_with_callback`.
    pub fn send_select_with_callback<F>(
        &self,
        msg: &Message,
        selector: &QueueSelector,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let prepared = self.prepare(msg)?;
        let mq = self.select_blocking(msg, selector)?;
        self.send_prepared_with_callback_to(prepared, Target::Queue(mq), callback)
    }

    /// Sends to `mq` (of the message's topic) and waits for the broker's answer; one attempt.
    pub fn send_to_queue_blocking(&self, msg: &Message, mq: &MessageQueue) -> Result<SendResult> {
        check_queue(msg.topic(), mq)?;
        let prepared = self.prepare(msg)?;
        self.send_prepared_to_blocking(&prepared, Target::Queue(mq.clone()))
    }

    /// `send_to_queue_blocking`, awaited.
    pub async fn send_to_queue(&self, msg: &Message, mq: &MessageQueue) -> Result<SendResult> {
        check_queue(msg.topic(), mq)?;
        let instance = self.running()?;
        let prepared = self.prepare(msg)?;
        self.send_prepared(
            &instance,
            &prepared,
            RetryPolicy::Sync,
            &Target::Queue(mq.clone()),
        )
        .await
    }

    /// Async send to `mq`, retrying transport failures on that same queue.
    pub fn send_to_queue_with_callback<F>(
        &self,
        msg: &Message,
        mq: &MessageQueue,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        check_queue(msg.topic(), mq)?;
        let prepared = self.prepare(msg)?;
        self.send_prepared_with_callback_to(prepared, Target::Queue(mq.clone()), callback)
    }

    /// The index `selector` picks among `queues` (the built-ins use this producer's counter).
    pub fn pick_queue_index(
        &self,
        selector: &QueueSelector,
        queues: &[MessageQueue],
    ) -> Result<usize> {
        selector.pick(queues, &self.inner.next_queue)
    }

    /// Checks an explicit queue against a prepared message's topic (for callers that prepare
    /// first, such as the C ABI).
    pub fn check_queue(&self, topic: &str, mq: &MessageQueue) -> Result<()> {
        check_queue(topic, mq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash_matches_java() {
        // Values of "...".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("order-1001"), 708180863);
        assert_eq!(java_string_hash("é"), 233);
        // Outside the BMP: two UTF-16 code units, as Java counts them.
        assert_eq!(java_string_hash("\u{1F600}"), 1772899);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn hash_index_is_select_message_queue_by_hash() {
        // From SelectMessageQueueByHash run on the JVM: abs(hashCode % n), MIN_VALUE included.
        for (n, want) in [(1, 0), (3, 2), (4, 0), (7, 2), (8, 0)] {
            assert_eq!(hash_index("polygenelubricants", n), want, "n={n}");
        }
        for (n, want) in [(3, 2), (4, 3), (8, 7)] {
            assert_eq!(hash_index("order-1001", n), want, "n={n}");
        }
    }

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n)
            .map(|queue_id| MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id,
            })
            .collect()
    }

    #[test]
    fn selectors_stay_in_range_and_custom_failures_are_errors() {
        let qs = queues(4);
        let counter = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..100 {
            assert!(QueueSelector::Random.pick(&qs, &counter).unwrap() < 4);
        }
        let rr: Vec<usize> = (0..5)
            .map(|_| QueueSelector::RoundRobin.pick(&qs, &counter).unwrap())
            .collect();
        assert_eq!(rr, vec![0, 1, 2, 3, 0]);
        let last = |qs: &[MessageQueue]| qs.len() - 1;
        assert_eq!(QueueSelector::Custom(&last).pick(&qs, &counter).unwrap(), 3);
        let boom = |_: &[MessageQueue]| -> usize { panic!("selector bug") };
        match QueueSelector::Custom(&boom).pick(&qs, &counter) {
            Err(Error::QueueSelector(m)) => assert!(m.contains("selector bug"), "{m}"),
            other => panic!("expected a selector error, got {other:?}"),
        }
        let info = TopicPublishInfo {
            queues: qs,
            route: Default::default(),
            from_default_topic: false,
        };
        assert!(matches!(chosen(&info, Ok(4)), Err(Error::QueueSelector(_))));
        assert_eq!(chosen(&info, Ok(2)).unwrap().queue_id, 2);
    }

    #[test]
    fn explicit_queues_must_match_the_message() {
        let mq = |topic: &str, broker: &str, queue_id| MessageQueue {
            topic: topic.into(),
            broker_name: broker.into(),
            queue_id,
        };
        assert!(check_queue("T", &mq("T", "b", 0)).is_ok());
        for bad in [mq("U", "b", 0), mq("T", "", 0), mq("T", "b", -1)] {
            assert!(matches!(
                check_queue("T", &bad),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}
