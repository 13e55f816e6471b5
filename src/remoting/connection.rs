//! One TCP connection to a name server or broker, shared by all requests (pipelined, matched by
//! opaque).
//!
//! Writes: any thread writes its frame straight to the non-blocking socket under a short lock.
//! Only when the kernel buffer is full do frames queue, to be flushed when the reactor reports
//! room; once something is queued everybody appends behind it, which keeps frames whole and in
//! order and coalesces them under load.
//!
//! Reads have one reader at a time, the "read role". Normally the reactor holds it when data
//! arrives. A blocking caller that finds the role free takes it before writing its request,
//! takes the socket out of the reactor's watch and polls the socket itself, dispatching whatever
//! arrives, until its own reply is in. So the kernel wakes the caller directly: one wake-up per
//! sync request, and no I/O thread woken at all. Callers that find the role taken wait for the
//! reader to hand them their reply.
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::codec;
use super::command::{LanguageCode, RemotingCommand, SerializeType};
use crate::error::{Error, Result};
use crate::runtime::{self, Reactor, Readiness, Shared};

const READ_CHUNK: usize = 64 * 1024;
/// Frames parts per `sendmsg` (Linux's IOV_MAX is 1024).
const MAX_IOVECS: usize = 1024;

/// Receives the requests a connection's peer starts. Runs on the reading thread, which may be a
/// caller waiting for its own reply: it must hand the work on, never run it or block.
pub trait RequestHandler: Send + Sync {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand);
}

/// Where a response goes.
enum Waiter {
    /// A thread waiting in `invoke_blocking`.
    Blocking(Arc<BlockingSlot>),
    /// An async `invoke`.
    Async(oneshot::Sender<Result<RemotingCommand>>),
    /// `invoke_with_callback`: no task waits; the deadline is watched by the connection's sweep.
    Callback(Box<CallbackWaiter>),
}

type AnswerFn = Box<dyn FnOnce(Result<RemotingCommand>) + Send>;

struct CallbackWaiter {
    deadline: Instant,
    started: Instant,
    code: i32,
    /// Who started it (a producer), so it can cancel what it started.
    owner: u64,
    answer: AnswerFn,
}

impl Waiter {
    fn complete(self, result: Result<RemotingCommand>) {
        match self {
            Waiter::Blocking(slot) => slot.fill(result),
            Waiter::Async(tx) => {
                let _ = tx.send(result);
            }
            Waiter::Callback(w) => (w.answer)(result),
        }
    }
}

/// Hashes the opaques of the pending table: process-wide sequence numbers, chosen by us, so
/// a multiplicative spread is enough (SipHash cost about as much as the rest of the lookup).
#[derive(Default)]
struct OpaqueHasher(u64);

impl Hasher for OpaqueHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, n: i32) {
        self.0 = (n as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// How often the sweep looks for callback requests past their deadline, while any wait.
const SWEEP_INTERVAL: Duration = Duration::from_millis(10);

struct BlockingSlot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<RemotingCommand>>,
    /// A thread sleeps on `ready`; when the caller filled its own slot, nobody does, and the
    /// notify (a futex syscall) is skipped.
    sleeping: bool,
}

thread_local! {
    static THREAD_SLOT: Arc<BlockingSlot> = Arc::new(BlockingSlot::new());
}

impl BlockingSlot {
    fn new() -> BlockingSlot {
        BlockingSlot {
            state: Mutex::new(SlotState::default()),
            ready: Condvar::new(),
        }
    }

    /// The calling thread's slot, reused from call to call, unless something still holds it
    /// (a reader that took the waiter and has yet to fill it after we timed out): then a new one,
    /// so a late reply can never be read as the answer to the next request.
    fn for_this_thread() -> Arc<BlockingSlot> {
        THREAD_SLOT
            .try_with(|slot| {
                if Arc::strong_count(slot) == 1 {
                    let mut st = slot.state.lock();
                    st.result = None;
                    st.sleeping = false;
                    drop(st);
                    Some(Arc::clone(slot))
                } else {
                    None
                }
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(BlockingSlot::new()))
    }

    fn fill(&self, result: Result<RemotingCommand>) {
        let mut st = self.state.lock();
        st.result = Some(result);
        if st.sleeping {
            self.ready.notify_one();
        }
    }

    fn is_filled(&self) -> bool {
        self.state.lock().result.is_some()
    }

    fn take(&self) -> Option<Result<RemotingCommand>> {
        self.state.lock().result.take()
    }

    fn wait_until(&self, deadline: Instant) -> Option<Result<RemotingCommand>> {
        let mut st = self.state.lock();
        loop {
            if let Some(r) = st.result.take() {
                st.sleeping = false;
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline {
                st.sleeping = false;
                return None;
            }
            st.sleeping = true;
            self.ready.wait_until(&mut st, deadline);
        }
    }
}

#[derive(Default)]
struct WriteQueue {
    frames: VecDeque<Bytes>,
    /// Set once the connection failed; later writers get the reason.
    failed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Nobody reads; the reactor watches the socket.
    Nobody,
    Reactor,
    /// A blocking caller polls the socket itself.
    Caller,
}

struct ReadState {
    reader: Reader,
    /// Bytes read but not yet decoded; passed from reader to reader.
    buf: BytesMut,
}

pub struct Connection {
    addr: String,
    /// The process that opened it: a forked child shares the socket and the epoll set with the
    /// parent and must not shut either down.
    pid: u32,
    me: Weak<Connection>,
    reactor: Arc<Reactor>,
    stream: OwnedFd,
    /// A second fd on the same socket, registered for write readiness on its own.
    write_fd: OwnedFd,
    token: u64,
    ser: SerializeType,
    queue: Mutex<WriteQueue>,
    read: Mutex<ReadState>,
    pending: Mutex<HashMap<i32, Waiter, BuildHasherDefault<OpaqueHasher>>>,
    closed: AtomicBool,
    /// When the socket last gave data, in ns since `born`: a request that times out on a
    /// connection silent all the while closes it (`close_if_silent`).
    last_read: AtomicU64,
    born: Instant,
    /// The peer answered GO_AWAY: no new requests go here; the ones in flight finish and the
    /// connection closes when its last user lets go of it.
    going_away: AtomicBool,
    handler: Arc<dyn RequestHandler>,
    /// Language code written in place of each command's own; NO_LANGUAGE: the command's.
    language: AtomicU8,
    /// A sweep task watches the deadlines of callback requests (set and cleared under the
    /// `pending` lock).
    sweeping: AtomicBool,
    runtime: tokio::runtime::Handle,
    /// ACL credentials every request is signed with, once set.
    credentials: OnceLock<Arc<super::acl::Credentials>>,
}

const NO_LANGUAGE: u8 = u8::MAX;

impl Connection {
    /// Connects and registers the socket with the reactor of `shared`.
    pub async fn connect(
        shared: &Shared,
        addr: &str,
        timeout: Duration,
        ser: SerializeType,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Arc<Connection>> {
        let stream = dial_tcp(addr, timeout).await?;
        // Leaves tokio's reactor; stays non-blocking.
        let stream = stream.into_std().map_err(|e| connect_error(addr, e))?;
        Self::start(shared, addr.to_string(), stream.into(), ser, handler)
            .map_err(|e| connect_error(addr, e))
    }

    /// A connection over `socket` (a connected TCP socket, or one end of the socket pair that a
    /// TLS session is pumped through), registered with the reactor of `shared`.
    pub(crate) fn start(
        shared: &Shared,
        addr: String,
        socket: OwnedFd,
        ser: SerializeType,
        handler: Arc<dyn RequestHandler>,
    ) -> io::Result<Arc<Connection>> {
        set_nonblocking(&socket)?;
        let write_fd = socket.try_clone()?;
        let stream = socket;
        let reactor = Arc::clone(shared.reactor());
        let conn = Arc::new_cyclic(|me| Connection {
            addr,
            pid: shared.pid(),
            me: me.clone(),
            token: reactor.new_token(),
            reactor,
            stream,
            write_fd,
            ser,
            queue: Mutex::new(WriteQueue::default()),
            read: Mutex::new(ReadState {
                reader: Reader::Nobody,
                buf: BytesMut::with_capacity(READ_CHUNK),
            }),
            pending: Mutex::new(HashMap::default()),
            closed: AtomicBool::new(false),
            going_away: AtomicBool::new(false),
            last_read: AtomicU64::new(0),
            born: Instant::now(),
            handler,
            language: AtomicU8::new(NO_LANGUAGE),
            sweeping: AtomicBool::new(false),
            runtime: shared.handle().clone(),
            credentials: OnceLock::new(),
        });
        conn.reactor.register(
            conn.token,
            conn.me.clone() as Weak<dyn Readiness>,
            conn.fd(),
            conn.write_fd.as_raw_fd(),
        )?;
        Ok(conn)
    }

    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The peer said GO_AWAY (it is shutting down gracefully): see `mark_going_away`.
    pub fn is_going_away(&self) -> bool {
        self.going_away.load(Ordering::Acquire)
    }

    /// Takes the connection out of service after the peer answered GO_AWAY: the client hands it
    /// to no new request, the requests in flight on it still get their answers, and it closes
    /// when the last of them drops it (`Drop`).
    pub fn mark_going_away(&self) {
        if !self.going_away.swap(true, Ordering::AcqRel) {
            crate::log_info!(
                "rmq::remoting",
                "{} is going away: new requests go over a new connection",
                self.addr
            );
        }
    }

    /// Number of requests waiting for a response (for tests and diagnostics).
    pub fn pending_count(&self) -> usize {
        self.pending.lock().len()
    }

    /// Closes the socket and fails every waiter.
    pub fn close(&self, reason: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if runtime::check_pid(self.pid).is_err() {
            return;
        }
        if reason == "client shut down" || reason == "connection dropped" {
            crate::log_debug!(
                "rmq::remoting",
                "connection to {} closed: {reason}",
                self.addr
            );
        } else {
            crate::log_warn!(
                "rmq::remoting",
                "connection to {} lost: {reason}",
                self.addr
            );
        }
        self.queue.lock().failed = Some(reason.to_string());
        // Wakes a caller polling the socket and tells the peer; the fds close on drop.
        // SAFETY: the fd is owned by `self.stream`, open for the duration of the call.
        unsafe { libc::shutdown(self.fd(), libc::SHUT_RDWR) };
        self.reactor
            .deregister(self.token, self.fd(), self.write_fd.as_raw_fd());
        let waiters: Vec<Waiter> = self.pending.lock().drain().map(|(_, w)| w).collect();
        crate::executor::batched(|| {
            for w in waiters {
                w.complete(Err(self.closed_error(reason)));
            }
        });
    }

    /// A request sent at `started` got no answer in time. If nothing at all came from the peer
    /// since, the connection is taken for dead and closed, failing what else waits on it, so
    /// the next request dials again: a peer that hung, a half-open TCP connection or a frame cut
    /// short by a middlebox otherwise keeps every later request timing out on this connection
    /// for good (nothing else ever closes it). The Java client closes on any sync timeout
    /// (`clientCloseSocketIfTimeout`); a connection that still delivers (a slow broker answering
    /// pipelined requests late) stays open here.
    /// Only the last request waiting closes it: the others, sent a moment later, time out as
    /// they would have, instead of failing as closed.
    fn close_if_silent(&self, started: Instant) {
        let since = started.saturating_duration_since(self.born).as_nanos() as u64;
        if self.last_read.load(Ordering::Acquire) < since && self.pending.lock().is_empty() {
            self.close(&format!(
                "nothing received for {} ms while a request waited",
                started.elapsed().as_millis()
            ));
        }
    }

    fn closed_error(&self, reason: &str) -> Error {
        Error::ConnectionClosed {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    /// "no response from ADDR to SEND_MESSAGE_V2 (310) within 3000 ms": the time the request
    /// was given, in whole milliseconds.
    fn timeout_error(&self, cmd: &RemotingCommand, started: Instant, deadline: Instant) -> Error {
        Error::Timeout(format!(
            "no response from {} to {} within {} ms",
            self.addr,
            crate::protocol::code::describe_request(cmd.code),
            deadline.saturating_duration_since(started).as_millis()
        ))
    }

    /// Sends a request and waits for its response until `deadline`. The one implementation for
    /// both kinds of caller: a thread driving the future with `runtime::block_on` writes the
    /// request and reads its own reply right here (one wake-up, no I/O thread involved); an
    /// async caller awaits a reply that the reader hands over. Dropping the future forgets the
    /// request.
    pub async fn invoke(
        &self,
        cmd: &RemotingCommand,
        deadline: Instant,
    ) -> Result<RemotingCommand> {
        let started = Instant::now();
        if runtime::on_blocking_driver() {
            return self.invoke_on_caller_thread(cmd, started, deadline);
        }
        let (tx, rx) = oneshot::channel();
        self.register(cmd.opaque, Waiter::Async(tx))?;
        let guard = PendingGuard {
            conn: self,
            opaque: cmd.opaque,
        };
        self.send_command_queued(cmd)?;
        let result = match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.closed_error("connection dropped the request")),
            Err(_) => {
                drop(guard);
                self.close_if_silent(started);
                return Err(self.timeout_error(cmd, started, deadline));
            }
        };
        drop(guard);
        result
    }

    /// Sends a request without waiting: `answer` is called exactly once with the response, or
    /// with the error that ended the request (the deadline passed, the connection closed, the
    /// write failed; also right here, when it cannot be sent). It is called on the thread that
    /// reads the response, the runtime's or a blocking caller's, so it must hand any work on
    /// and never block. The frame joins the write queue (see `send_command_queued`).
    pub fn invoke_with_callback(
        &self,
        cmd: &RemotingCommand,
        deadline: Instant,
        owner: u64,
        answer: impl FnOnce(Result<RemotingCommand>) + Send + 'static,
    ) {
        let waiter = CallbackWaiter {
            deadline,
            started: Instant::now(),
            code: cmd.code,
            owner,
            answer: Box::new(answer),
        };
        if let Err((e, w)) = self.register_or_return(cmd.opaque, Waiter::Callback(Box::new(waiter)))
        {
            w.complete(Err(e));
            return;
        }
        self.watch_deadlines();
        if let Err(e) = self.send_command_queued(cmd) {
            if let Some(w) = self.pending.lock().remove(&cmd.opaque) {
                w.complete(Err(e));
            }
        }
    }

    /// Starts the sweep of callback deadlines unless one runs. It ends once no callback
    /// request waits, so an idle connection has no timer.
    fn watch_deadlines(&self) {
        {
            let _pending = self.pending.lock();
            if self.sweeping.swap(true, Ordering::AcqRel) {
                return;
            }
        }
        let me = self.me.clone();
        self.runtime.spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                let Some(conn) = me.upgrade() else { return };
                if !conn.sweep_expired() {
                    return;
                }
            }
        });
    }

    /// Fails the callback requests past their deadline. False (and the sweep flag cleared)
    /// when no callback request is left.
    fn sweep_expired(&self) -> bool {
        let now = Instant::now();
        let (expired, left) = {
            let mut pending = self.pending.lock();
            let due: Vec<i32> = pending
                .iter()
                .filter_map(|(opaque, w)| match w {
                    Waiter::Callback(c) if c.deadline <= now => Some(*opaque),
                    _ => None,
                })
                .collect();
            let expired: Vec<Waiter> = due.iter().filter_map(|o| pending.remove(o)).collect();
            let left = pending.values().any(|w| matches!(w, Waiter::Callback(_)));
            if !left {
                self.sweeping.store(false, Ordering::Release);
            }
            (expired, left)
        };
        let oldest = expired
            .iter()
            .filter_map(|w| match w {
                Waiter::Callback(c) => Some(c.started),
                _ => None,
            })
            .min();
        if !expired.is_empty() {
            crate::executor::batched(|| {
                for w in expired {
                    if let Waiter::Callback(c) = w {
                        let e = Error::Timeout(format!(
                            "no response from {} to {} within {} ms",
                            self.addr,
                            crate::protocol::code::describe_request(c.code),
                            c.deadline.saturating_duration_since(c.started).as_millis()
                        ));
                        (c.answer)(Err(e));
                    }
                }
            });
        }
        if let Some(started) = oldest {
            self.close_if_silent(started);
        }
        left
    }

    /// Fails the callback requests `owner` started that still wait, with `error()`.
    pub fn cancel_callbacks(&self, owner: u64, error: &dyn Fn() -> Error) {
        let cancelled: Vec<Waiter> = {
            let mut pending = self.pending.lock();
            let mine: Vec<i32> = pending
                .iter()
                .filter_map(|(opaque, w)| match w {
                    Waiter::Callback(c) if c.owner == owner => Some(*opaque),
                    _ => None,
                })
                .collect();
            mine.iter().filter_map(|o| pending.remove(o)).collect()
        };
        crate::executor::batched(|| {
            for w in cancelled {
                w.complete(Err(error()));
            }
        });
    }

    /// `invoke` driven on the calling thread (outside any async runtime).
    pub fn invoke_blocking(
        &self,
        shared: &Shared,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let deadline = Instant::now() + timeout;
        runtime::block_on(shared, "invoke", self.invoke(cmd, deadline))?
    }

    fn invoke_on_caller_thread(
        &self,
        cmd: &RemotingCommand,
        started: Instant,
        deadline: Instant,
    ) -> Result<RemotingCommand> {
        let slot = BlockingSlot::for_this_thread();
        self.register(cmd.opaque, Waiter::Blocking(Arc::clone(&slot)))?;
        // Take the read role before writing, so nobody else can pick up the reply.
        let lead = self.try_take_read_role();
        if let Err(e) = self.send_command(cmd) {
            self.pending.lock().remove(&cmd.opaque);
            if let Some(buf) = lead {
                self.release_read_role(buf);
            }
            return Err(e);
        }
        if let Some(mut buf) = lead {
            self.read_until_filled(&slot, &mut buf, deadline);
            self.release_read_role(buf);
        }
        match slot.wait_until(deadline) {
            Some(r) => r,
            None => {
                // The response may have raced in; prefer it over a timeout.
                if self.pending.lock().remove(&cmd.opaque).is_none() {
                    if let Some(r) = slot.take() {
                        return r;
                    }
                }
                self.close_if_silent(started);
                Err(self.timeout_error(cmd, started, deadline))
            }
        }
    }

    /// Sends a request that gets no response.
    pub fn invoke_oneway(&self, cmd: &RemotingCommand) -> Result<()> {
        debug_assert!(cmd.is_oneway());
        self.send_command(cmd)
    }

    fn register(&self, opaque: i32, waiter: Waiter) -> Result<()> {
        self.register_or_return(opaque, waiter).map_err(|(e, _)| e)
    }

    /// `register`, giving the waiter back when the connection is closed.
    fn register_or_return(
        &self,
        opaque: i32,
        waiter: Waiter,
    ) -> std::result::Result<(), (Error, Waiter)> {
        if self.is_closed() {
            return Err((
                self.closed_error("closed before the request was sent"),
                waiter,
            ));
        }
        self.pending.lock().insert(opaque, waiter);
        // close() may have drained the table between the check and the insert.
        if self.is_closed() {
            if let Some(w) = self.pending.lock().remove(&opaque) {
                w.complete(Err(self.closed_error("closed before the request was sent")));
            }
        }
        Ok(())
    }

    // ---- reading ---------------------------------------------------------------------------

    /// The read role for a blocking caller, if nobody holds it; the socket leaves the
    /// reactor's watch.
    fn try_take_read_role(&self) -> Option<BytesMut> {
        let mut st = self.read.lock();
        if st.reader != Reader::Nobody || self.is_closed() {
            return None;
        }
        self.reactor.disarm_read(self.token, self.fd()).ok()?;
        st.reader = Reader::Caller;
        Some(std::mem::take(&mut st.buf))
    }

    /// Hands the read role back and puts the socket back under the reactor's watch.
    fn release_read_role(&self, buf: BytesMut) {
        let mut st = self.read.lock();
        st.buf = buf;
        st.reader = Reader::Nobody;
        if !self.is_closed() {
            if let Err(e) = self.reactor.arm_read(self.token, self.fd()) {
                drop(st);
                self.close(&format!("cannot watch the socket: {e}"));
            }
        }
    }

    /// The reactor saw data. Ignored when a caller holds the read role (it re-arms when done).
    fn handle_readable(&self) {
        let mut buf = {
            let mut st = self.read.lock();
            if st.reader != Reader::Nobody {
                return;
            }
            st.reader = Reader::Reactor;
            std::mem::take(&mut st.buf)
        };
        self.read_available(&mut buf);
        self.release_read_role(buf);
    }

    /// As the reader, polls the socket until `slot` is filled, the deadline passes or the
    /// connection ends, dispatching every frame that arrives.
    fn read_until_filled(&self, slot: &BlockingSlot, buf: &mut BytesMut, deadline: Instant) {
        loop {
            if slot.is_filled() || self.is_closed() {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wait_ms =
                ((deadline - now).as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    self.close(&format!("poll failed: {e}"));
                    return;
                }
            } else if ready > 0 && !self.read_available(buf) {
                return;
            }
        }
    }

    /// Reads what the socket has and dispatches every complete frame. False once the
    /// connection has ended.
    fn read_available(&self, buf: &mut BytesMut) -> bool {
        loop {
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            let len = buf.len();
            let room = buf.capacity() - len;
            // SAFETY: the kernel writes at most `room` bytes into the spare capacity; only the
            // bytes it reports are exposed with set_len.
            let n = unsafe { libc::recv(self.fd(), buf.as_mut_ptr().add(len).cast(), room, 0) };
            if n > 0 {
                unsafe { buf.set_len(len + n as usize) };
                self.last_read
                    .store(self.born.elapsed().as_nanos() as u64, Ordering::Release);
                // The callbacks of all the answers in this read reach their executors in one
                // hand-over: one wake-up per batch, not per answer.
                if !crate::executor::batched(|| self.dispatch_frames(buf)) {
                    return false;
                }
                // A short read drained the socket; the watch is level-triggered, so anything
                // newer is reported again.
                if (n as usize) < room {
                    return true;
                }
                continue;
            }
            if n == 0 {
                self.close("peer closed the connection");
                return false;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return true,
                io::ErrorKind::Interrupted => continue,
                _ => {
                    self.close(&format!("read failed: {e}"));
                    return false;
                }
            }
        }
    }

    fn dispatch_frames(&self, buf: &mut BytesMut) -> bool {
        loop {
            match codec::decode_frame(buf) {
                Ok(Some(cmd)) => self.dispatch(cmd),
                Ok(None) => return true,
                // The Java peer closes on a decode error too: the stream cannot resync.
                Err(e) => {
                    self.close(&format!("undecodable frame: {e}"));
                    return false;
                }
            }
        }
    }

    fn dispatch(&self, cmd: RemotingCommand) {
        if cmd.is_response() {
            // Marked here, whoever waits: callback requests (the producer's inline first
            // attempt) see the code as a retryable answer and must not reuse this connection.
            if cmd.code == crate::protocol::code::response::GO_AWAY {
                self.mark_going_away();
            }
            let waiter = self.pending.lock().remove(&cmd.opaque);
            // A response nobody waits for (timed out, abandoned) is dropped, as in Java.
            if let Some(w) = waiter {
                w.complete(Ok(cmd));
            }
            return;
        }
        // Requests the peer starts go to the handler, which queues them for an executor: the
        // reading thread may be a caller waiting for its own reply and must not run them.
        if let Some(me) = self.me.upgrade() {
            self.handler.handle(&me, cmd);
        }
    }

    // ---- writing ---------------------------------------------------------------------------

    pub(crate) fn send_command(&self, cmd: &RemotingCommand) -> Result<()> {
        // Requests carry the ACL signature; responses (to broker checks) are not signed.
        if let Some(credentials) = self.credentials.get() {
            if !cmd.is_response() {
                return self.send_encoded(&credentials.sign(cmd));
            }
        }
        self.send_encoded(cmd)
    }

    /// `send_command` for a caller that does not wait for the write: the frame joins the write
    /// queue, and the reactor thread, woken once for all the frames queued meanwhile, writes
    /// them in one `sendmsg`. Async sends go this way, so that under load many frames leave in
    /// one system call instead of one each.
    pub(crate) fn send_command_queued(&self, cmd: &RemotingCommand) -> Result<()> {
        if let Some(credentials) = self.credentials.get() {
            if !cmd.is_response() {
                let signed = credentials.sign(cmd);
                let (head, body) = self.encode(&signed)?;
                return self.queue_frame(head, body);
            }
        }
        let (head, body) = self.encode(cmd)?;
        self.queue_frame(head, body)
    }

    fn send_encoded(&self, cmd: &RemotingCommand) -> Result<()> {
        let (head, body) = self.encode(cmd)?;
        self.send_frame(head, body)
    }

    fn encode(&self, cmd: &RemotingCommand) -> Result<(BytesMut, Bytes)> {
        // Codes beyond 16 bits (5.x POP) only fit the JSON header.
        let ser = match self.ser {
            SerializeType::RocketMq if !codec::fits_binary_header(cmd) => SerializeType::Json,
            ser => ser,
        };
        let head = match self.language.load(Ordering::Relaxed) {
            NO_LANGUAGE => codec::encode_head(cmd, ser)?,
            code => codec::encode_head_as(cmd, ser, LanguageCode(code))?,
        };
        Ok((head, cmd.body.clone()))
    }

    /// Every request written from now on is signed with `credentials` (ACL); set once.
    pub fn set_credentials(&self, credentials: Arc<super::acl::Credentials>) {
        let _ = self.credentials.set(credentials);
    }

    /// Every command written from now on says it comes from `language` (client.language).
    pub fn set_language(&self, language: LanguageCode) {
        self.language.store(language.0, Ordering::Relaxed);
    }

    /// Writes a frame (header + body) directly if nothing is queued, else queues it.
    /// The head stays a `BytesMut` unless it has to be queued: freezing costs an allocation.
    fn send_frame(&self, mut head: BytesMut, mut body: Bytes) -> Result<()> {
        let mut q = self.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(self.closed_error(reason));
        }
        if !q.frames.is_empty() {
            q.frames.push_back(head.freeze());
            q.frames.push_back(body);
            return Ok(());
        }
        while !head.is_empty() || !body.is_empty() {
            match send_vectored(self.fd(), &[IoSlice::new(&head), IoSlice::new(&body)]) {
                Ok(n) => advance_pair(&mut head, &mut body, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    drop(q);
                    self.close(&format!("write failed: {e}"));
                    return Err(Error::Io {
                        addr: self.addr.clone(),
                        source: e,
                    });
                }
            }
        }
        if head.is_empty() && body.is_empty() {
            return Ok(());
        }
        q.frames.push_back(head.freeze());
        q.frames.push_back(body);
        if let Err(e) = self
            .reactor
            .arm_write(self.token, self.write_fd.as_raw_fd())
        {
            drop(q);
            self.close(&format!("cannot watch the socket: {e}"));
        }
        Ok(())
    }

    /// Queues a frame for the reactor thread to write; the first frame of an empty queue asks
    /// the reactor for a write-readiness event (the flush), later ones ride along with it.
    fn queue_frame(&self, head: BytesMut, body: Bytes) -> Result<()> {
        let mut q = self.queue.lock();
        if let Some(reason) = &q.failed {
            return Err(self.closed_error(reason));
        }
        let first = q.frames.is_empty();
        q.frames.push_back(head.freeze());
        if !body.is_empty() {
            q.frames.push_back(body);
        }
        if first {
            if let Err(e) = self
                .reactor
                .arm_write(self.token, self.write_fd.as_raw_fd())
            {
                drop(q);
                self.close(&format!("cannot watch the socket: {e}"));
            }
        }
        Ok(())
    }

    /// The reactor saw room in the send buffer: flush the queue, re-arm if it is not empty.
    fn handle_writable(&self) {
        let mut q = self.queue.lock();
        loop {
            q.frames.retain(|b| !b.is_empty());
            if q.frames.is_empty() || q.failed.is_some() {
                return;
            }
            let slices: Vec<IoSlice<'_>> = q
                .frames
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            match send_vectored(self.fd(), &slices) {
                Ok(n) => {
                    drop(slices);
                    consume(&mut q.frames, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(slices);
                    if let Err(e) = self
                        .reactor
                        .arm_write(self.token, self.write_fd.as_raw_fd())
                    {
                        drop(q);
                        self.close(&format!("cannot watch the socket: {e}"));
                    }
                    return;
                }
                Err(e) => {
                    drop(slices);
                    drop(q);
                    self.close(&format!("write failed: {e}"));
                    return;
                }
            }
        }
    }
}

impl Readiness for Connection {
    fn on_readable(&self) {
        self.handle_readable();
    }

    fn on_writable(&self) {
        self.handle_writable();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close("connection dropped");
    }
}

/// Removes an async request from the table when its future completes or is dropped.
struct PendingGuard<'a> {
    conn: &'a Connection,
    opaque: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.conn.pending.lock().remove(&self.opaque);
    }
}

/// writev that never raises SIGPIPE: a host program (C, Go) may not ignore that signal, and a
/// peer that hung up must be an error, not the end of the process.
fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: IoSlice is ABI-compatible with iovec; msghdr points at it for the call only.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn advance_pair(head: &mut BytesMut, body: &mut Bytes, mut n: usize) {
    let h = n.min(head.len());
    head.advance(h);
    n -= h;
    body.advance(n.min(body.len()));
}

fn consume(frames: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let front = frames.front_mut().expect("wrote more than was queued");
        if front.len() <= n {
            n -= front.len();
            frames.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

/// A TCP connection to `addr` (IP literals, IPv6 ones also without brackets, are dialled as
/// they are; names resolve), with Nagle off, within `timeout`.
pub(crate) async fn dial_tcp(addr: &str, timeout: Duration) -> Result<tokio::net::TcpStream> {
    let dial = async {
        match super::addr::ip_socket_addr(addr) {
            Some(ip) => tokio::net::TcpStream::connect(ip).await,
            None => tokio::net::TcpStream::connect(addr).await,
        }
    };
    let stream = match tokio::time::timeout(timeout, dial).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(connect_error(addr, e)),
        Err(_) => {
            return Err(Error::Connect {
                addr: addr.to_string(),
                reason: format!("no answer within {} ms", timeout.as_millis()),
            })
        }
    };
    stream
        .set_nodelay(true)
        .map_err(|e| connect_error(addr, e))?;
    Ok(stream)
}

pub(crate) fn connect_error(addr: &str, e: impl std::fmt::Display) -> Error {
    Error::Connect {
        addr: addr.to_string(),
        reason: e.to_string(),
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, for the duration of the calls.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    struct NoRequests;
    impl RequestHandler for NoRequests {
        fn handle(&self, _: &Arc<Connection>, _: RemotingCommand) {}
    }

    /// A connection to a loopback peer that reads nothing and answers nothing; the peer's end
    /// must be kept alive by the caller.
    fn connected_to_silent_peer() -> (Arc<Connection>, String, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = runtime::shared().unwrap();
        let conn = runtime::handle()
            .block_on(Connection::connect(
                &shared,
                &addr,
                Duration::from_secs(5),
                SerializeType::RocketMq,
                Arc::new(NoRequests),
            ))
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        (conn, addr, peer)
    }

    /// A callback request to a peer that never answers fails with a timeout from the sweep,
    /// exactly once, and leaves nothing pending (so the sweep ends).
    #[test]
    fn a_callback_request_without_an_answer_times_out() {
        let (conn, addr, _peer) = connected_to_silent_peer();
        let (tx, rx) = std::sync::mpsc::channel();
        let cmd = RemotingCommand::request(310, super::super::command::ExtFields::default());
        let deadline = Instant::now() + Duration::from_millis(30);
        conn.invoke_with_callback(&cmd, deadline, 7, move |r| tx.send(r).unwrap());
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            matches!(&r, Err(Error::Timeout(m)) if m.contains(&addr)),
            "{r:?}"
        );
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err(), "once");
        assert_eq!(conn.pending_count(), 0);
    }

    /// Cancelling an owner's callback requests fails them at once; another owner's stay.
    #[test]
    fn cancelling_fails_only_the_owners_callback_requests() {
        let (conn, _addr, _peer) = connected_to_silent_peer();
        let (tx, rx) = std::sync::mpsc::channel();
        let far = Instant::now() + Duration::from_secs(600);
        for owner in [1u64, 2] {
            let tx = tx.clone();
            let cmd = RemotingCommand::request(310, super::super::command::ExtFields::default());
            conn.invoke_with_callback(&cmd, far, owner, move |r| tx.send((owner, r)).unwrap());
        }
        conn.cancel_callbacks(1, &|| Error::Cancelled("test".into()));
        let (owner, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(owner, 1);
        assert!(matches!(r, Err(Error::Cancelled(_))), "{r:?}");
        assert_eq!(conn.pending_count(), 1);
        conn.close("test over");
        let (owner, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(owner, 2);
        assert!(matches!(r, Err(Error::ConnectionClosed { .. })), "{r:?}");
    }

    /// A host program (C, Go) may leave SIGPIPE at its default action, which ends the process.
    /// This restores the default (Rust test binaries ignore SIGPIPE) and writes into a socket
    /// whose peer has reset it: the write must come back as an error, not a signal.
    #[test]
    fn writing_to_a_reset_peer_is_an_error_not_sigpipe() {
        // SAFETY: changes a signal disposition; nothing in this binary relies on SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        drop(theirs);
        let data = [7u8; 1024];
        // the first write reaches a closed socket and draws a reset...
        let _ = send_vectored(ours.as_raw_fd(), &[IoSlice::new(&data)]);
        std::thread::sleep(Duration::from_millis(100));
        // ...the next one fails: EPIPE, which without MSG_NOSIGNAL also raises SIGPIPE
        let err = send_vectored(ours.as_raw_fd(), &[IoSlice::new(&data)]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
    }
}
