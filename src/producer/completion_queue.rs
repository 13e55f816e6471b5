//! A completion queue: async send results collected in one place, to be taken many at a time.
//!
//! The callback path hands each result to a callback thread one by one. Hosts that pay for every
//! entry into their own runtime (Python takes the GIL, Go crosses cgo) do better draining a queue
//! in batches: `poll` takes up to `max` results at once, waiting at most a timeout, and a wake-up
//! file descriptor (an eventfd; a pipe where there is none) is readable while results wait, so an
//! event loop (`asyncio`'s `add_reader`, epoll, libuv) learns of them without a thread of its own.
//! This is librdkafka's `rd_kafka_queue_poll` with `rd_kafka_queue_io_event_enable`.
//!
//! - Results are delivered by the thread that finished the send (no hop to the callback
//!   executor), which only pushes and, when the queue was empty, signals the descriptor once.
//! - Many producers may share one queue; every send carries a caller's `tag` to match results.
//! - The queue is bounded: at most `capacity` results are owed, in flight or waiting to be taken,
//!   so an application that stops polling cannot make it grow. A send past that fails at once
//!   with `Error::InFlightFull` (it never waits, since the thread that would free a place may be
//!   the one sending). Each send also holds its producer's in-flight window slot until its
//!   result is in the queue, as a callback send does until its callback returns.
//! - Every accepted send produces exactly one result: shutting a producer down delivers
//!   `Error::Cancelled` for its sends in flight. After `close`, results still arriving are
//!   dropped and counted (`discarded`), never lost silently.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{PreparedSend, Producer, SendResult};
use crate::error::{Error, Result};
use crate::protocol::message::Message;

/// One result taken from the queue.
#[derive(Debug)]
pub struct Completed {
    /// The tag given to `CompletionQueue::send`.
    pub tag: u64,
    pub outcome: Result<SendResult>,
}

/// A shared handle to one queue; clones share it.
#[derive(Clone)]
pub struct CompletionQueue {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
    wake: WakeFd,
}

struct State {
    items: VecDeque<Completed>,
    /// Results owed: sends in flight plus results waiting to be taken.
    owed: usize,
    closed: bool,
    /// Whether the descriptor is signalled (it is while results wait).
    signalled: bool,
    discarded: u64,
}

impl CompletionQueue {
    /// A queue for at most `capacity` owed results (at least 1).
    pub fn new(capacity: usize) -> Result<CompletionQueue> {
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "a completion queue needs a capacity of at least 1".into(),
            ));
        }
        Ok(CompletionQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    owed: 0,
                    closed: false,
                    signalled: false,
                    discarded: 0,
                }),
                ready: Condvar::new(),
                capacity,
                wake: WakeFd::new()?,
            }),
        })
    }

    /// Sends `msg` asynchronously with `producer`; its result lands in this queue under `tag`.
    /// On error nothing was sent and no result will come.
    pub fn send(&self, producer: &Producer, msg: &Message, tag: u64) -> Result<()> {
        let prepared = producer.prepare(msg)?;
        self.send_prepared(producer, prepared, tag)
    }

    pub fn send_prepared(
        &self,
        producer: &Producer,
        prepared: PreparedSend,
        tag: u64,
    ) -> Result<()> {
        self.reserve()?;
        let shared = Arc::clone(&self.shared);
        let sent = producer.send_prepared_with_delivery(prepared, move |outcome| {
            shared.push(Completed { tag, outcome })
        });
        if sent.is_err() {
            self.shared.unreserve();
        }
        sent
    }

    fn reserve(&self) -> Result<()> {
        let mut s = self.shared.state.lock();
        if s.closed {
            return Err(Error::InvalidState("the completion queue is closed".into()));
        }
        if s.owed >= self.shared.capacity {
            return Err(Error::InFlightFull(format!(
                "{} results owed to the completion queue (its capacity): poll it before sending more",
                self.shared.capacity
            )));
        }
        s.owed += 1;
        Ok(())
    }

    /// Takes up to `max` results, in the order they arrived, into `out` (appended). Waits up to
    /// `timeout` for the first one (`None`: until one arrives or the queue is closed); returns
    /// how many were taken, 0 on timeout or once closed.
    pub fn poll(&self, out: &mut Vec<Completed>, max: usize, timeout: Option<Duration>) -> usize {
        if max == 0 {
            return 0;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.shared.state.lock();
        while s.items.is_empty() && !s.closed {
            match deadline {
                None => self.shared.ready.wait(&mut s),
                Some(d) => {
                    if self.shared.ready.wait_until(&mut s, d).timed_out() {
                        break;
                    }
                }
            }
        }
        let n = max.min(s.items.len());
        out.extend(s.items.drain(..n));
        s.owed -= n;
        // A closed queue stays readable, so an event loop watching it finds out.
        if s.items.is_empty() && s.signalled && !s.closed {
            self.shared.wake.clear();
            s.signalled = false;
        }
        n
    }

    /// A descriptor that is readable while results wait; `poll` clears it when it empties the
    /// queue. Owned by the queue: do not read, write or close it; watch it only.
    pub fn wake_fd(&self) -> i32 {
        self.shared.wake.fd()
    }

    /// Results waiting to be taken.
    pub fn len(&self) -> usize {
        self.shared.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Results owed: sends in flight plus results waiting.
    pub fn owed(&self) -> usize {
        self.shared.state.lock().owed
    }

    /// Refuses further sends, drops the results waiting, wakes every `poll`. Results of sends
    /// still in flight are dropped when they arrive. Both are counted in `discarded`. Idempotent.
    pub fn close(&self) {
        let mut s = self.shared.state.lock();
        if s.closed {
            return;
        }
        s.closed = true;
        let dropped = s.items.len();
        s.items.clear();
        s.owed -= dropped;
        s.discarded += dropped as u64;
        if !s.signalled {
            // Readable from now on, so an event loop watching it looks (and finds it closed).
            self.shared.wake.signal();
            s.signalled = true;
        }
        drop(s);
        self.shared.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closed
    }

    /// Results dropped by `close`, waiting or arriving later.
    pub fn discarded(&self) -> u64 {
        self.shared.state.lock().discarded
    }
}

impl Shared {
    fn unreserve(&self) {
        self.state.lock().owed -= 1;
    }

    /// Runs on the thread that finished the send: no blocking beyond the queue's own lock.
    fn push(&self, c: Completed) {
        let mut s = self.state.lock();
        if s.closed {
            s.owed -= 1;
            s.discarded += 1;
            return;
        }
        s.items.push_back(c);
        if !s.signalled {
            self.wake.signal();
            s.signalled = true;
        }
        let first = s.items.len() == 1;
        drop(s);
        if first {
            self.ready.notify_all();
        }
    }
}

fn wake_fd_error() -> Error {
    Error::Resource(format!(
        "cannot make the completion queue's wake-up descriptor: {}",
        std::io::Error::last_os_error()
    ))
}

/// The wake-up descriptor: an eventfd on Linux, a non-blocking pipe elsewhere. Signalled and
/// cleared only under the queue's lock, so its state follows `State::signalled`.
struct WakeFd {
    read: i32,
    write: i32,
}

impl WakeFd {
    #[cfg(target_os = "linux")]
    fn new() -> Result<WakeFd> {
        // SAFETY: plain syscall; the descriptor is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(wake_fd_error());
        }
        Ok(WakeFd {
            read: fd,
            write: fd,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> Result<WakeFd> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(wake_fd_error());
        }
        for fd in fds {
            // SAFETY: descriptors just made by pipe().
            unsafe {
                libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(WakeFd {
            read: fds[0],
            write: fds[1],
        })
    }

    fn fd(&self) -> i32 {
        self.read
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to our own descriptor. Non-blocking: a full pipe
        // is readable already, which is all a signal needs.
        unsafe { libc::write(self.write, (&one as *const u64).cast(), 8) };
    }

    fn clear(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer from our own non-blocking descriptor.
        while unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) } > 0 {
            if self.read == self.write {
                break; // an eventfd is cleared by one read
            }
        }
    }
}

impl Drop for WakeFd {
    fn drop(&mut self) {
        // SAFETY: our own descriptors, closed once.
        unsafe {
            libc::close(self.read);
            if self.write != self.read {
                libc::close(self.write);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: i32) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    fn result(n: i64) -> Result<SendResult> {
        Ok(SendResult {
            status: super::super::SendStatus::SendOk,
            msg_id: format!("id{n}"),
            offset_msg_id: String::new(),
            queue: crate::client::MessageQueue {
                topic: "t".into(),
                broker_name: "b".into(),
                queue_id: 0,
            },
            queue_offset: n,
            transaction_id: None,
            region_id: "DefaultRegion".into(),
        })
    }

    /// What a send does without a broker: reserve, then the library thread pushes.
    fn fake_send(q: &CompletionQueue, tag: u64) -> Result<()> {
        q.reserve()?;
        q.shared.push(Completed {
            tag,
            outcome: result(tag as i64),
        });
        Ok(())
    }

    #[test]
    fn takes_batches_in_order_and_the_fd_follows_emptiness() {
        let q = CompletionQueue::new(100).unwrap();
        assert!(!readable(q.wake_fd()));
        for tag in 0..10 {
            fake_send(&q, tag).unwrap();
        }
        assert!(readable(q.wake_fd()));
        let mut out = Vec::new();
        assert_eq!(q.poll(&mut out, 4, Some(Duration::ZERO)), 4);
        assert!(readable(q.wake_fd()), "6 still wait");
        assert_eq!(q.poll(&mut out, 100, Some(Duration::ZERO)), 6);
        assert!(!readable(q.wake_fd()), "cleared once empty");
        let tags: Vec<u64> = out.iter().map(|c| c.tag).collect();
        assert_eq!(tags, (0..10).collect::<Vec<_>>());
        assert_eq!(q.owed(), 0);
        assert_eq!(q.poll(&mut out, 100, Some(Duration::ZERO)), 0);
    }

    #[test]
    fn capacity_bounds_owed_results_until_polled() {
        let q = CompletionQueue::new(3).unwrap();
        for tag in 0..3 {
            fake_send(&q, tag).unwrap();
        }
        assert!(matches!(fake_send(&q, 9), Err(Error::InFlightFull(_))));
        let mut out = Vec::new();
        assert_eq!(q.poll(&mut out, 1, None), 1);
        fake_send(&q, 3).unwrap();
        assert!(CompletionQueue::new(0).is_err());
    }

    #[test]
    fn a_blocked_poll_wakes_for_a_push_from_another_thread() {
        let q = CompletionQueue::new(10).unwrap();
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            let mut out = Vec::new();
            let n = q2.poll(&mut out, 10, None);
            (n, out[0].tag)
        });
        fake_send(&q, 7).unwrap();
        assert_eq!(t.join().unwrap(), (1, 7));
    }

    #[test]
    fn close_wakes_pollers_refuses_sends_and_counts_what_it_drops() {
        let q = CompletionQueue::new(10).unwrap();
        fake_send(&q, 1).unwrap();
        q.reserve().unwrap(); // a send still in flight
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || {
            let mut out = Vec::new();
            // Takes the waiting result, then blocks until close.
            q2.poll(&mut out, 10, None) + q2.poll(&mut out, 10, None)
        });
        while !q.is_empty() {
            std::thread::yield_now(); // the waiter takes the waiting result
        }
        q.close();
        assert_eq!(
            waiter.join().unwrap(),
            1,
            "the second poll returned 0 at close"
        );
        assert!(readable(q.wake_fd()));
        assert!(matches!(fake_send(&q, 2), Err(Error::InvalidState(_))));
        // The in-flight result arrives after close.
        q.shared.push(Completed {
            tag: 3,
            outcome: result(3),
        });
        assert_eq!(q.discarded(), 1);
        assert_eq!(q.owed(), 0);
    }
}
