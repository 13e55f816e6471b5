//! Client metrics (rmq_metrics_prometheus, rmq_metrics_value) and the message trace drop count.
use std::ffi::c_char;

use super::boundary::{arg_str, guard, guard_value, out_ptr, FfiError};
use super::status::*;
use crate::metrics;

/// Copies every metric of the process, in the Prometheus text exposition format (0.0.4), into
/// `buf` as a NUL-terminated string and writes its length without the NUL to *out_len. With a
/// NULL or too small `buf` (cap <= length) it writes only *out_len and returns
/// RMQ_ERR_BUFFER_TOO_SMALL: call again with a buffer of at least *out_len + 1 bytes (a little
/// more in case series were added meanwhile). `buf` stays the caller's.
///
/// Families (labels topic and broker; consume ones also group, the lag also queue):
/// rmq_messages_sent_total, rmq_bytes_sent_total, rmq_send_errors_total, rmq_send_retries_total,
/// rmq_sends_in_flight, rmq_send_latency_seconds (histogram), rmq_messages_consumed_total,
/// rmq_bytes_consumed_total, rmq_consume_failures_total, rmq_consume_lag, and
/// rmq_trace_records_dropped_total. Counters count from the start of the process, over every
/// producer and consumer of it; sends to the message trace topic count as well.
#[no_mangle]
pub unsafe extern "C" fn rmq_metrics_prometheus(
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let out_len = out_ptr(out_len, "out_len")?;
        let text = metrics::prometheus_text();
        *out_len = text.len();
        if buf.is_null() || cap <= text.len() {
            return Err(FfiError::new(
                RMQ_ERR_BUFFER_TOO_SMALL,
                format!("the metrics text needs {} bytes plus the NUL", text.len()),
            ));
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
        *buf.add(text.len()) = 0;
        Ok(())
    })
}

/// Writes to *out the value of the metric `name` (a family of rmq_metrics_prometheus, or
/// "rmq_send_latency_seconds_count" for the number of timed send attempts) for `topic` (as
/// sent, with its namespace if any), summed over every broker, group and queue; or over those
/// of broker `broker` (its name, e.g. "broker-a") when `broker` is not NULL. A topic nothing
/// happened to reads 0. RMQ_ERR_INVALID_ARGUMENT for an unknown name. Strings are borrowed for
/// the call.
#[no_mangle]
pub unsafe extern "C" fn rmq_metrics_value(
    name: *const c_char,
    topic: *const c_char,
    broker: *const c_char,
    out: *mut u64,
) -> rmq_status_t {
    guard(|| {
        let name = arg_str(name, "name")?;
        let topic = arg_str(topic, "topic")?;
        let broker = if broker.is_null() {
            None
        } else {
            Some(arg_str(broker, "broker")?)
        };
        let out = out_ptr(out, "out")?;
        let v = metrics::value(name, topic, broker).ok_or_else(|| {
            FfiError::new(
                RMQ_ERR_INVALID_ARGUMENT,
                format!(
                    "no metric named '{name}'; known: {}",
                    metrics::NAMES.join(", ")
                ),
            )
        })?;
        *out = v;
        Ok(())
    })
}

/// Message trace records dropped since the process started because a trace queue was full
/// (client.trace-enabled): tracing never slows sends or listener calls down, it drops instead.
#[no_mangle]
pub extern "C" fn rmq_trace_dropped() -> u64 {
    guard_value(0, || Ok(crate::trace::dropped()))
}
