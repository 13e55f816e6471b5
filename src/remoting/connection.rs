//! One TCP connection to a name server or broker, shared by all requests (pipelined, matched by
//! opaque).
//!
//! Writes: any thread (a foreign caller or a runtime task) writes its frame straight to the
//! non-blocking socket under a short lock. Only when the kernel buffer is full do frames queue for
//! the writer task, and once something is queued everybody appends behind it, which keeps frames
//! whole and in order and coalesces them into vectored writes under load.
//! Reads: a reader task owns the read side, completes waiters by opaque and hands broker-initiated
//! requests to the processor.
//! A blocking caller therefore costs one wake-up per request: the reader waking it with the reply.
use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::codec;
use super::command::{RemotingCommand, SerializeType};
use super::processor::RequestProcessor;
use crate::error::{Error, Result};

const READ_CHUNK: usize = 64 * 1024;
const MAX_IOVECS: usize = 64;

/// Where a response goes.
enum Waiter {
    /// A thread parked in `invoke_blocking`.
    Blocking(Arc<BlockingSlot>),
    /// An async `invoke`.
    Async(oneshot::Sender<Result<RemotingCommand>>),
}

impl Waiter {
    fn complete(self, result: Result<RemotingCommand>) {
        match self {
            Waiter::Blocking(slot) => slot.fill(result),
            Waiter::Async(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

struct BlockingSlot {
    result: Mutex<Option<Result<RemotingCommand>>>,
    ready: Condvar,
}

impl BlockingSlot {
    fn fill(&self, result: Result<RemotingCommand>) {
        *self.result.lock().unwrap() = Some(result);
        self.ready.notify_one();
    }

    fn wait_until(&self, deadline: Instant) -> Option<Result<RemotingCommand>> {
        let mut guard = self.result.lock().unwrap();
        loop {
            if let Some(r) = guard.take() {
                return Some(r);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = self.ready.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

#[derive(Default)]
struct WriteQueue {
    frames: VecDeque<Bytes>,
    /// Set once the connection failed; later writers get the reason.
    failed: Option<String>,
}

pub struct Connection {
    addr: String,
    stream: TcpStream,
    ser: SerializeType,
    queue: Mutex<WriteQueue>,
    queued: Notify,
    pending: Mutex<HashMap<i32, Waiter>>,
    closed: AtomicBool,
    shutdown: Notify,
    processor: Arc<dyn RequestProcessor>,
}

impl Connection {
    /// Connects and starts the reader and writer tasks. Must run inside the runtime.
    pub async fn connect(
        addr: &str,
        timeout: Duration,
        ser: SerializeType,
        processor: Arc<dyn RequestProcessor>,
    ) -> Result<Arc<Connection>> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_err(e.to_string())),
            Err(_) => return Err(connect_err(format!("no answer within {timeout:?}"))),
        };
        stream
            .set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(Self::start(addr.to_string(), stream, ser, processor))
    }

    pub(crate) fn start(
        addr: String,
        stream: TcpStream,
        ser: SerializeType,
        processor: Arc<dyn RequestProcessor>,
    ) -> Arc<Connection> {
        let conn = Arc::new(Connection {
            addr,
            stream,
            ser,
            queue: Mutex::new(WriteQueue::default()),
            queued: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            shutdown: Notify::new(),
            processor,
        });
        tokio::spawn(Arc::clone(&conn).read_loop());
        tokio::spawn(Arc::clone(&conn).write_loop());
        conn
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Number of requests waiting for a response (for tests and diagnostics).
    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Closes the socket and fails every waiter.
    pub fn close(&self, reason: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.queue.lock().unwrap().failed = Some(reason.to_string());
        // Wake the reader (EOF) and tell the peer; the fd itself closes when the tasks let go.
        // SAFETY: the fd is owned by `self.stream` and stays open for the duration of the call.
        unsafe { libc::shutdown(self.stream.as_raw_fd(), libc::SHUT_RDWR) };
        self.shutdown.notify_waiters();
        self.queued.notify_one();
        let waiters: Vec<Waiter> = self
            .pending
            .lock()
            .unwrap()
            .drain()
            .map(|(_, w)| w)
            .collect();
        for w in waiters {
            w.complete(Err(self.closed_error(reason)));
        }
    }

    fn closed_error(&self, reason: &str) -> Error {
        Error::ConnectionClosed {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    /// Sends a request and waits for its response, from any thread outside the runtime.
    pub fn invoke_blocking(
        &self,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let deadline = Instant::now() + timeout;
        let slot = Arc::new(BlockingSlot {
            result: Mutex::new(None),
            ready: Condvar::new(),
        });
        self.register(cmd.opaque, Waiter::Blocking(Arc::clone(&slot)))?;
        if let Err(e) = self.send_command(cmd) {
            self.pending.lock().unwrap().remove(&cmd.opaque);
            return Err(e);
        }
        match slot.wait_until(deadline) {
            Some(r) => r,
            None => {
                // The response may have raced in; prefer it over a timeout.
                if self.pending.lock().unwrap().remove(&cmd.opaque).is_none() {
                    if let Some(r) = slot.result.lock().unwrap().take() {
                        return r;
                    }
                }
                Err(self.timeout_error(cmd, timeout))
            }
        }
    }

    /// Sends a request and awaits its response. Dropping the future forgets the request.
    pub async fn invoke(
        &self,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let (tx, rx) = oneshot::channel();
        self.register(cmd.opaque, Waiter::Async(tx))?;
        let guard = PendingGuard {
            conn: self,
            opaque: cmd.opaque,
        };
        self.send_command(cmd)?;
        let result = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.closed_error("connection dropped the request")),
            Err(_) => Err(self.timeout_error(cmd, timeout)),
        };
        drop(guard);
        result
    }

    /// Sends a request that gets no response.
    pub fn invoke_oneway(&self, cmd: &RemotingCommand) -> Result<()> {
        debug_assert!(cmd.is_oneway());
        self.send_command(cmd)
    }

    fn timeout_error(&self, cmd: &RemotingCommand, timeout: Duration) -> Error {
        Error::Timeout(format!(
            "no response from {} to request code {} within {timeout:?}",
            self.addr, cmd.code
        ))
    }

    fn register(&self, opaque: i32, waiter: Waiter) -> Result<()> {
        if self.is_closed() {
            return Err(self.closed_error("closed before the request was sent"));
        }
        self.pending.lock().unwrap().insert(opaque, waiter);
        // close() may have drained the table between the check and the insert.
        if self.is_closed() {
            if let Some(w) = self.pending.lock().unwrap().remove(&opaque) {
                w.complete(Err(self.closed_error("closed before the request was sent")));
            }
        }
        Ok(())
    }

    pub(crate) fn send_command(&self, cmd: &RemotingCommand) -> Result<()> {
        let head = codec::encode_head(cmd, self.ser)?.freeze();
        self.send_frame(head, cmd.body.clone())
    }

    /// Writes a frame (header + body) directly if nothing is queued, else queues it.
    fn send_frame(&self, mut head: Bytes, mut body: Bytes) -> Result<()> {
        let mut q = self.queue.lock().unwrap();
        if let Some(reason) = &q.failed {
            return Err(self.closed_error(reason));
        }
        if q.frames.is_empty() {
            loop {
                if head.is_empty() && body.is_empty() {
                    return Ok(());
                }
                let slices = [IoSlice::new(&head), IoSlice::new(&body)];
                match self.stream.try_write_vectored(&slices) {
                    Ok(n) => advance_pair(&mut head, &mut body, n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        drop(q);
                        let reason = format!("write failed: {e}");
                        self.close(&reason);
                        return Err(Error::Io {
                            addr: self.addr.clone(),
                            source: e,
                        });
                    }
                }
            }
        }
        if !head.is_empty() {
            q.frames.push_back(head);
        }
        if !body.is_empty() {
            q.frames.push_back(body);
        }
        drop(q);
        self.queued.notify_one();
        Ok(())
    }

    async fn write_loop(self: Arc<Self>) {
        loop {
            self.queued.notified().await;
            loop {
                if self.is_closed() {
                    return;
                }
                if self.queue.lock().unwrap().frames.is_empty() {
                    break;
                }
                if let Err(e) = self.stream.writable().await {
                    self.close(&format!("socket not writable: {e}"));
                    return;
                }
                let mut q = self.queue.lock().unwrap();
                let slices: Vec<IoSlice<'_>> = q
                    .frames
                    .iter()
                    .take(MAX_IOVECS)
                    .map(|b| IoSlice::new(b))
                    .collect();
                match self.stream.try_write_vectored(&slices) {
                    Ok(n) => {
                        drop(slices);
                        consume(&mut q.frames, n);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
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

    async fn read_loop(self: Arc<Self>) {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let reason = loop {
            loop {
                match codec::decode_frame(&mut buf) {
                    Ok(Some(cmd)) => self.dispatch(cmd),
                    Ok(None) => break,
                    // The Java peer closes on a decode error too: the stream cannot resync.
                    Err(e) => {
                        self.close(&format!("undecodable frame: {e}"));
                        return;
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            let shutdown = self.shutdown.notified();
            tokio::pin!(shutdown);
            shutdown.as_mut().enable();
            if self.is_closed() {
                return;
            }
            tokio::select! {
                ready = self.stream.readable() => {
                    if let Err(e) = ready {
                        break format!("read failed: {e}");
                    }
                }
                _ = self.shutdown.notified() => return,
            }
            match self.stream.try_read_buf(&mut buf) {
                Ok(0) => break "peer closed the connection".to_string(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break format!("read failed: {e}"),
            }
            if self.is_closed() {
                return;
            }
        };
        self.close(&reason);
    }

    fn dispatch(&self, cmd: RemotingCommand) {
        if cmd.is_response() {
            let waiter = self.pending.lock().unwrap().remove(&cmd.opaque);
            // A response nobody waits for (timed out, abandoned) is dropped, as in Java.
            if let Some(w) = waiter {
                w.complete(Ok(cmd));
            }
            return;
        }
        let oneway = cmd.is_oneway();
        if let Some(response) = self.processor.process(&self.addr, cmd) {
            if !oneway {
                let _ = self.send_command(&response);
            }
        }
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
        self.conn.pending.lock().unwrap().remove(&self.opaque);
    }
}

fn advance_pair(head: &mut Bytes, body: &mut Bytes, mut n: usize) {
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
