//! rmq_message_*: messages to send and messages read back from the broker.
use std::ffi::c_char;
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;

use super::boundary::*;
use super::handles::Registry;
use super::status::*;
use crate::protocol::message::{
    Message, MessageExt, PROPERTIES_MAX_LENGTH, PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
    TOPIC_MAX_LENGTH,
};
use crate::remoting::codec::MAX_FRAME_LENGTH;

/// A message. Created empty with rmq_message_create, or returned by rmq_producer_view_message
/// with the broker's stored fields. Calls on one message from several threads are serialized,
/// but a view returned by a getter is only valid until the message is next modified or destroyed.
pub struct rmq_message_t {
    _private: [u8; 0],
}

pub(crate) struct FfiMessage {
    pub message: Message,
    /// Set for messages read back from the broker.
    pub stored: Option<StoredFields>,
}

pub(crate) struct StoredFields {
    queue_id: i32,
    queue_offset: i64,
    offset_msg_id: String,
    store_timestamp: i64,
    born_timestamp: i64,
}

impl FfiMessage {
    pub fn from_stored(ext: MessageExt) -> FfiMessage {
        FfiMessage {
            stored: Some(StoredFields {
                queue_id: ext.queue_id,
                queue_offset: ext.queue_offset,
                offset_msg_id: ext.offset_msg_id.clone(),
                store_timestamp: ext.store_timestamp,
                born_timestamp: ext.born_timestamp,
            }),
            message: ext.message,
        }
    }
}

pub(crate) static MESSAGES: Registry<Mutex<FfiMessage>> = Registry::new("message");

pub(crate) fn with_msg<T>(
    msg: *const rmq_message_t,
    f: impl FnOnce(&mut FfiMessage) -> FfiResult<T>,
) -> FfiResult<T> {
    let m = MESSAGES.get(msg)?;
    let mut guard = m.lock();
    f(&mut guard)
}

// Views of a message's fields, shared by rmq_message_* and rmq_received_message_*.

/// Writes a borrowed view of the body (non-NULL even when empty).
pub(crate) unsafe fn write_body(
    m: &Message,
    out: *mut *const u8,
    out_len: *mut usize,
) -> FfiResult {
    let out = out_ptr(out, "out")?;
    let out_len = out_ptr(out_len, "out_len")?;
    let body = m.body();
    *out = if body.is_empty() {
        c"".as_ptr() as *const u8
    } else {
        body.as_ptr()
    };
    *out_len = body.len();
    Ok(())
}

/// Writes a borrowed view of property `name`; RMQ_ERR_NOT_FOUND if absent.
pub(crate) unsafe fn write_property(
    m: &Message,
    name: &str,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> FfiResult {
    match m.property(name) {
        Some(v) => write_str(v, out, out_len),
        None => Err(FfiError::new(
            RMQ_ERR_NOT_FOUND,
            format!("no property '{name}'"),
        )),
    }
}

/// Writes borrowed views of the name and value of property number `index`.
pub(crate) unsafe fn write_property_at(
    m: &Message,
    index: usize,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
) -> FfiResult {
    let (k, v) = m
        .properties()
        .get(index)
        .ok_or_else(|| FfiError::new(RMQ_ERR_NOT_FOUND, format!("no property at index {index}")))?;
    write_str(k, out_name, out_name_len)?;
    write_str(v, out_value, out_value_len)
}

fn stored(m: &FfiMessage) -> FfiResult<&StoredFields> {
    m.stored.as_ref().ok_or_else(|| {
        FfiError::new(
            RMQ_ERR_NOT_FOUND,
            "only messages read back from the broker have stored fields",
        )
    })
}

/// Creates an empty message (no topic, empty body, WAIT=true as in Java).
/// Ownership: the caller owns it; free with rmq_message_destroy. Sending does not consume it.
#[no_mangle]
pub extern "C" fn rmq_message_create() -> *mut rmq_message_t {
    guard_value(std::ptr::null_mut(), || {
        Ok(MESSAGES.insert(Arc::new(Mutex::new(FfiMessage {
            message: Message::new("", Bytes::new()),
            stored: None,
        }))))
    })
}

/// Frees a message. NULL is a no-op.
#[no_mangle]
pub extern "C" fn rmq_message_destroy(message: *mut rmq_message_t) {
    guard_value((), || {
        MESSAGES.remove(message);
        Ok(())
    })
}

// Text setters: the NUL-terminated functions and their `_n` (pointer + length) variants share
// one path into the core's setters, which apply the text rule (no NUL, 0x01 or 0x02) and the
// length limits before anything is copied.

fn set_topic_str(message: *mut rmq_message_t, topic: &str) -> FfiResult {
    with_msg(message, |m| Ok(m.message.set_topic(topic)?))
}

fn set_tags_str(message: *mut rmq_message_t, tags: &str) -> FfiResult {
    with_msg(message, |m| Ok(m.message.set_tags(tags)?))
}

fn set_keys_str(message: *mut rmq_message_t, keys: &str) -> FfiResult {
    with_msg(message, |m| Ok(m.message.set_keys(keys)?))
}

fn set_property_str(message: *mut rmq_message_t, name: &str, value: &str) -> FfiResult {
    with_msg(message, |m| Ok(m.message.put_user_property(name, value)?))
}

/// Sets the topic (NUL-terminated UTF-8, borrowed for the call). The characters 0x01/0x02 and
/// topics over 127 bytes fail with RMQ_ERR_INVALID_ARGUMENT; the other topic rules are checked
/// when sent. Use rmq_message_set_topic_n for text that may contain NUL.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_topic(
    message: *mut rmq_message_t,
    topic: *const c_char,
) -> rmq_status_t {
    guard(|| set_topic_str(message, arg_str(topic, "topic")?))
}

/// Sets the topic from `len` bytes of UTF-8 at `topic` (borrowed for the call; no terminator
/// needed; NULL with len 0 is ""). As rmq_message_set_topic, and a NUL byte inside fails with
/// RMQ_ERR_INVALID_ARGUMENT instead of cutting the topic short.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_topic_n(
    message: *mut rmq_message_t,
    topic: *const c_char,
    len: usize,
) -> rmq_status_t {
    guard(|| set_topic_str(message, arg_text_n(topic, len, "topic", TOPIC_MAX_LENGTH)?))
}

/// Sets the tag (borrowed for the call); NULL or "" removes it. The characters 0x01/0x02 fail
/// with RMQ_ERR_INVALID_ARGUMENT, as does a tag over 32767 bytes.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_tags(
    message: *mut rmq_message_t,
    tags: *const c_char,
) -> rmq_status_t {
    guard(|| set_tags_str(message, arg_str_or_empty(tags, "tags")?))
}

/// Sets the tag from `len` bytes of UTF-8 at `tags` (borrowed for the call); len 0 removes it.
/// As rmq_message_set_tags, and a NUL byte inside fails with RMQ_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_tags_n(
    message: *mut rmq_message_t,
    tags: *const c_char,
    len: usize,
) -> rmq_status_t {
    guard(|| {
        set_tags_str(
            message,
            arg_text_n(tags, len, "tags", PROPERTIES_MAX_LENGTH)?,
        )
    })
}

/// Sets the keys, separated by single spaces (borrowed for the call); NULL or "" removes them.
/// The characters 0x01/0x02 fail with RMQ_ERR_INVALID_ARGUMENT, as do keys over 32767 bytes.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_keys(
    message: *mut rmq_message_t,
    keys: *const c_char,
) -> rmq_status_t {
    guard(|| set_keys_str(message, arg_str_or_empty(keys, "keys")?))
}

/// Sets the keys from `len` bytes of UTF-8 at `keys` (borrowed for the call); len 0 removes
/// them. As rmq_message_set_keys, and a NUL byte inside fails with RMQ_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_keys_n(
    message: *mut rmq_message_t,
    keys: *const c_char,
    len: usize,
) -> rmq_status_t {
    guard(|| {
        set_keys_str(
            message,
            arg_text_n(keys, len, "keys", PROPERTIES_MAX_LENGTH)?,
        )
    })
}

/// A copy of the body of `len` bytes at `data`: a len over the 16 MiB frame limit (SIZE_MAX
/// included) is RMQ_ERR_MESSAGE_TOO_LARGE before `data` is read or memory allocated.
pub(crate) unsafe fn body_arg(data: *const u8, len: usize, what: &str) -> FfiResult<Bytes> {
    if len > MAX_FRAME_LENGTH {
        return Err(FfiError::new(
            RMQ_ERR_MESSAGE_TOO_LARGE,
            format!(
                "body of {len} bytes is over the {MAX_FRAME_LENGTH}-byte frame limit; \
                 nothing was copied"
            ),
        ));
    }
    copy_bytes(arg_bytes(data, len, what)?, "the body")
}

/// Sets the body to a copy of `len` bytes at `data` (borrowed for the call; any bytes, NULs
/// included). NULL with len 0 sets an empty body (which a send refuses). A len over the 16 MiB
/// frame limit (SIZE_MAX included) fails with RMQ_ERR_MESSAGE_TOO_LARGE without reading `data`;
/// if the copy cannot be allocated, RMQ_ERR_RESOURCE. On failure the message is unchanged.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_body(
    message: *mut rmq_message_t,
    data: *const u8,
    len: usize,
) -> rmq_status_t {
    guard(|| {
        let body = body_arg(data, len, "data")?;
        with_msg(message, |m| {
            m.message.set_body(body);
            Ok(())
        })
    })
}

/// Sets a user property (both borrowed for the call). Reserved names (TAGS, KEYS, UNIQ_KEY, ...),
/// blank names or values, the characters 0x01/0x02 and properties that would take more than
/// 32767 bytes encoded fail with RMQ_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_property(
    message: *mut rmq_message_t,
    name: *const c_char,
    value: *const c_char,
) -> rmq_status_t {
    guard(|| {
        let name = arg_str(name, "name")?;
        let value = arg_str(value, "value")?;
        set_property_str(message, name, value)
    })
}

/// Sets a user property from `name_len` bytes of UTF-8 at `name` and `value_len` bytes at
/// `value` (both borrowed for the call; no terminators needed). As rmq_message_set_property,
/// and a NUL byte inside either fails with RMQ_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_set_property_n(
    message: *mut rmq_message_t,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> rmq_status_t {
    guard(|| {
        let name = arg_text_n(name, name_len, "name", PROPERTIES_MAX_LENGTH)?;
        let value = arg_text_n(value, value_len, "value", PROPERTIES_MAX_LENGTH)?;
        set_property_str(message, name, value)
    })
}

/// Borrowed view of the topic (not NUL-terminated): *out points at *out_len bytes, valid until
/// the message is modified or destroyed.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_topic(
    message: *const rmq_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| write_str(m.message.topic(), out, out_len)))
}

/// Borrowed view of the tag; empty if none. Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_tags(
    message: *const rmq_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            write_str(m.message.tags().unwrap_or(""), out, out_len)
        })
    })
}

/// Borrowed view of the space-separated keys; empty if none. Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_keys(
    message: *const rmq_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            write_str(m.message.keys().unwrap_or(""), out, out_len)
        })
    })
}

/// Borrowed view of the body: *out_len bytes at *out (non-NULL even when empty). Lifetime as
/// rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_body(
    message: *const rmq_message_t,
    out: *mut *const u8,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| with_msg(message, |m| write_body(&m.message, out, out_len)))
}

/// Borrowed view of property `name` (borrowed for the call); RMQ_ERR_NOT_FOUND if absent.
/// Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_property(
    message: *const rmq_message_t,
    name: *const c_char,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        let name = arg_str(name, "name")?;
        with_msg(message, |m| write_property(&m.message, name, out, out_len))
    })
}

/// Number of properties, system ones (TAGS, KEYS, WAIT, UNIQ_KEY, ...) included; the user ones
/// alone are counted by rmq_message_user_property_count.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_property_count(
    message: *const rmq_message_t,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out_count, "out_count")? = m.message.properties().len();
            Ok(())
        })
    })
}

/// Borrowed views of the name and value of property number `index` (0-based, below
/// rmq_message_property_count); RMQ_ERR_NOT_FOUND past the end. Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_property_at(
    message: *const rmq_message_t,
    index: usize,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            write_property_at(
                &m.message,
                index,
                out_name,
                out_name_len,
                out_value,
                out_value_len,
            )
        })
    })
}

/// Number of user properties: the properties whose names are not reserved (TAGS, KEYS, WAIT,
/// UNIQ_KEY and the other names rmq_message_set_property refuses), i.e. those a user set.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_user_property_count(
    message: *const rmq_message_t,
    out_count: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out_count, "out_count")? = m.message.user_properties().count();
            Ok(())
        })
    })
}

/// Borrowed views of the name and value of user property number `index` (0-based, below
/// rmq_message_user_property_count; same order as rmq_message_property_at without the reserved
/// ones); RMQ_ERR_NOT_FOUND past the end. Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_user_property_at(
    message: *const rmq_message_t,
    index: usize,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            let (k, v) = m.message.user_properties().nth(index).ok_or_else(|| {
                FfiError::new(
                    RMQ_ERR_NOT_FOUND,
                    format!("no user property at index {index}"),
                )
            })?;
            write_str(k, out_name, out_name_len)?;
            write_str(v, out_value, out_value_len)
        })
    })
}

/// Borrowed view of the message id: its UNIQ_KEY property (messages read back from the broker
/// carry the one the producer assigned), else, for stored messages, the offset id.
/// RMQ_ERR_NOT_FOUND for a message that has neither: sending does not modify the message; the
/// id of a send is in its rmq_send_result_t. Lifetime as rmq_message_topic.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_msg_id(
    message: *const rmq_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            let id = m
                .message
                .property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                .or(m.stored.as_ref().map(|s| s.offset_msg_id.as_str()))
                .ok_or_else(|| FfiError::new(RMQ_ERR_NOT_FOUND, "the message has no id yet"))?;
            write_str(id, out, out_len)
        })
    })
}

/// Borrowed view of the broker store id of a stored message; RMQ_ERR_NOT_FOUND otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_offset_msg_id(
    message: *const rmq_message_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            write_str(&stored(m)?.offset_msg_id, out, out_len)
        })
    })
}

/// Queue id of a stored message; RMQ_ERR_NOT_FOUND otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_queue_id(
    message: *const rmq_message_t,
    out: *mut i32,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out, "out")? = stored(m)?.queue_id;
            Ok(())
        })
    })
}

/// Queue offset of a stored message; RMQ_ERR_NOT_FOUND otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_queue_offset(
    message: *const rmq_message_t,
    out: *mut i64,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out, "out")? = stored(m)?.queue_offset;
            Ok(())
        })
    })
}

/// Broker store time (ms since the epoch) of a stored message; RMQ_ERR_NOT_FOUND otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_store_timestamp(
    message: *const rmq_message_t,
    out: *mut i64,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out, "out")? = stored(m)?.store_timestamp;
            Ok(())
        })
    })
}

/// Producer send time (ms since the epoch) of a stored message; RMQ_ERR_NOT_FOUND otherwise.
#[no_mangle]
pub unsafe extern "C" fn rmq_message_born_timestamp(
    message: *const rmq_message_t,
    out: *mut i64,
) -> rmq_status_t {
    guard(|| {
        with_msg(message, |m| {
            *out_ptr(out, "out")? = stored(m)?.born_timestamp;
            Ok(())
        })
    })
}
