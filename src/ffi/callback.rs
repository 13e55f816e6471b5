//! The dispatch thread: every user callback runs here, one at a time, outside the I/O runtime and
//! outside any library lock, so a slow or blocking callback (even one calling rmq_ functions)
//! cannot stall network I/O.
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

use once_cell::sync::Lazy;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    static ON_DISPATCH_THREAD: Cell<bool> = const { Cell::new(false) };
}

static DISPATCH: Lazy<Mutex<Sender<Job>>> = Lazy::new(|| {
    let (tx, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("rmq-dispatch".into())
        .spawn(move || {
            ON_DISPATCH_THREAD.with(|f| f.set(true));
            for job in rx {
                // A panicking job must not take the thread (and every later callback) down.
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
        })
        .expect("cannot start the rmq-dispatch thread");
    Mutex::new(tx)
});

/// Queues `job` for the dispatch thread.
pub(crate) fn dispatch(job: impl FnOnce() + Send + 'static) {
    let tx = DISPATCH.lock().unwrap().clone();
    let _ = tx.send(Box::new(job));
}

pub(crate) fn on_dispatch_thread() -> bool {
    ON_DISPATCH_THREAD.with(|f| f.get())
}

/// A C `void *user_data` carried to the dispatch thread. The header makes the caller
/// responsible for its thread safety.
pub(crate) struct UserData(pub *mut std::ffi::c_void);
// SAFETY: the pointer is only handed back to the caller's own callback; see above.
unsafe impl Send for UserData {}
