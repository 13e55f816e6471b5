//! POP consumption (5.x brokers): POP_MESSAGE, ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME and
//! QUERY_ASSIGNMENT, and the per-message receipt ("extra info", property `POP_CK`) that acks and
//! invisible-time changes name a popped message by.
//!
//! The 2000xx codes do not fit the binary header's 16-bit code field; the connection writes such
//! requests with a JSON header.
use std::borrow::Cow::Borrowed;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::client::MessageQueue;
use crate::error::{Error, Result};
use crate::protocol::message::MessageExt;
use crate::remoting::RemotingCommand;

pub const POP_MESSAGE: i32 = 200050;
pub const ACK_MESSAGE: i32 = 200051;
pub const CHANGE_MESSAGE_INVISIBLETIME: i32 = 200053;
pub const QUERY_ASSIGNMENT: i32 = 400;
/// Answers of a long-polling pop that found nothing in time (`ResponseCode`).
pub const POLLING_FULL: i32 = 209;
pub const POLLING_TIMEOUT: i32 = 210;

/// Property that carries a popped message's receipt.
pub const PROPERTY_POP_CK: &str = "POP_CK";
/// Property with the time of the message's first pop.
pub const PROPERTY_FIRST_POP_TIME: &str = "1ST_POP_TIME";

/// `ConsumeInitMode`: where a group without an offset starts popping a queue.
pub const INIT_MODE_MIN: i32 = 0;
pub const INIT_MODE_MAX: i32 = 1;

/// Fields of one POP_MESSAGE request.
#[derive(Debug, Clone)]
pub struct PopRequest<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub broker_name: &'a str,
    /// -1: every queue of the topic on that broker.
    pub queue_id: i32,
    pub max_msg_nums: i32,
    pub invisible_time_ms: i64,
    /// How long the broker may hold the request when nothing is there (long polling).
    pub poll_time_ms: i64,
    pub born_time_ms: i64,
    pub init_mode: i32,
    pub expression_type: &'a str,
    pub expression: &'a str,
    pub order: bool,
}

pub fn pop_message(p: &PopRequest<'_>) -> RemotingCommand {
    RemotingCommand::request(
        POP_MESSAGE,
        vec![
            (Borrowed("consumerGroup"), p.group.to_string()),
            (Borrowed("topic"), p.topic.to_string()),
            (Borrowed("queueId"), p.queue_id.to_string()),
            (Borrowed("maxMsgNums"), p.max_msg_nums.to_string()),
            (Borrowed("invisibleTime"), p.invisible_time_ms.to_string()),
            (Borrowed("pollTime"), p.poll_time_ms.to_string()),
            (Borrowed("bornTime"), p.born_time_ms.to_string()),
            (Borrowed("initMode"), p.init_mode.to_string()),
            (Borrowed("expType"), p.expression_type.to_string()),
            (Borrowed("exp"), p.expression.to_string()),
            (Borrowed("order"), p.order.to_string()),
            (Borrowed("bname"), p.broker_name.to_string()),
        ],
    )
}

/// Retry flag of a receipt: 0 the topic itself, 1 `%RETRY%<group>_<topic>`, 2
/// `%RETRY%<group>+<topic>`.
fn retry_flag(topic: &str) -> &'static str {
    if topic.starts_with("%RETRY%") {
        if topic.contains('+') {
            "2"
        } else {
            "1"
        }
    } else {
        "0"
    }
}

/// A popped message's receipt: `ckQueueOffset popTime invisibleTime reviveQid retryFlag
/// brokerName queueId queueOffset`, space separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub ck_queue_offset: i64,
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    pub retry: String,
    pub broker_name: String,
    pub queue_id: i32,
    pub queue_offset: i64,
}

impl Receipt {
    pub fn parse(s: &str) -> Result<Receipt> {
        let bad = || Error::Protocol(format!("malformed pop receipt '{s}'"));
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() < 8 {
            return Err(bad());
        }
        Ok(Receipt {
            ck_queue_offset: f[0].parse().map_err(|_| bad())?,
            pop_time: f[1].parse().map_err(|_| bad())?,
            invisible_time: f[2].parse().map_err(|_| bad())?,
            revive_qid: f[3].parse().map_err(|_| bad())?,
            retry: f[4].to_string(),
            broker_name: f[5].to_string(),
            queue_id: f[6].parse().map_err(|_| bad())?,
            queue_offset: f[7].parse().map_err(|_| bad())?,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            self.ck_queue_offset,
            self.pop_time,
            self.invisible_time,
            self.revive_qid,
            self.retry,
            self.broker_name,
            self.queue_id,
            self.queue_offset
        )
    }

    /// The topic the receipt's queue belongs to: `topic` or one of its pop retry topics.
    pub fn real_topic(&self, topic: &str, group: &str) -> String {
        match self.retry.as_str() {
            "1" => format!("%RETRY%{group}_{topic}"),
            "2" => format!("%RETRY%{group}+{topic}"),
            _ => topic.to_string(),
        }
    }
}

/// `flag queueId value;flag queueId value` (startOffsetInfo, orderCountInfo) keyed
/// "flag@queueId"; msgOffsetInfo's values are comma-separated lists (only the first is kept).
fn parse_info(s: Option<&str>) -> HashMap<String, i64> {
    let mut map = HashMap::new();
    for one in s.unwrap_or("").split(';').filter(|x| !x.is_empty()) {
        let f: Vec<&str> = one.split(' ').collect();
        if f.len() != 3 {
            continue;
        }
        let first = f[2].split(',').next().unwrap_or("");
        if let Ok(v) = first.parse() {
            map.insert(format!("{}@{}", f[0], f[1]), v);
        }
    }
    map
}

/// What a POP_MESSAGE answer says besides its messages.
#[derive(Debug, Clone, Default)]
pub struct PopHeader {
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i32,
    start_offsets: HashMap<String, i64>,
    order_counts: HashMap<String, i64>,
}

impl PopHeader {
    pub fn from_response(resp: &RemotingCommand) -> Result<PopHeader> {
        let need = |k: &str| {
            resp.ext_parse::<i64>(k).ok_or_else(|| {
                Error::Protocol(format!("POP_MESSAGE answer without a numeric '{k}'"))
            })
        };
        Ok(PopHeader {
            pop_time: need("popTime")?,
            invisible_time: need("invisibleTime")?,
            revive_qid: need("reviveQid")? as i32,
            start_offsets: parse_info(resp.ext("startOffsetInfo")),
            order_counts: parse_info(resp.ext("orderCountInfo")),
        })
    }

    /// Gives every popped message its receipt (unless the broker already did, as it does for
    /// messages of the retry topic), its first pop time and broker name, and shows it under the
    /// topic that was popped. In orderly pops the broker's count of earlier deliveries becomes
    /// the reconsume count.
    pub fn attach(&self, topic: &str, broker_name: &Arc<str>, msgs: &mut [MessageExt]) {
        let mut first_seen: HashMap<String, i64> = HashMap::new();
        for m in msgs.iter_mut() {
            if m.message.property(PROPERTY_POP_CK).is_none() {
                let flag = retry_flag(m.message.topic());
                let key = format!("{flag}@{}", m.queue_id);
                let start = match self.start_offsets.get(&key) {
                    Some(s) => *s,
                    None => *first_seen.entry(key.clone()).or_insert(m.queue_offset),
                };
                let receipt = Receipt {
                    ck_queue_offset: start,
                    pop_time: self.pop_time,
                    invisible_time: self.invisible_time,
                    revive_qid: self.revive_qid,
                    retry: flag.to_string(),
                    broker_name: broker_name.to_string(),
                    queue_id: m.queue_id,
                    queue_offset: m.queue_offset,
                };
                m.message.put_property(PROPERTY_POP_CK, &receipt.encode());
                let by_offset = format!("{flag}@qo{}%{}", m.queue_id, m.queue_offset);
                let count = self
                    .order_counts
                    .get(&by_offset)
                    .or_else(|| self.order_counts.get(&key));
                if let Some(c) = count.filter(|c| **c > 0) {
                    m.reconsume_times = *c as i32;
                }
            }
            if m.message.property(PROPERTY_FIRST_POP_TIME).is_none() {
                m.message
                    .put_property(PROPERTY_FIRST_POP_TIME, &self.pop_time.to_string());
            }
            m.broker_name = Arc::clone(broker_name);
            let _ = m.message.set_topic(topic);
        }
    }
}

fn receipt_fields(
    group: &str,
    topic: &str,
    r: &Receipt,
    extra_info: &str,
) -> Vec<(std::borrow::Cow<'static, str>, String)> {
    vec![
        (Borrowed("consumerGroup"), group.to_string()),
        (Borrowed("topic"), r.real_topic(topic, group)),
        (Borrowed("queueId"), r.queue_id.to_string()),
        (Borrowed("extraInfo"), extra_info.to_string()),
        (Borrowed("offset"), r.queue_offset.to_string()),
        (Borrowed("bname"), r.broker_name.clone()),
    ]
}

/// ACK_MESSAGE for the popped message with receipt `extra_info` of `topic` (the subscribed one).
pub fn ack_message(group: &str, topic: &str, extra_info: &str) -> Result<RemotingCommand> {
    let r = Receipt::parse(extra_info)?;
    Ok(RemotingCommand::request(
        ACK_MESSAGE,
        receipt_fields(group, topic, &r, extra_info),
    ))
}

/// CHANGE_MESSAGE_INVISIBLETIME: the message comes again `invisible_time_ms` from now.
pub fn change_invisible_time(
    group: &str,
    topic: &str,
    extra_info: &str,
    invisible_time_ms: i64,
) -> Result<RemotingCommand> {
    let r = Receipt::parse(extra_info)?;
    let mut fields = receipt_fields(group, topic, &r, extra_info);
    fields.push((Borrowed("invisibleTime"), invisible_time_ms.to_string()));
    Ok(RemotingCommand::request(
        CHANGE_MESSAGE_INVISIBLETIME,
        fields,
    ))
}

/// QUERY_ASSIGNMENT: the broker allocates the topic's queues among the group's consumers.
/// `strategy` is the broker's name of the strategy (AVG, AVG_BY_CIRCLE).
pub fn query_assignment(
    topic: &str,
    group: &str,
    client_id: &str,
    strategy: &str,
) -> RemotingCommand {
    let body = serde_json::json!({
        "topic": topic,
        "consumerGroup": group,
        "clientId": client_id,
        "strategyName": strategy,
        "messageModel": "CLUSTERING",
    });
    RemotingCommand::request(QUERY_ASSIGNMENT, Vec::new()).with_body(Bytes::from(
        serde_json::to_vec(&body).expect("JSON of plain values"),
    ))
}

/// Request mode of an assignment (`MessageRequestMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMode {
    Pull,
    Pop,
}

/// The assignments of a QUERY_ASSIGNMENT answer; None when the broker could not allocate (it
/// sends no list: unknown topic, group not registered yet).
pub fn parse_assignments(body: &[u8]) -> Result<Option<Vec<(MessageQueue, RequestMode)>>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Mq {
        topic: String,
        broker_name: String,
        queue_id: i32,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Assignment {
        message_queue: Mq,
        #[serde(default)]
        mode: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(default)]
        message_queue_assignments: Option<Vec<Assignment>>,
    }
    if body.is_empty() {
        return Ok(None);
    }
    let b: Body = serde_json::from_slice(&super::json::quote_bare_keys(body))
        .map_err(|e| Error::Protocol(format!("bad QUERY_ASSIGNMENT answer: {e}")))?;
    Ok(b.message_queue_assignments.map(|list| {
        list.into_iter()
            .map(|a| {
                let mode = match a.mode.as_deref() {
                    Some("POP") => RequestMode::Pop,
                    _ => RequestMode::Pull,
                };
                (
                    MessageQueue {
                        topic: Arc::from(a.message_queue.topic.as_str()),
                        broker_name: Arc::from(a.message_queue.broker_name.as_str()),
                        queue_id: a.message_queue.queue_id,
                    },
                    mode,
                )
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_name_the_retry_topic() {
        let s = "5 1700000000000 60000 0 1 broker-a 2 7";
        let r = Receipt::parse(s).unwrap();
        assert_eq!(r.encode(), s);
        assert_eq!(r.real_topic("T", "G"), "%RETRY%G_T");
        assert_eq!(r.queue_offset, 7);
        assert!(Receipt::parse("1 2 3").is_err());
        let ack = ack_message("G", "T", s).unwrap();
        assert_eq!(ack.ext("topic"), Some("%RETRY%G_T"));
        assert_eq!(ack.ext("offset"), Some("7"));
        assert_eq!(ack.ext("queueId"), Some("2"));
        let c = change_invisible_time("G", "T", "5 1 2 0 0 b 0 9", 1000).unwrap();
        assert_eq!(c.ext("topic"), Some("T"));
        assert_eq!(c.ext("invisibleTime"), Some("1000"));
    }

    #[test]
    fn info_strings_parse() {
        let m = parse_info(Some("0 1 5;1 0 9"));
        assert_eq!(m.get("0@1"), Some(&5));
        assert_eq!(m.get("1@0"), Some(&9));
        let m = parse_info(Some("0 qo1%7 2"));
        assert_eq!(m.get("0@qo1%7"), Some(&2));
        assert!(parse_info(None).is_empty());
    }

    #[test]
    fn assignments_parse() {
        let body = br#"{"messageQueueAssignments":[{"messageQueue":{"brokerName":"b","queueId":-1,"topic":"T"},"mode":"POP"},{"messageQueue":{"brokerName":"b","queueId":2,"topic":"T"},"mode":"PULL"}]}"#;
        let a = parse_assignments(body).unwrap().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].0.queue_id, -1);
        assert_eq!(a[0].1, RequestMode::Pop);
        assert_eq!(a[1].1, RequestMode::Pull);
        assert!(parse_assignments(b"{}").unwrap().is_none());
    }
}
