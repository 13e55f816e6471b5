//! The window of async sends in flight: at most `producer.max-in-flight-async-sends` per
//! producer, each counted from acceptance until its callback has returned (the same count
//! `close` waits on). With the window full a send waits for a free slot, at most the send
//! timeout, or fails at once (`producer.block-when-in-flight-full=false`).
//!
//! A library thread never waits: on a callback thread the slots it waits for may be freed only
//! by callbacks queued behind the one it runs, and on a runtime thread the replies that free
//! them may be read only by that thread. There a full window fails at once.
use std::time::Instant;

use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::executor::{self, Outstanding};

/// Whether the calling thread belongs to the library or to an async runtime, where waiting
/// could hold up the very work that frees a slot.
fn on_library_thread() -> bool {
    executor::current_owner().is_some() || tokio::runtime::Handle::try_current().is_ok()
}

/// Takes a slot of the window for one async send, or says why not. `stopped` tells whether the
/// producer shut down meanwhile (a waiting sender then gives up at once).
pub(super) fn admit(
    outstanding: &Outstanding,
    config: &ProducerConfig,
    stopped: impl Fn() -> bool,
) -> Result<()> {
    let max = config.max_in_flight_async_sends;
    let library_thread = on_library_thread();
    let wait = config.block_when_in_flight_full && !library_thread;
    let wait_until = wait.then(|| Instant::now() + config.send_timeout);
    if outstanding.add_bounded(max, wait_until, &stopped) {
        return Ok(());
    }
    if stopped() {
        return Err(Error::InvalidState("producer has been shut down".into()));
    }
    Err(Error::InFlightFull(if wait {
        format!(
            "{max} async sends in flight (producer.max-in-flight-async-sends) and none completed \
             within {} ms",
            config.send_timeout.as_millis()
        )
    } else if library_thread {
        format!(
            "{max} async sends in flight (producer.max-in-flight-async-sends); a send from a \
             library callback thread does not wait for a free slot"
        )
    } else {
        format!(
            "{max} async sends in flight (producer.max-in-flight-async-sends) and \
             producer.block-when-in-flight-full is false"
        )
    }))
}
