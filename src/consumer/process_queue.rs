//! The messages of one queue that were pulled and are not consumed yet. It gives flow control
//! (count and bytes) and the offset that may be committed: the lowest message still in flight,
//! or the next offset to pull when nothing is, so a crash re-delivers but never skips.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::protocol::message::MessageExt;

struct Entry {
    msg: Arc<MessageExt>,
    /// When its listener call started; None while it waits for a thread.
    started: Option<Instant>,
}

#[derive(Default)]
struct State {
    msgs: BTreeMap<i64, Entry>,
    bytes: usize,
    /// The next offset to pull (everything below it was pulled).
    next_offset: i64,
    /// When messages were last added and removed (ms since the epoch), for the admin tools.
    last_pull_ms: i64,
    last_consume_ms: i64,
}

/// What the admin tools are shown of a process queue.
pub struct Snapshot {
    pub min_offset: i64,
    pub max_offset: i64,
    pub count: usize,
    pub bytes: usize,
    pub last_pull_ms: i64,
    pub last_consume_ms: i64,
}

#[derive(Default)]
pub struct ProcessQueue {
    state: Mutex<State>,
    dropped: AtomicBool,
    /// Lock and scheduling of orderly consumption (unused by concurrent consumption).
    pub(crate) orderly: super::orderly::OrderlyQueue,
}

impl ProcessQueue {
    pub fn new(next_offset: i64) -> ProcessQueue {
        let pq = ProcessQueue::default();
        let now = crate::protocol::ids::now_ms();
        let mut st = pq.state.lock();
        st.next_offset = next_offset;
        st.last_pull_ms = now;
        st.last_consume_ms = now;
        drop(st);
        pq
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The queue is no longer ours: no more pulls, and results of its messages are ignored.
    pub fn drop_queue(&self) {
        self.dropped.store(true, Ordering::Release);
    }

    pub fn next_offset(&self) -> i64 {
        self.state.lock().next_offset
    }

    /// Records a pull: `msgs` are in flight from now on and `next` is where the next pull starts.
    pub fn add(&self, msgs: &[Arc<MessageExt>], next: i64) {
        let mut st = self.state.lock();
        for m in msgs {
            let size = m.message.body().len();
            if st
                .msgs
                .insert(
                    m.queue_offset,
                    Entry {
                        msg: Arc::clone(m),
                        started: None,
                    },
                )
                .is_none()
            {
                st.bytes += size;
            }
        }
        st.next_offset = st.next_offset.max(next);
        st.last_pull_ms = crate::protocol::ids::now_ms();
    }

    /// Moves the pull position without messages (nothing new, nothing matched, offset moved).
    pub fn set_next(&self, next: i64) {
        self.state.lock().next_offset = next;
    }

    /// (messages, body bytes) in flight.
    pub fn load(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.msgs.len(), st.bytes)
    }

    /// Distance from the lowest unconsumed offset to the next offset to pull (0 when nothing is
    /// unconsumed). Java measures to the highest unconsumed offset instead, which a single stuck
    /// message never raises; measured to the pull position it bounds what a crash re-delivers.
    pub fn span(&self) -> i64 {
        let st = self.state.lock();
        st.msgs
            .keys()
            .next()
            .map_or(0, |lowest| st.next_offset - lowest)
    }

    pub fn mark_started(&self, offsets: &[i64]) {
        let now = Instant::now();
        let mut st = self.state.lock();
        for o in offsets {
            if let Some(e) = st.msgs.get_mut(o) {
                e.started = Some(now);
            }
        }
    }

    /// Removes the messages at `offsets` that are still here; returns which were.
    pub fn remove(&self, offsets: &[i64]) -> Vec<i64> {
        let mut st = self.state.lock();
        let mut removed = Vec::with_capacity(offsets.len());
        for o in offsets {
            if let Some(e) = st.msgs.remove(o) {
                st.bytes -= e.msg.message.body().len();
                removed.push(*o);
            }
        }
        st.last_consume_ms = crate::protocol::ids::now_ms();
        removed
    }

    /// The `n` lowest messages in flight, in offset order (orderly consumption takes them).
    pub fn first(&self, n: usize) -> Vec<Arc<MessageExt>> {
        let st = self.state.lock();
        st.msgs
            .values()
            .take(n)
            .map(|e| Arc::clone(&e.msg))
            .collect()
    }

    /// Counts one more delivery of the messages at `offsets` (orderly consumption redelivers
    /// them here, not through the broker), so the listener sees their reconsume times grow.
    pub fn count_redelivery(&self, offsets: &[i64]) {
        let mut st = self.state.lock();
        for o in offsets {
            if let Some(e) = st.msgs.get_mut(o) {
                let mut m = MessageExt::clone(&e.msg);
                m.reconsume_times = m.reconsume_times.saturating_add(1);
                e.msg = Arc::new(m);
            }
        }
    }

    /// Whether the message at `offset` is still in flight here.
    pub fn contains(&self, offset: i64) -> bool {
        self.state.lock().msgs.contains_key(&offset)
    }

    /// The offset that may be committed: the lowest in flight, else the next to pull.
    pub fn commit_offset(&self) -> i64 {
        let st = self.state.lock();
        st.msgs.keys().next().copied().unwrap_or(st.next_offset)
    }

    pub fn snapshot(&self) -> Snapshot {
        let st = self.state.lock();
        Snapshot {
            min_offset: st.msgs.keys().next().copied().unwrap_or(0),
            max_offset: st.msgs.keys().next_back().copied().unwrap_or(0),
            count: st.msgs.len(),
            bytes: st.bytes,
            last_pull_ms: st.last_pull_ms,
            last_consume_ms: st.last_consume_ms,
        }
    }

    /// Messages whose listener call started more than `timeout` ago.
    pub fn expired(&self, timeout: Duration) -> Vec<Arc<MessageExt>> {
        let now = Instant::now();
        self.state
            .lock()
            .msgs
            .values()
            .filter(|e| e.started.is_some_and(|t| now.duration_since(t) >= timeout))
            .map(|e| Arc::clone(&e.msg))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::Message;

    fn msg(offset: i64) -> Arc<MessageExt> {
        let addr = "127.0.0.1:1".parse().unwrap();
        Arc::new(MessageExt {
            message: Message::new("T", vec![0u8; 10]),
            queue_id: 0,
            queue_offset: offset,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: addr,
            store_timestamp: 0,
            store_host: addr,
            reconsume_times: 0,
            body_crc: 0,
            offset_msg_id: String::new(),
            broker_name: Arc::from(""),
        })
    }

    #[test]
    fn commits_only_up_to_the_lowest_message_in_flight() {
        let pq = ProcessQueue::new(5);
        assert_eq!(pq.commit_offset(), 5);
        pq.add(&[msg(5), msg(6), msg(7)], 8);
        assert_eq!(pq.load(), (3, 30));
        assert_eq!(pq.remove(&[6, 7]), vec![6, 7]);
        assert_eq!(pq.commit_offset(), 5, "5 is still in flight");
        assert_eq!(pq.remove(&[5, 5]), vec![5]);
        assert_eq!(pq.commit_offset(), 8);
        assert_eq!(pq.load(), (0, 0));
    }

    #[test]
    fn orderly_takes_the_lowest_first_and_counts_redeliveries() {
        let pq = ProcessQueue::new(0);
        pq.add(&[msg(7), msg(5), msg(6)], 8);
        let first: Vec<i64> = pq.first(2).iter().map(|m| m.queue_offset).collect();
        assert_eq!(first, vec![5, 6]);
        pq.count_redelivery(&[5]);
        pq.count_redelivery(&[5]);
        assert_eq!(pq.first(1)[0].reconsume_times, 2);
        assert_eq!(pq.first(3)[1].reconsume_times, 0);
    }
}
