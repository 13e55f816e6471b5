//! A private epoll set for connection sockets, itself registered with tokio.
//!
//! Why not register sockets with tokio directly: every socket in tokio's epoll set wakes the I/O
//! thread when data arrives, even if a blocking caller is about to read that data itself. Here a
//! socket's read interest is one-shot and can be disarmed, so a caller that waits for its own
//! reply takes the socket out of the watch and is woken by the kernel alone. Nested epoll keeps
//! one I/O thread: tokio polls this set's fd, and a task drains the events.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;

const READ: u64 = 0;
const WRITE: u64 = 1;
const READ_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLONESHOT) as u32;

struct EpollFd(OwnedFd);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// What the reactor tells a watched socket's owner.
pub(crate) trait Readiness: Send + Sync {
    fn on_readable(&self);
    fn on_writable(&self);
}

pub(crate) struct Reactor {
    epoll: Arc<EpollFd>,
    connections: Mutex<HashMap<u64, Weak<dyn Readiness>>>,
    next_token: AtomicU64,
}

impl Reactor {
    /// Makes the epoll set and starts the task that drains it. Errors (no file descriptors) are
    /// returned, never turned into a panic, so a later call can try again.
    pub fn start(rt: &Handle) -> io::Result<Arc<Reactor>> {
        // SAFETY: epoll_create1 returns a new fd we own, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is valid and owned by nobody else.
        let epoll = Arc::new(EpollFd(unsafe { OwnedFd::from_raw_fd(fd) }));
        let afd = {
            let _enter = rt.enter();
            // SAFETY: the epoll fd stays open while the AsyncFd exists: both hold the Arc.
            unsafe {
                AsyncFd::register_with_interest(EpollRef(Arc::clone(&epoll)), Interest::READABLE)?
            }
        };
        let reactor = Arc::new(Reactor {
            epoll,
            connections: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        });
        rt.spawn(run(Arc::downgrade(&reactor), afd));
        Ok(reactor)
    }

    pub fn new_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a connection's read fd (armed) and write fd (disarmed) under `token`.
    pub fn register(
        &self,
        token: u64,
        conn: Weak<dyn Readiness>,
        read_fd: RawFd,
        write_fd: RawFd,
    ) -> io::Result<()> {
        self.connections.lock().insert(token, conn);
        self.ctl(libc::EPOLL_CTL_ADD, read_fd, READ_EVENTS, token << 1 | READ)?;
        self.ctl(libc::EPOLL_CTL_ADD, write_fd, 0, token << 1 | WRITE)
    }

    pub fn deregister(&self, token: u64, read_fd: RawFd, write_fd: RawFd) {
        self.connections.lock().remove(&token);
        let _ = self.ctl(libc::EPOLL_CTL_DEL, read_fd, 0, 0);
        let _ = self.ctl(libc::EPOLL_CTL_DEL, write_fd, 0, 0);
    }

    /// Watch for incoming data again (one event, then disarmed).
    pub fn arm_read(&self, token: u64, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, READ_EVENTS, token << 1 | READ)
    }

    /// Stop watching for incoming data: a caller is reading the socket itself.
    pub fn disarm_read(&self, token: u64, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, 0, token << 1 | READ)
    }

    /// Watch for room in the send buffer (one event).
    pub fn arm_write(&self, token: u64, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, WRITE_EVENTS, token << 1 | WRITE)
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: plain syscall on fds we own; ev lives across the call.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn connection(&self, token: u64) -> Option<Arc<dyn Readiness>> {
        self.connections.lock().get(&token)?.upgrade()
    }
}

/// Drains the private epoll set whenever tokio reports it readable.
async fn run(reactor: Weak<Reactor>, afd: AsyncFd<EpollRef>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        let Ok(mut guard) = afd.readable().await else {
            return;
        };
        let Some(reactor) = reactor.upgrade() else {
            return;
        };
        loop {
            // SAFETY: events has room for len entries; timeout 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(
                    afd.get_ref().as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    0,
                )
            };
            if n <= 0 {
                break;
            }
            for ev in &events[..n as usize] {
                let data = ev.u64;
                let Some(conn) = reactor.connection(data >> 1) else {
                    continue;
                };
                if data & 1 == READ {
                    conn.on_readable();
                } else {
                    conn.on_writable();
                }
            }
        }
        guard.clear_ready();
    }
}

/// The epoll fd as tokio sees it; the reactor and this task share it.
struct EpollRef(Arc<EpollFd>);

impl AsRawFd for EpollRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
