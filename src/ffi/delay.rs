//! Delayed delivery on messages: broker delay levels and 5.x timers.
use super::boundary::*;
use super::message::{rmq_message_t, with_msg};
use super::status::*;

/// Delays delivery by one of the broker's delay levels: 1 (1 s) to 18 (2 h) in the broker's
/// default table (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h); 0 removes the
/// delay. Replaces any timer set with rmq_message_set_delay_ms, _delay_sec or _deliver_time_ms.
/// Another level is RMQ_ERR_INVALID_ARGUMENT and leaves the message unchanged. Batches refuse
/// delayed messages.
#[no_mangle]
pub extern "C" fn rmq_message_set_delay_level(
    message: *mut rmq_message_t,
    level: i32,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| Ok(m.message.set_delay_level(level)?)))
}

/// The delay level set on the message, 0 when none.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_delay_level(
    message: *const rmq_message_t,
    out: *mut i32,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out, "out")? = m.message.delay_level();
            Ok(())
        })
    })
}

/// Delivers `delay_ms` milliseconds after the broker stores the message (a 5.x timer message;
/// the broker rounds delivery down to its timer precision, 1 s by default, and refuses delays
/// over its maximum, 3 days by default, with RMQ_ERR_BROKER_MESSAGE_ILLEGAL). 0 removes the
/// delay; a negative value is RMQ_ERR_INVALID_ARGUMENT. Replaces any other delay.
#[no_mangle]
pub extern "C" fn rmq_message_set_delay_ms(
    message: *mut rmq_message_t,
    delay_ms: i64,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| Ok(m.message.set_delay_ms(delay_ms)?)))
}

/// As rmq_message_set_delay_ms, in seconds.
#[no_mangle]
pub extern "C" fn rmq_message_set_delay_sec(
    message: *mut rmq_message_t,
    delay_sec: i64,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| Ok(m.message.set_delay_sec(delay_sec)?)))
}

/// Delivers at `epoch_ms`, milliseconds since the Unix epoch (a 5.x timer message; rounded as
/// for rmq_message_set_delay_ms; a time in the past is delivered at once). 0 removes the delay;
/// a negative value is RMQ_ERR_INVALID_ARGUMENT. Replaces any other delay.
#[no_mangle]
pub extern "C" fn rmq_message_set_deliver_time_ms(
    message: *mut rmq_message_t,
    epoch_ms: i64,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| Ok(m.message.set_deliver_time_ms(epoch_ms)?)))
}
