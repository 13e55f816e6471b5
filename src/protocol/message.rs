//! Messages: the user-facing model, the properties string, and the stored-record decoder used by
//! VIEW_MESSAGE_BY_ID (and later pulls).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::compression::{self, SYSFLAG_COMPRESSED};
use crate::error::{Error, Result};

pub const PROPERTY_KEYS: &str = "KEYS";
pub const PROPERTY_TAGS: &str = "TAGS";
pub const PROPERTY_WAIT_STORE_MSG_OK: &str = "WAIT";
pub const PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX: &str = "UNIQ_KEY";
pub const PROPERTY_DELAY_TIME_LEVEL: &str = "DELAY";
pub const PROPERTY_TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
pub const PROPERTY_TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// The delay kinds a message may carry; setting one removes the others.
const DELAY_PROPERTIES: &[&str] = &[
    PROPERTY_DELAY_TIME_LEVEL,
    PROPERTY_TIMER_DELAY_SEC,
    PROPERTY_TIMER_DELAY_MS,
    PROPERTY_TIMER_DELIVER_MS,
];
/// Levels of the broker's default `messageDelayLevel` table: 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m
/// 8m 9m 10m 20m 30m 1h 2h.
pub const MAX_DELAY_LEVEL: i32 = 18;
const NAME_VALUE_SEPARATOR: char = '\u{1}';
const PROPERTY_SEPARATOR: char = '\u{2}';
/// Keys are joined with a single space, as Java's Message.setKeys(Collection) does.
pub const KEY_SEPARATOR: &str = " ";

/// Names only the client and broker may set (`MessageConst.STRING_HASH_SET`).
const RESERVED_PROPERTY_NAMES: &[&str] = &[
    "TRACE_ON",
    "MSG_REGION",
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "UNIQ_KEY",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "DUP_INFO",
    "EXTEND_UNIQ_INFO",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "INNER_MULTI_QUEUE_OFFSET",
    "TIMER_DELAY_MS",
    "TIMER_DELAY_SEC",
    "TIMER_DELIVER_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_OUT_MS",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DELAY_LEVEL",
    "__BORNHOST",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "__CRC32#",
];

/// Topics the broker refuses sends to.
const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

pub const TOPIC_MAX_LENGTH: usize = 127;
/// The encoded properties string (`name 0x01 value 0x02 ...`) travels with a 16-bit length, so
/// the broker accepts at most this many bytes of it.
pub const PROPERTIES_MAX_LENGTH: usize = i16::MAX as usize;

/// A message to send: topic, properties (tags, keys and user properties live there), body.
///
/// Every setter that takes text refuses NUL and the separators 0x01/0x02 (see `check_text`) and
/// checks the length before copying anything, so a message never holds a value that could be
/// cut short by C or reread by the broker as other properties.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    topic: String,
    flag: i32,
    properties: Vec<(String, String)>,
    body: Bytes,
}

impl Message {
    /// A message for `topic` (checked in full when sent) with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Message {
        let mut m = Message {
            topic: topic.into(),
            flag: 0,
            properties: Vec::new(),
            body: body.into(),
        };
        // Java's Message constructor always asks the broker to wait for the store.
        m.put_property(PROPERTY_WAIT_STORE_MSG_OK, "true");
        m
    }

    /// A message exactly as received: these properties and no others (client internals only).
    pub(crate) fn from_parts(
        topic: String,
        flag: i32,
        properties: Vec<(String, String)>,
        body: Bytes,
    ) -> Message {
        Message {
            topic,
            flag,
            properties,
            body,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// Refuses NUL, 0x01/0x02 and topics over `TOPIC_MAX_LENGTH` bytes; the remaining rules
    /// (allowed characters, not empty, not a system topic) are checked when the message is sent.
    pub fn set_topic(&mut self, topic: &str) -> Result<()> {
        check_len("topic", topic, TOPIC_MAX_LENGTH)?;
        check_text("topic", topic)?;
        self.topic = topic.to_string();
        Ok(())
    }
    pub fn flag(&self) -> i32 {
        self.flag
    }
    pub fn set_flag(&mut self, flag: i32) {
        self.flag = flag;
    }
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
    }

    pub fn tags(&self) -> Option<&str> {
        self.property(PROPERTY_TAGS)
    }
    /// Empty tags remove the property. NUL and 0x01/0x02 are refused.
    pub fn set_tags(&mut self, tags: &str) -> Result<()> {
        self.put_or_remove("tags", PROPERTY_TAGS, tags)
    }
    /// Keys, space separated.
    pub fn keys(&self) -> Option<&str> {
        self.property(PROPERTY_KEYS)
    }
    /// Empty keys remove the property. NUL and 0x01/0x02 are refused.
    pub fn set_keys(&mut self, keys: &str) -> Result<()> {
        self.put_or_remove("keys", PROPERTY_KEYS, keys)
    }
    pub fn set_key_list<S: AsRef<str>>(&mut self, keys: &[S]) -> Result<()> {
        let joined: Vec<&str> = keys
            .iter()
            .map(AsRef::as_ref)
            .filter(|k| !k.is_empty())
            .collect();
        self.set_keys(&joined.join(KEY_SEPARATOR))
    }

    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// The properties a user set (or could set): every one whose name is not reserved
    /// (`is_reserved_property`), in the order of `properties`.
    pub fn user_properties(&self) -> impl Iterator<Item = &(String, String)> {
        self.properties
            .iter()
            .filter(|(k, _)| !is_reserved_property(k))
    }

    /// A user property. Reserved names, blank names or values, NUL and the separator
    /// characters 0x01/0x02 are refused: the broker would drop or misread them.
    pub fn put_user_property(&mut self, name: &str, value: &str) -> Result<()> {
        check_len("property name", name, PROPERTIES_MAX_LENGTH)?;
        check_len("property value", value, PROPERTIES_MAX_LENGTH)?;
        check_text("property name", name)?;
        check_text("property value", value)?;
        if name.trim().is_empty() || value.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "user property name and value must not be blank".into(),
            ));
        }
        if is_reserved_property(name) {
            return Err(Error::InvalidArgument(format!(
                "property name '{name}' is reserved by RocketMQ"
            )));
        }
        self.check_encoded_len(name, value)?;
        self.put_property(name, value);
        Ok(())
    }

    /// Sets any property, reserved ones included, unchecked (client internals only).
    pub(crate) fn put_property(&mut self, name: &str, value: &str) {
        match self.properties.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.properties.push((name.to_string(), value.to_string())),
        }
    }

    /// Delays delivery by one of the broker's delay levels, 1 (1 s) to 18 (2 h); 0 removes the
    /// delay. Replaces any timer set with `set_delay_ms`, `set_delay_sec` or `set_deliver_time_ms`.
    pub fn set_delay_level(&mut self, level: i32) -> Result<()> {
        if !(0..=MAX_DELAY_LEVEL).contains(&level) {
            return Err(Error::InvalidArgument(format!(
                "delay level {level} is not between 1 and {MAX_DELAY_LEVEL} (0 removes the delay)"
            )));
        }
        self.set_delay(PROPERTY_DELAY_TIME_LEVEL, level as i64);
        Ok(())
    }

    /// The delay level, or 0 when none is set.
    pub fn delay_level(&self) -> i32 {
        self.property(PROPERTY_DELAY_TIME_LEVEL)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Delivers `ms` milliseconds after the broker stores the message (5.x timer messages; the
    /// broker rounds down to its timer precision, 1 s by default, and refuses delays over its
    /// maximum, 3 days by default). 0 removes the delay; negative values are refused. Replaces
    /// any other delay.
    pub fn set_delay_ms(&mut self, ms: i64) -> Result<()> {
        check_delay("delay in ms", ms)?;
        self.set_delay(PROPERTY_TIMER_DELAY_MS, ms);
        Ok(())
    }

    /// As `set_delay_ms`, in seconds.
    pub fn set_delay_sec(&mut self, sec: i64) -> Result<()> {
        check_delay("delay in seconds", sec)?;
        self.set_delay(PROPERTY_TIMER_DELAY_SEC, sec);
        Ok(())
    }

    /// Delivers at `epoch_ms` (milliseconds since the Unix epoch; 5.x timer messages). A time in
    /// the past is delivered at once. 0 removes the delay; negative values are refused. Replaces
    /// any other delay.
    pub fn set_deliver_time_ms(&mut self, epoch_ms: i64) -> Result<()> {
        check_delay("delivery time", epoch_ms)?;
        self.set_delay(PROPERTY_TIMER_DELIVER_MS, epoch_ms);
        Ok(())
    }

    /// Whether any delay (level or timer) is set.
    pub fn has_delay(&self) -> bool {
        self.properties
            .iter()
            .any(|(k, _)| DELAY_PROPERTIES.contains(&k.as_str()))
    }

    fn set_delay(&mut self, name: &str, value: i64) {
        self.properties
            .retain(|(k, _)| !DELAY_PROPERTIES.contains(&k.as_str()));
        if value > 0 {
            self.put_property(name, &value.to_string());
        }
    }

    pub fn remove_property(&mut self, name: &str) {
        self.properties.retain(|(k, _)| k != name);
    }

    fn put_or_remove(&mut self, what: &str, name: &str, value: &str) -> Result<()> {
        check_len(what, value, PROPERTIES_MAX_LENGTH)?;
        check_text(what, value)?;
        if value.is_empty() {
            self.remove_property(name);
        } else {
            self.check_encoded_len(name, value)?;
            self.put_property(name, value);
        }
        Ok(())
    }

    /// Refuses a property that would push the encoded properties string over
    /// `PROPERTIES_MAX_LENGTH` (the send adds UNIQ_KEY and checks once more).
    fn check_encoded_len(&self, name: &str, value: &str) -> Result<()> {
        let others: usize = self
            .properties
            .iter()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        let total = others + name.len() + value.len() + 2;
        if total > PROPERTIES_MAX_LENGTH {
            return Err(Error::InvalidArgument(format!(
                "property '{}' would make the encoded properties {total} bytes; the broker \
                 accepts at most {PROPERTIES_MAX_LENGTH}",
                preview(name)
            )));
        }
        Ok(())
    }
}

/// Whether `name` is a property name only the client and broker may set (TAGS, KEYS, UNIQ_KEY,
/// ...); every other name is a user property.
pub fn is_reserved_property(name: &str) -> bool {
    RESERVED_PROPERTY_NAMES.contains(&name)
}

/// The one rule for text that enters a message (topic, tags, keys, property names and values):
/// no NUL (C would cut the string there) and no 0x01/0x02, the separators of the encoded
/// properties string (a tag "A\u{2}DELAY\u{1}1" would otherwise become a DELAY property).
pub fn check_text(what: &str, s: &str) -> Result<()> {
    match s.bytes().position(|b| b <= 0x02) {
        None => Ok(()),
        Some(at) => {
            let which = match s.as_bytes()[at] {
                0x00 => "a NUL byte (0x00)",
                0x01 => "the name/value separator 0x01",
                _ => "the property separator 0x02",
            };
            Err(Error::InvalidArgument(format!(
                "{what} contains {which} at byte {at}; NUL, 0x01 and 0x02 are not allowed"
            )))
        }
    }
}

fn check_delay(what: &str, value: i64) -> Result<()> {
    if value < 0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must not be negative, got {value} (0 removes the delay)"
        )));
    }
    Ok(())
}

/// Refuses `s` when it is longer than `max` bytes, before anything is copied.
pub fn check_len(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::InvalidArgument(format!(
            "{what} is {} bytes, longer than {max}",
            s.len()
        )));
    }
    Ok(())
}

/// The start of a possibly long value, for error messages.
fn preview(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Java's `Validators.checkTopic` + the broker's forbidden list.
/// Java's `Validators.checkGroup`: a group is named like a topic, and `reserved` (the client's
/// DEFAULT_PRODUCER or DEFAULT_CONSUMER) is refused. `kind` names it in errors.
pub fn validate_group(kind: &str, group: &str, reserved: &str) -> Result<()> {
    validate_topic(group).map_err(|e| match e {
        Error::InvalidArgument(m) => {
            Error::InvalidArgument(format!("{kind} group: {}", m.replace("topic", "group")))
        }
        e => e,
    })?;
    if group == reserved {
        return Err(Error::InvalidArgument(format!(
            "{kind} group {reserved} is reserved; choose another"
        )));
    }
    Ok(())
}

pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.trim().is_empty() {
        return Err(Error::InvalidArgument("topic is empty".into()));
    }
    if topic.len() > TOPIC_MAX_LENGTH {
        return Err(Error::InvalidArgument(format!(
            "topic is {} characters, longer than {TOPIC_MAX_LENGTH}",
            topic.len()
        )));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(Error::InvalidArgument(format!(
            "topic '{topic}' contains illegal character {bad:?}; allowed: letters, digits, % | _ -"
        )));
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&topic) {
        return Err(Error::InvalidArgument(format!(
            "sending to system topic '{topic}' is forbidden"
        )));
    }
    Ok(())
}

/// `name 0x01 value 0x02` for each property.
pub fn encode_properties(props: &[(String, String)]) -> String {
    let mut s = String::with_capacity(props.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (k, v) in props {
        s.push_str(k);
        s.push(NAME_VALUE_SEPARATOR);
        s.push_str(v);
        s.push(PROPERTY_SEPARATOR);
    }
    s
}

/// Java's decoder: segments shorter than 3 characters and entries with an empty key or value
/// are dropped.
pub fn decode_properties(s: &str) -> Vec<(String, String)> {
    s.split(PROPERTY_SEPARATOR)
        .filter(|seg| seg.chars().count() >= 3)
        .filter_map(|seg| {
            let (k, v) = seg.split_once(NAME_VALUE_SEPARATOR)?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A message as the broker stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageExt {
    pub message: Message,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub body_crc: i32,
    /// broker store id: store host + commit log offset
    pub offset_msg_id: String,
    /// The broker it was read from, as Java's MessageExt.brokerName: set by the consumer's pull
    /// from the queue's broker; empty where unknown.
    pub broker_name: Arc<str>,
}

impl MessageExt {
    /// The user-visible id: UNIQ_KEY when the producer set one, else the store id.
    pub fn msg_id(&self) -> &str {
        self.message
            .property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
            .unwrap_or(&self.offset_msg_id)
    }
}

const MAGIC_V1: i32 = 0xDAA320A7u32 as i32;
const MAGIC_V2: i32 = 0xDAA320ABu32 as i32;
const SYSFLAG_BORNHOST_V6: i32 = 0x10;
const SYSFLAG_STOREHOST_V6: i32 = 0x20;

/// Decodes stored records back to back; fails at the first record that does not decode.
pub fn decode_stored_messages(buf: Bytes) -> Result<Vec<MessageExt>> {
    decode_stored_records(buf).into_iter().collect()
}

/// Decodes stored records back to back, one result per record: a record whose body does not
/// decompress (or whose fields are malformed) is an `Err` in its place and the others are still
/// read; a record whose size is wrong ends the list with an `Err`, since nothing after it can be
/// found.
pub fn decode_stored_records(mut buf: Bytes) -> Vec<Result<MessageExt>> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        if buf.len() < 4 {
            out.push(Err(Error::Protocol("stored message truncated".into())));
            break;
        }
        let total = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if total < 4 || total as usize > buf.len() {
            out.push(Err(Error::Protocol(format!(
                "bad stored message size {total}"
            ))));
            break;
        }
        let record = buf.split_to(total as usize);
        out.push(decode_stored_message(record));
    }
    out
}

fn decode_stored_message(mut r: Bytes) -> Result<MessageExt> {
    let need = |r: &Bytes, n: usize, what: &str| {
        if r.len() < n {
            Err(Error::Protocol(format!(
                "stored message truncated at {what}"
            )))
        } else {
            Ok(())
        }
    };
    need(&r, 4 * 5 + 8 * 2 + 4 + 8, "fixed header")?;
    let _total = r.get_i32();
    let magic = r.get_i32();
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(Error::Protocol(format!(
            "bad stored message magic {magic:#x}"
        )));
    }
    let body_crc = r.get_i32();
    let queue_id = r.get_i32();
    let flag = r.get_i32();
    let queue_offset = r.get_i64();
    let commit_log_offset = r.get_i64();
    let sys_flag = r.get_i32();
    let born_timestamp = r.get_i64();
    let born_host = read_host(&mut r, sys_flag & SYSFLAG_BORNHOST_V6 != 0)?;
    need(&r, 8, "store timestamp")?;
    let store_timestamp = r.get_i64();
    let store_host = read_host(&mut r, sys_flag & SYSFLAG_STOREHOST_V6 != 0)?;
    need(&r, 4 + 8 + 4, "reconsume times")?;
    let reconsume_times = r.get_i32();
    let _prepared_tx_offset = r.get_i64();
    let body_len = r.get_i32();
    if body_len < 0 || body_len as usize > r.len() {
        return Err(Error::Protocol(format!(
            "bad stored body length {body_len}"
        )));
    }
    let mut body = r.split_to(body_len as usize);
    let topic_len = if magic == MAGIC_V2 {
        need(&r, 2, "topic length")?;
        r.get_i16() as i32
    } else {
        need(&r, 1, "topic length")?;
        r.get_i8() as i32
    };
    if topic_len < 0 || topic_len as usize > r.len() {
        return Err(Error::Protocol(format!(
            "bad stored topic length {topic_len}"
        )));
    }
    let topic = utf8(r.split_to(topic_len as usize), "topic")?;
    need(&r, 2, "properties length")?;
    let props_len = r.get_i16() as i32;
    if props_len < 0 || props_len as usize > r.len() {
        return Err(Error::Protocol(format!(
            "bad stored properties length {props_len}"
        )));
    }
    let props = utf8(r.split_to(props_len as usize), "properties")?;
    let offset_msg_id = offset_msg_id(&store_host, commit_log_offset);
    let mut sys_flag = sys_flag;
    if sys_flag & SYSFLAG_COMPRESSED != 0 {
        // As Java's decoder: the body is exposed decompressed and the compressed bit cleared
        // (the codec bits stay, telling how it was stored).
        body = Bytes::from(
            compression::decompress(sys_flag, &body)
                .map_err(|e| Error::Protocol(format!("stored message {offset_msg_id}: {e}")))?,
        );
        sys_flag &= !SYSFLAG_COMPRESSED;
    }
    Ok(MessageExt {
        message: Message {
            topic,
            flag,
            properties: decode_properties(&props),
            body,
        },
        queue_id,
        queue_offset,
        commit_log_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        body_crc,
        offset_msg_id,
        broker_name: Arc::from(""),
    })
}

fn utf8(b: Bytes, what: &str) -> Result<String> {
    String::from_utf8(b.to_vec())
        .map_err(|_| Error::Protocol(format!("stored {what} is not UTF-8")))
}

fn read_host(r: &mut Bytes, v6: bool) -> Result<SocketAddr> {
    let n = if v6 { 20 } else { 8 };
    if r.len() < n {
        return Err(Error::Protocol("stored message truncated at host".into()));
    }
    let ip: IpAddr = if v6 {
        let mut o = [0u8; 16];
        r.copy_to_slice(&mut o);
        Ipv6Addr::from(o).into()
    } else {
        let mut o = [0u8; 4];
        r.copy_to_slice(&mut o);
        Ipv4Addr::from(o).into()
    };
    let port = r.get_i32();
    Ok(SocketAddr::new(ip, port as u16))
}

/// Store id: uppercase hex of store IP, port (int32) and commit log offset (int64).
pub fn offset_msg_id(store: &SocketAddr, commit_log_offset: i64) -> String {
    let mut raw = Vec::with_capacity(28);
    match store.ip() {
        IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
    }
    raw.extend_from_slice(&(store.port() as i32).to_be_bytes());
    raw.extend_from_slice(&commit_log_offset.to_be_bytes());
    super::ids::hex_upper(&raw)
}

/// Inverse of `offset_msg_id`: 32 hex characters mean IPv4, 56 mean IPv6.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64)> {
    let bad = || Error::InvalidArgument(format!("'{id}' is not an offset message id"));
    let raw = super::ids::hex_decode(id).ok_or_else(bad)?;
    let ip_len = match raw.len() {
        16 => 4,
        28 => 16,
        _ => return Err(bad()),
    };
    let ip: IpAddr = if ip_len == 4 {
        Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).into()
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(&raw[..16]);
        Ipv6Addr::from(o).into()
    };
    let port = i32::from_be_bytes(raw[ip_len..ip_len + 4].try_into().unwrap());
    let offset = i64::from_be_bytes(raw[ip_len + 4..ip_len + 12].try_into().unwrap());
    if !(0..=65535).contains(&port) {
        return Err(bad());
    }
    Ok((SocketAddr::new(ip, port as u16), offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn properties_round_trip_and_java_decode_rules() {
        let props = vec![
            ("TAGS".to_string(), "TagA".to_string()),
            ("k".to_string(), "välue".to_string()),
        ];
        let s = encode_properties(&props);
        assert_eq!(s, "TAGS\u{1}TagA\u{2}k\u{1}välue\u{2}");
        assert_eq!(decode_properties(&s), props);
        // empty value and too-short segments are dropped, as in Java
        assert_eq!(
            decode_properties("a\u{1}\u{2}x\u{2}b\u{1}c\u{2}"),
            vec![("b".into(), "c".into())]
        );
    }

    #[test]
    fn user_properties_are_checked() {
        let mut m = Message::new("T", "b");
        assert!(m.put_user_property("TAGS", "x").is_err());
        assert!(m.put_user_property(" ", "x").is_err());
        assert!(m.put_user_property("a", "").is_err());
        assert!(m.put_user_property("a\u{1}", "x").is_err());
        m.put_user_property("a", "1").unwrap();
        m.put_user_property("a", "2").unwrap();
        assert_eq!(m.property("a"), Some("2"));
        assert_eq!(m.property("WAIT"), Some("true"));
        m.set_key_list(&["k1", "", "k2"]).unwrap();
        assert_eq!(m.keys(), Some("k1 k2"));
        m.set_tags("").unwrap();
        assert_eq!(m.tags(), None);
    }

    #[test]
    fn check_text_refuses_nul_and_separators() {
        assert!(check_text("tags", "").is_ok());
        assert!(check_text("tags", "TagA || välue \u{3}\t").is_ok());
        for (bad, at, needle) in [
            ("\u{0}", 0, "NUL"),
            ("a\u{0}b", 1, "NUL"),
            ("TagA\u{1}", 4, "0x01"),
            ("TagA\u{2}DELAY\u{1}1", 4, "0x02"),
        ] {
            let e = check_text("tags", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid argument: tags contains"), "{e}");
            assert!(
                e.contains(needle) && e.contains(&format!("at byte {at}")),
                "{e}"
            );
        }
    }

    #[test]
    fn every_text_setter_uses_the_rule() {
        let mut m = Message::new("T", "b");
        let before = m.clone();
        for bad in ["a\u{0}b", "a\u{1}b", "TagA\u{2}DELAY\u{1}1"] {
            assert!(matches!(m.set_topic(bad), Err(Error::InvalidArgument(_))));
            assert!(matches!(m.set_tags(bad), Err(Error::InvalidArgument(_))));
            assert!(matches!(m.set_keys(bad), Err(Error::InvalidArgument(_))));
            assert!(m.set_key_list(&["ok", bad]).is_err());
            assert!(m.put_user_property(bad, "v").is_err());
            assert!(m.put_user_property("n", bad).is_err());
        }
        // nothing was stored: no DELAY property smuggled in, topic unchanged
        assert_eq!(m, before);
        assert_eq!(m.property("DELAY"), None);
        m.set_tags("TagA").unwrap();
        m.set_keys("k1 k2").unwrap();
        m.set_topic("Other").unwrap();
        assert_eq!(
            (m.tags(), m.keys(), m.topic()),
            (Some("TagA"), Some("k1 k2"), "Other")
        );
    }

    #[test]
    fn lengths_are_checked_at_the_setter() {
        let mut m = Message::new("T", "b");
        assert!(m.set_topic(&"t".repeat(TOPIC_MAX_LENGTH)).is_ok());
        let e = m.set_topic(&"t".repeat(TOPIC_MAX_LENGTH + 1)).unwrap_err();
        assert!(e.to_string().contains("longer than 127"), "{e}");
        let huge = "v".repeat(PROPERTIES_MAX_LENGTH + 1);
        assert!(m.set_tags(&huge).is_err());
        assert!(m.set_keys(&huge).is_err());
        assert!(m.put_user_property("n", &huge).is_err());
        assert!(m.put_user_property(&huge, "v").is_err());
        // values that fit alone but not together with the others
        let half = "v".repeat(PROPERTIES_MAX_LENGTH / 2);
        m.set_tags(&half).unwrap();
        let e = m.set_keys(&half).unwrap_err();
        assert!(e.to_string().contains("at most 32767"), "{e}");
        assert_eq!(m.keys(), None);
        // replacing a value counts the new one only
        m.set_tags(&half).unwrap();
        let total: usize = m
            .properties()
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        assert!(total <= PROPERTIES_MAX_LENGTH);
    }

    #[test]
    fn one_delay_kind_at_a_time() {
        let mut m = Message::new("T", "b");
        assert_eq!(m.delay_level(), 0);
        assert!(!m.has_delay());
        m.set_delay_level(3).unwrap();
        assert_eq!(m.property("DELAY"), Some("3"));
        assert_eq!(m.delay_level(), 3);
        m.set_delay_ms(1500).unwrap();
        assert_eq!(
            (m.property("DELAY"), m.property("TIMER_DELAY_MS")),
            (None, Some("1500"))
        );
        m.set_delay_sec(2).unwrap();
        assert_eq!(m.property("TIMER_DELAY_MS"), None);
        assert_eq!(m.property("TIMER_DELAY_SEC"), Some("2"));
        m.set_deliver_time_ms(1_900_000_000_000).unwrap();
        assert_eq!(m.property("TIMER_DELAY_SEC"), None);
        assert_eq!(m.property("TIMER_DELIVER_MS"), Some("1900000000000"));
        assert!(m.has_delay());
        for bad in [-1, 19] {
            let e = m.set_delay_level(bad).unwrap_err().to_string();
            assert!(e.contains("between 1 and 18"), "{e}");
        }
        assert!(m.set_delay_ms(-5).is_err());
        assert!(m.set_delay_sec(-5).is_err());
        assert!(m.set_deliver_time_ms(-5).is_err());
        // a refused value changes nothing
        assert_eq!(m.property("TIMER_DELIVER_MS"), Some("1900000000000"));
        m.set_deliver_time_ms(0).unwrap();
        assert!(!m.has_delay());
    }

    #[test]
    fn topic_validation() {
        assert!(validate_topic("Good_topic-1%|x").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("has space").is_err());
        assert!(validate_topic("ünï").is_err());
        assert!(validate_topic(&"a".repeat(128)).is_err());
        assert!(validate_topic(&"a".repeat(127)).is_ok());
        assert!(validate_topic("SCHEDULE_TOPIC_XXXX").is_err());
    }

    #[test]
    fn offset_msg_id_round_trip() {
        let addr: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let id = offset_msg_id(&addr, 0x1234_5678_9ABC);
        assert_eq!(id, "7F00000100002A9F0000123456789ABC");
        assert_eq!(decode_offset_msg_id(&id).unwrap(), (addr, 0x1234_5678_9ABC));
        let v6: SocketAddr = "[::1]:10911".parse().unwrap();
        let id6 = offset_msg_id(&v6, 5);
        assert_eq!(id6.len(), 56);
        assert_eq!(decode_offset_msg_id(&id6).unwrap(), (v6, 5));
        assert!(decode_offset_msg_id("xyz").is_err());
        assert!(decode_offset_msg_id("7F00000100002A9F00001234").is_err());
    }

    fn stored_record(magic: i32, topic: &str, props: &str, body: &[u8]) -> Bytes {
        stored_record_with(magic, 0, topic, props, body)
    }

    fn stored_record_with(
        magic: i32,
        sys_flag: i32,
        topic: &str,
        props: &str,
        body: &[u8],
    ) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i32(0); // size, patched below
        b.put_i32(magic);
        b.put_i32(77); // crc
        b.put_i32(2); // queue id
        b.put_i32(5); // flag
        b.put_i64(9); // queue offset
        b.put_i64(1000); // physical offset
        b.put_i32(sys_flag);
        b.put_i64(111); // born
        b.put_slice(&[10, 0, 0, 1]);
        b.put_i32(4000);
        b.put_i64(222); // store
        b.put_slice(&[127, 0, 0, 1]);
        b.put_i32(10911);
        b.put_i32(0); // reconsume
        b.put_i64(0); // prepared tx
        b.put_i32(body.len() as i32);
        b.put_slice(body);
        if magic == MAGIC_V2 {
            b.put_i16(topic.len() as i16);
        } else {
            b.put_i8(topic.len() as i8);
        }
        b.put_slice(topic.as_bytes());
        b.put_i16(props.len() as i16);
        b.put_slice(props.as_bytes());
        let n = b.len() as i32;
        b[0..4].copy_from_slice(&n.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn decodes_v1_and_v2_records_back_to_back() {
        let props = encode_properties(&[
            ("UNIQ_KEY".into(), "ABC".into()),
            ("TAGS".into(), "t".into()),
        ]);
        let mut all = BytesMut::new();
        all.extend_from_slice(&stored_record(MAGIC_V1, "T1", &props, b"\x00body"));
        all.extend_from_slice(&stored_record(MAGIC_V2, "T2", "", b""));
        let msgs = decode_stored_messages(all.freeze()).unwrap();
        assert_eq!(msgs.len(), 2);
        let m = &msgs[0];
        assert_eq!(m.message.topic(), "T1");
        assert_eq!(&m.message.body()[..], b"\x00body");
        assert_eq!(m.message.tags(), Some("t"));
        assert_eq!(m.msg_id(), "ABC");
        assert_eq!(m.queue_id, 2);
        assert_eq!(m.queue_offset, 9);
        assert_eq!(m.message.flag(), 5);
        assert_eq!(m.store_host, "127.0.0.1:10911".parse().unwrap());
        assert_eq!(m.born_host, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(m.offset_msg_id, offset_msg_id(&m.store_host, 1000));
        assert_eq!(msgs[1].message.topic(), "T2");
        assert_eq!(msgs[1].msg_id(), msgs[1].offset_msg_id);
    }

    #[test]
    fn compressed_bodies_are_read_back_whichever_codec_wrote_them() {
        use crate::protocol::compression::{compress, Codec};
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 97) as u8).collect();
        for codec in [Codec::Zlib, Codec::Lz4, Codec::Zstd] {
            let packed = compress(codec, 5, &body).unwrap();
            let rec = stored_record_with(MAGIC_V1, codec.sys_flag() | 0x2, "T", "", &packed);
            let m = decode_stored_messages(rec).unwrap().remove(0);
            assert_eq!(&m.message.body()[..], &body[..], "{codec:?}");
            // the compressed bit is cleared as Java's decoder does; the others stay
            assert_eq!(m.sys_flag, codec.sys_flag() & !1 | 0x2);
        }
        // bit 0 alone: a pre-4.9.4 zlib sender
        let packed = compress(Codec::Zlib, 5, &body).unwrap();
        let rec = stored_record_with(MAGIC_V1, 1, "T", "", &packed);
        assert_eq!(
            &decode_stored_messages(rec).unwrap()[0].message.body()[..],
            &body[..]
        );
    }

    #[test]
    fn one_bad_body_spoils_only_its_own_record() {
        let good = stored_record(MAGIC_V1, "T", "", b"fine");
        let bad = stored_record_with(MAGIC_V1, 0x301, "T", "", b"not zlib");
        let mut all = BytesMut::new();
        for r in [&good, &bad, &good] {
            all.extend_from_slice(r);
        }
        let records = decode_stored_records(all.clone().freeze());
        assert_eq!(records.len(), 3);
        assert!(records[0].is_ok() && records[2].is_ok());
        let e = records[1].as_ref().unwrap_err().to_string();
        assert!(
            e.contains("zlib body") && e.contains("does not decompress"),
            "{e}"
        );
        // all-or-nothing for a single view
        assert!(decode_stored_messages(all.freeze()).is_err());
    }

    #[test]
    fn malformed_records_are_errors() {
        let rec = stored_record(MAGIC_V1, "T", "", b"x");
        assert!(decode_stored_messages(rec.slice(..rec.len() - 1)).is_err());
        let mut bad_magic = BytesMut::from(&rec[..]);
        bad_magic[4] = 0;
        assert!(decode_stored_messages(bad_magic.freeze()).is_err());
    }
}
