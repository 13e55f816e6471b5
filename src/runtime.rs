//! The one tokio runtime every client in the process shares.
//!
//! One I/O worker: on a 2-core machine a second worker mostly adds cross-thread wake-ups. Blocking
//! calls from foreign threads use `block_on` only on slow paths (first connect, route fetch); on
//! the hot sync path the calling thread writes its request and reads its reply itself
//! (remoting::connection), so this thread is not involved at all.
use std::future::Future;
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Result};

static RUNTIME: Lazy<Runtime> = Lazy::new(|| {
    Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("rmq-io")
        .enable_all()
        .build()
        .expect("the rmq runtime could not start")
});

pub fn handle() -> &'static Handle {
    RUNTIME.handle()
}

/// Runs `fut` to completion from a thread outside the runtime, with a deadline.
pub fn block_on_timeout<F, T>(timeout: Duration, what: &str, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    if Handle::try_current().is_ok() {
        return Err(Error::InvalidState(format!(
            "{what}: blocking call made from inside an async runtime; use the async API"
        )));
    }
    handle().block_on(async {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(format!(
                "{what} took longer than {timeout:?}"
            ))),
        }
    })
}
