//! What every client in the process shares: one tokio runtime and the connection reactor.
//!
//! One I/O worker: on a 2-core machine a second worker mostly adds cross-thread wake-ups. Blocking
//! calls from foreign threads drive their future on the calling thread (`block_on`); on the hot
//! sync path the calling thread writes its request and reads its reply itself
//! (remoting::connection), so the I/O thread is not involved at all.
//!
//! Nothing here is built at load time and nothing stays broken: the runtime is built on first use,
//! a failure (no file descriptors, no threads) is returned to the caller and the next call tries
//! again. After fork() the parent's threads do not exist in the child, so the child gets a runtime
//! of its own, and objects made before the fork refuse to work there (`Error::Forked`).
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};

use parking_lot::Mutex;
use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};
pub(crate) use reactor::{Reactor, Readiness};

mod reactor;

pub struct Shared {
    pid: u32,
    runtime: Runtime,
    reactor: Arc<Reactor>,
}

impl Shared {
    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    pub(crate) fn reactor(&self) -> &Arc<Reactor> {
        &self.reactor
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails with `Error::Forked` in a child process of the one that built this runtime.
    pub fn check_pid(&self) -> Result<()> {
        check_pid(self.pid)
    }

    fn build(pid: u32) -> Result<Shared> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("rmq-io")
            .enable_all()
            .build()
            .map_err(|e| Error::Resource(format!("cannot start the I/O runtime: {e}")))?;
        let reactor = Reactor::start(runtime.handle())
            .map_err(|e| Error::Resource(format!("cannot start the connection reactor: {e}")))?;
        Ok(Shared {
            pid,
            runtime,
            reactor,
        })
    }
}

static CURRENT: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// The process's runtime, built on first use, and again after a failed build or a fork.
pub fn shared() -> Result<Arc<Shared>> {
    let pid = current_pid();
    let mut current = CURRENT.lock();
    if let Some(s) = current.as_ref() {
        if s.pid == pid {
            return Ok(Arc::clone(s));
        }
        // Built by the parent before a fork: its threads are not in this process, so dropping
        // it could wait for them forever. It is left as it is.
        std::mem::forget(current.take());
    }
    let s = Arc::new(Shared::build(pid)?);
    *current = Some(Arc::clone(&s));
    Ok(s)
}

/// The runtime's handle, for tests and examples; panics if the runtime cannot be built.
pub fn handle() -> Handle {
    shared()
        .expect("the rmq runtime could not start")
        .handle()
        .clone()
}

// ---- fork detection ----------------------------------------------------------------------

/// The process id, cached; 0 until read. A fork handler clears it in the child, so the cost of
/// the check is one atomic load rather than a getpid() per call.
static PID: AtomicU32 = AtomicU32::new(0);
static AT_FORK: Once = Once::new();

/// Around fork(), the runtime slot is locked, so the child gets it unlocked rather than held by
/// a thread it does not have.
extern "C" fn before_fork() {
    std::mem::forget(CURRENT.lock());
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: `before_fork` locked it for this fork.
    unsafe { CURRENT.force_unlock() };
}

extern "C" fn after_fork_in_child() {
    PID.store(0, Ordering::Relaxed);
    after_fork_in_parent();
}

pub fn current_pid() -> u32 {
    AT_FORK.call_once(|| {
        // SAFETY: the handlers only take and release this crate's own locks and store an atomic.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// `Error::Forked` when called in a child of the process `pid`.
pub fn check_pid(pid: u32) -> Result<()> {
    if pid == current_pid() {
        Ok(())
    } else {
        Err(Error::Forked)
    }
}

// ---- blocking calls ----------------------------------------------------------------------

thread_local! {
    static BLOCKING_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// True while the calling thread drives a future with `block_on`: leaf I/O may then block this
/// thread (it has nothing else to do) instead of waiting for the I/O thread to wake it.
pub(crate) fn on_blocking_driver() -> bool {
    BLOCKING_DRIVER.with(|b| b.get())
}

/// Runs `fut` to completion on the calling thread, which must be outside any async runtime.
/// The same futures serve the async API; only the leaf I/O notices the difference.
pub fn block_on<F: Future>(shared: &Shared, what: &str, fut: F) -> Result<F::Output> {
    if Handle::try_current().is_ok() {
        return Err(Error::InvalidState(format!(
            "{what}: blocking call made from inside an async runtime; use the async API"
        )));
    }
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            BLOCKING_DRIVER.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(BLOCKING_DRIVER.with(|b| b.replace(true)));
    Ok(shared.handle().block_on(fut))
}
