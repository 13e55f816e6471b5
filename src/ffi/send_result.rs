//! rmq_send_result_get: every field of a send result in one call.
use std::ffi::c_char;

use super::boundary::*;
use super::producer::{
    rmq_send_result_t, rmq_send_status_t, RESULTS, RMQ_SEND_FLUSH_DISK_TIMEOUT,
    RMQ_SEND_FLUSH_SLAVE_TIMEOUT, RMQ_SEND_OK, RMQ_SEND_SLAVE_NOT_AVAILABLE,
};
use super::status::*;
use crate::producer::SendStatus;

/// Every field of a send result. The strings are borrowed views into the result (not
/// NUL-terminated, never NULL, empty when absent), valid until the result is destroyed; inside
/// a send callback, until the callback returns. This struct never grows: a later version adds a
/// new struct and function instead.
#[repr(C)]
pub struct rmq_send_result_view_t {
    /// RMQ_SEND_OK, RMQ_SEND_FLUSH_DISK_TIMEOUT, ...
    pub status: rmq_send_status_t,
    /// Message id (UNIQ_KEY).
    pub msg_id: *const c_char,
    pub msg_id_len: usize,
    /// Broker store id (for rmq_producer_view_message).
    pub offset_msg_id: *const c_char,
    pub offset_msg_id_len: usize,
    pub topic: *const c_char,
    pub topic_len: usize,
    pub broker_name: *const c_char,
    pub broker_name_len: usize,
    pub queue_id: i32,
    pub queue_offset: i64,
    /// Transaction id as the broker reported it; empty when it reported none.
    pub transaction_id: *const c_char,
    pub transaction_id_len: usize,
    /// Region of the broker ("DefaultRegion" unless the broker says otherwise).
    pub region_id: *const c_char,
    pub region_id_len: usize,
}

/// Writes every field of `result` to *out in one call (see rmq_send_result_view_t for how long
/// the views live). *out is written only on success.
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_get(
    result: *const rmq_send_result_t,
    out: *mut rmq_send_result_view_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let r = RESULTS.get(result)?;
        let mut v = rmq_send_result_view_t {
            status: match r.status {
                SendStatus::SendOk => RMQ_SEND_OK,
                SendStatus::FlushDiskTimeout => RMQ_SEND_FLUSH_DISK_TIMEOUT,
                SendStatus::FlushSlaveTimeout => RMQ_SEND_FLUSH_SLAVE_TIMEOUT,
                SendStatus::SlaveNotAvailable => RMQ_SEND_SLAVE_NOT_AVAILABLE,
            },
            msg_id: std::ptr::null(),
            msg_id_len: 0,
            offset_msg_id: std::ptr::null(),
            offset_msg_id_len: 0,
            topic: std::ptr::null(),
            topic_len: 0,
            broker_name: std::ptr::null(),
            broker_name_len: 0,
            queue_id: r.queue.queue_id,
            queue_offset: r.queue_offset,
            transaction_id: std::ptr::null(),
            transaction_id_len: 0,
            region_id: std::ptr::null(),
            region_id_len: 0,
        };
        // The views point into the registry's Arc, which lives as long as the handle.
        write_str(&r.msg_id, &mut v.msg_id, &mut v.msg_id_len)?;
        write_str(
            &r.offset_msg_id,
            &mut v.offset_msg_id,
            &mut v.offset_msg_id_len,
        )?;
        write_str(&r.queue.topic, &mut v.topic, &mut v.topic_len)?;
        write_str(
            &r.queue.broker_name,
            &mut v.broker_name,
            &mut v.broker_name_len,
        )?;
        write_str(
            r.transaction_id.as_deref().unwrap_or(""),
            &mut v.transaction_id,
            &mut v.transaction_id_len,
        )?;
        write_str(&r.region_id, &mut v.region_id, &mut v.region_id_len)?;
        *out = v;
        Ok(())
    })
}
