//! Poll mode: instead of calling a listener, the consume stage puts what the pull loops received
//! into a hand-off queue, and the application takes batches of it (`PushConsumer::poll`) and
//! acknowledges them (`ReceivedBatch::ack`, `ack_each`). An acknowledgement goes through the
//! listener path's own result handling (`consume::finish`), so offsets, send-back, the DLQ and
//! the consume timeout behave exactly as with a listener.
//!
//! The hand-off queue holds only messages that are also in their process queue, so it is
//! bounded by the pull flow control (`consumer.pull-threshold-for-queue` and
//! `consumer.pull-threshold-size-for-queue` per owned queue): pulling pauses while the
//! application does not take them.
//!
//! In POP mode the hand-off queue holds popped messages instead, counted against their
//! assignment's `consumer.pull-threshold-for-queue` until answered: an acknowledgement acks
//! them (or makes a reconsume-later one invisible for its delay level, as a listener's result
//! does, `pop::answer`); a batch dropped unanswered leaves them to come again after their
//! invisible time.
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::consume::{self, BusyGuard};
use super::pop::{self, InFlight, PopQueue};
use super::{ConsumeResult, Inner, ProcessQueue};
use crate::client::MessageQueue;
use crate::error::{Error, Result};
use crate::protocol::message::MessageExt;

/// Where polled messages came from, and so how they are answered.
#[derive(Clone)]
enum Origin {
    /// Pulled: answered through the process queue (offsets, send-back).
    Pull(Arc<ProcessQueue>),
    /// Popped (POP mode): answered by their receipts; counted in the assignment's in-flight
    /// messages from the hand-off until answered.
    Pop(Arc<PopQueue>),
}

/// Messages of one queue waiting to be polled.
struct Pending {
    mq: MessageQueue,
    origin: Origin,
    msgs: VecDeque<Arc<MessageExt>>,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Pending>,
    closed: bool,
}

/// The hand-off queue between the consume stage and the application's polls.
#[derive(Default)]
pub(crate) struct Handoff {
    state: Mutex<State>,
    ready: Condvar,
}

/// What one poll took: the messages and, per run of them, the queue they came from.
type Taken = (
    Vec<Arc<MessageExt>>,
    Vec<(MessageQueue, Origin, Range<usize>)>,
);

impl Handoff {
    /// Called by the consume stage (on an I/O thread): never blocks beyond the short lock.
    pub(crate) fn push(
        &self,
        mq: &MessageQueue,
        pq: &Arc<ProcessQueue>,
        msgs: Vec<Arc<MessageExt>>,
    ) {
        self.push_from(mq, Origin::Pull(Arc::clone(pq)), msgs);
    }

    /// POP mode: popped messages, counted in `pq`'s in-flight messages until answered.
    pub(crate) fn push_popped(
        &self,
        mq: &MessageQueue,
        pq: &Arc<PopQueue>,
        msgs: Vec<Arc<MessageExt>>,
    ) {
        let n = msgs.len();
        pq.in_flight
            .fetch_add(n, std::sync::atomic::Ordering::AcqRel);
        if !self.push_from(mq, Origin::Pop(Arc::clone(pq)), msgs) {
            drop(InFlight(Arc::clone(pq), n));
        }
    }

    /// True when the messages were queued.
    fn push_from(&self, mq: &MessageQueue, origin: Origin, msgs: Vec<Arc<MessageExt>>) -> bool {
        if msgs.is_empty() {
            return false;
        }
        let mut st = self.state.lock();
        if st.closed {
            return false; // shutting down: the messages stay uncommitted and come again later
        }
        st.pending.push_back(Pending {
            mq: mq.clone(),
            origin,
            msgs: msgs.into(),
        });
        drop(st);
        self.ready.notify_one();
        true
    }

    /// No poll waits or takes anything after this; what was waiting stays uncommitted.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        let pending = std::mem::take(&mut st.pending);
        drop(st);
        self.ready.notify_all();
        for p in pending {
            if let Origin::Pop(pq) = p.origin {
                drop(InFlight(pq, p.msgs.len()));
            }
        }
    }

    /// Up to `max` messages, waiting until `deadline` for the first; None when none came.
    fn take(&self, max: usize, deadline: Instant) -> Result<Option<Taken>> {
        let mut st = self.state.lock();
        loop {
            if st.closed {
                return Err(shut_down());
            }
            let mut msgs = Vec::new();
            let mut origins = Vec::new();
            while msgs.len() < max {
                let Some(front) = st.pending.front_mut() else {
                    break;
                };
                if matches!(&front.origin, Origin::Pull(pq) if pq.is_dropped()) {
                    // A rebalance gave the queue away; its next owner starts from the commit.
                    st.pending.pop_front();
                    continue;
                }
                let n = front.msgs.len().min(max - msgs.len());
                let start = msgs.len();
                msgs.extend(front.msgs.drain(..n));
                origins.push((front.mq.clone(), front.origin.clone(), start..msgs.len()));
                if front.msgs.is_empty() {
                    st.pending.pop_front();
                }
            }
            if !msgs.is_empty() {
                return Ok(Some((msgs, origins)));
            }
            if self.ready.wait_until(&mut st, deadline).timed_out() {
                if st.closed {
                    return Err(shut_down());
                }
                if st.pending.is_empty() {
                    return Ok(None);
                }
            }
        }
    }
}

fn shut_down() -> Error {
    Error::InvalidState("the consumer is shut down".into())
}

/// Waits at most `timeout` for messages (Duration::MAX: no limit) and takes up to `max`.
pub(crate) fn poll(
    inner: &Arc<Inner>,
    max: usize,
    timeout: Duration,
) -> Result<Option<ReceivedBatch>> {
    if max == 0 {
        return Err(Error::InvalidArgument(
            "max_messages must be at least 1".into(),
        ));
    }
    let Some(handoff) = inner.handoff.lock().clone() else {
        return Err(Error::InvalidState(
            "the consumer is not in poll mode (it has a listener)".into(),
        ));
    };
    if *inner.state.lock() == super::State::Created {
        return Err(Error::InvalidState(
            "start the consumer before polling it".into(),
        ));
    }
    let now = Instant::now();
    // A deadline far enough away to mean "no limit" without overflowing.
    let deadline = now
        .checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
    let Some((msgs, origins)) = handoff.take(max, deadline)? else {
        return Ok(None);
    };
    // The consume timeout runs from here, as from the start of a listener call (popped
    // messages have their invisible time instead).
    let mut counted = Vec::new();
    for (_, origin, range) in &origins {
        match origin {
            Origin::Pull(pq) => {
                let offsets: Vec<i64> =
                    msgs[range.clone()].iter().map(|m| m.queue_offset).collect();
                pq.mark_started(&offsets);
            }
            Origin::Pop(pq) => counted.push(InFlight(Arc::clone(pq), range.len())),
        }
    }
    let trace = inner.trace.get().and_then(|t| t.consume_before(&msgs));
    Ok(Some(ReceivedBatch {
        inner: Some(Arc::clone(inner)),
        msgs,
        origins,
        counted,
        settled: false,
        trace,
    }))
}

/// Messages taken by one poll, possibly from several queues. Acknowledge it with `ack` or
/// `ack_each`; dropped without either, its messages are reconsumed later (as
/// `ConsumeResult::ReconsumeLater { delay_level: 0 }`; in POP mode they are not answered at
/// all and come again after consumer.pop-invisible-time-millis). Messages still
/// unacknowledged when the consumer shuts down are not committed: they are delivered again
/// later.
///
/// A batch of the lite pull consumer (`LitePullConsumer::poll`) already counts as consumed when
/// it is taken: it needs no acknowledgement; `ack` (or `ack_each` with every result `Success`)
/// only marks it answered, dropping it does nothing, and `ReconsumeLater` is refused (seek to
/// read messages again).
pub struct ReceivedBatch {
    /// None for a lite pull batch.
    inner: Option<Arc<Inner>>,
    msgs: Vec<Arc<MessageExt>>,
    origins: Vec<(MessageQueue, Origin, Range<usize>)>,
    /// POP mode: the batch's share of its assignments' in-flight counts, released once its
    /// answers are sent (or when it is dropped).
    counted: Vec<InFlight>,
    settled: bool,
    /// Message trace: the SubBefore written when the poll took the batch.
    trace: Option<crate::trace::ConsumeSpan>,
}

impl ReceivedBatch {
    /// A lite pull batch: messages that count as consumed already.
    pub(crate) fn consumed(msgs: Vec<Arc<MessageExt>>) -> ReceivedBatch {
        ReceivedBatch {
            inner: None,
            msgs,
            origins: Vec::new(),
            counted: Vec::new(),
            settled: false,
            trace: None,
        }
    }

    /// Whether answering the batch matters: false for a lite pull batch.
    pub fn needs_ack(&self) -> bool {
        self.inner.is_some()
    }

    pub fn messages(&self) -> &[Arc<MessageExt>] {
        &self.msgs
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Every message consumed.
    pub fn ack(&mut self) -> Result<()> {
        let all = vec![ConsumeResult::Success; self.msgs.len()];
        self.ack_each(&all)
    }

    /// One result per message, in the order of `messages()`. The batch counts as acknowledged
    /// once this is called with the right number of results, even when it then fails because
    /// the consumer has shut down (those messages are delivered again later). A second
    /// acknowledgement is `Error::InvalidState`.
    pub fn ack_each(&mut self, results: &[ConsumeResult]) -> Result<()> {
        let Some(inner) = self.inner.clone() else {
            return self.settle_consumed(results);
        };
        if crate::runtime::check_pid(inner.pid).is_err() {
            // Made before fork(): the parent's consumer, nothing to do in this process.
            self.settled = true;
            return Err(Error::Forked);
        }
        if self.settled {
            return Err(Error::InvalidState(
                "this batch was already acknowledged".into(),
            ));
        }
        if results.len() != self.msgs.len() {
            return Err(Error::InvalidArgument(format!(
                "{} results for a batch of {} messages",
                results.len(),
                self.msgs.len()
            )));
        }
        self.settled = true;
        if let (Some(t), Some(span)) = (inner.trace.get(), self.trace.take()) {
            let all_consumed = results.iter().all(|r| *r == ConsumeResult::Success);
            t.consume_after(span, all_consumed);
        }
        let inner = &inner;
        let instance = inner.instance.lock().clone();
        let Some(instance) = instance.filter(|_| !inner.is_stopping()) else {
            return Err(Error::InvalidState(
                "the consumer is shut down; these messages were not committed and will be \
                 delivered again"
                    .into(),
            ));
        };
        let counted = std::mem::take(&mut self.counted);
        for (mq, origin, range) in &self.origins {
            let pq = match origin {
                Origin::Pull(pq) => pq,
                Origin::Pop(_) => continue,
            };
            let mut ok = Vec::new();
            let mut later: BTreeMap<i32, Vec<Arc<MessageExt>>> = BTreeMap::new();
            for i in range.clone() {
                let m = Arc::clone(&self.msgs[i]);
                match results[i] {
                    ConsumeResult::Success => ok.push(m),
                    ConsumeResult::ReconsumeLater { delay_level } => {
                        later.entry(delay_level).or_default().push(m)
                    }
                }
            }
            if !ok.is_empty() {
                let guard = BusyGuard::new(inner);
                consume::finish(inner, &instance, mq, pq, ok, ConsumeResult::Success, guard);
            }
            for (delay_level, msgs) in later {
                let guard = BusyGuard::new(inner);
                let result = ConsumeResult::ReconsumeLater { delay_level };
                consume::finish(inner, &instance, mq, pq, msgs, result, guard);
            }
        }
        let popped: Vec<(MessageQueue, Arc<MessageExt>, ConsumeResult)> = self
            .origins
            .iter()
            .filter(|(_, origin, _)| matches!(origin, Origin::Pop(_)))
            .flat_map(|(mq, _, range)| {
                range
                    .clone()
                    .map(|i| (mq.clone(), Arc::clone(&self.msgs[i]), results[i]))
            })
            .collect();
        if !popped.is_empty() {
            let guard = BusyGuard::new(inner);
            let (inner, instance2) = (Arc::clone(inner), Arc::clone(&instance));
            // Off the caller's thread: acks are network I/O.
            instance.shared().handle().spawn(async move {
                let _guard = guard;
                let _counted = counted;
                for (mq, m, result) in popped {
                    pop::answer(&inner, &instance2, &mq, &m, result).await;
                }
            });
        }
        Ok(())
    }
}

impl ReceivedBatch {
    /// `ack_each` of a lite pull batch: nothing to commit; only success is a valid answer.
    fn settle_consumed(&mut self, results: &[ConsumeResult]) -> Result<()> {
        if self.settled {
            return Err(Error::InvalidState(
                "this batch was already acknowledged".into(),
            ));
        }
        if results.len() != self.msgs.len() {
            return Err(Error::InvalidArgument(format!(
                "{} results for a batch of {} messages",
                results.len(),
                self.msgs.len()
            )));
        }
        if results.iter().any(|r| *r != ConsumeResult::Success) {
            return Err(Error::InvalidArgument(
                "a lite pull batch counts as consumed when polled and cannot be reconsumed \
                 later; seek its queue back to read messages again"
                    .into(),
            ));
        }
        self.settled = true;
        Ok(())
    }
}

impl Drop for ReceivedBatch {
    fn drop(&mut self) {
        // Popped messages (a consumer pops or pulls, never both) are not answered: they come
        // again after their invisible time.
        let popped = self
            .origins
            .iter()
            .any(|(_, origin, _)| matches!(origin, Origin::Pop(_)));
        if !self.settled && self.inner.is_some() && !popped {
            let later = vec![ConsumeResult::ReconsumeLater { delay_level: 0 }; self.msgs.len()];
            let _ = self.ack_each(&later);
        }
    }
}
