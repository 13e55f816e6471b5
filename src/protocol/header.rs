//! Typed request headers, written straight into ext fields (no per-request maps).
use std::borrow::Cow::Borrowed;
use std::sync::Arc;

use bytes::Bytes;

use super::code::request;
use crate::remoting::command::{int_text, ExtFields, TypedHeader};
use crate::remoting::RemotingCommand;

/// Template topic for auto-created topics.
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

pub fn get_route_info(topic: &str) -> RemotingCommand {
    RemotingCommand::request(
        request::GET_ROUTEINFO_BY_TOPIC,
        vec![
            (Borrowed("topic"), topic.to_string()),
            // Ask for quoted map keys; the lenient parser still copes with old name servers.
            (Borrowed("acceptStandardJsonOnly"), "true".to_string()),
        ],
    )
}

/// SendMessageRequestHeaderV2 (short keys a..n), written straight into the frame: the text
/// fields are shared with the prepared message and the route, the numbers are formatted on the
/// stack.
#[derive(Debug)]
pub struct SendMessageHeader {
    pub producer_group: Arc<str>,
    pub topic: Arc<str>,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Arc<str>,
    pub broker_name: Arc<str>,
    /// SEND_BATCH_MESSAGE: the body holds several encoded messages.
    pub batch: bool,
    /// `j`: for `%RETRY%` topics, how often the message was consumed already (the broker stores
    /// it, and moves the message to the DLQ once it exceeds `max_reconsume_times`); else 0.
    pub reconsume_times: i32,
    /// `l`: for `%RETRY%` topics, the consumer's max-reconsume-times; not sent when None.
    pub max_reconsume_times: Option<i32>,
    /// SEND_REPLY_MESSAGE_V2: a reply of request-reply (property MSG_TYPE=reply), as Java sends.
    pub reply: bool,
}

impl TypedHeader for SendMessageHeader {
    fn visit(&self, f: &mut dyn FnMut(&str, &str)) {
        let mut buf = [0u8; 20];
        f("a", &self.producer_group);
        f("b", &self.topic);
        f("c", AUTO_CREATE_TOPIC_KEY);
        f("d", "4");
        f("e", int_text(self.queue_id as i64, &mut buf));
        f("f", int_text(self.sys_flag as i64, &mut buf));
        f("g", int_text(self.born_timestamp, &mut buf));
        f("h", int_text(self.flag as i64, &mut buf));
        f("i", &self.properties);
        f("j", int_text(self.reconsume_times as i64, &mut buf));
        f("k", "false");
        if let Some(max) = self.max_reconsume_times {
            f("l", int_text(max as i64, &mut buf));
        }
        f("m", if self.batch { "true" } else { "false" });
        f("n", &self.broker_name);
    }
}

/// SEND_MESSAGE_V2, or SEND_BATCH_MESSAGE when the header says `batch`, or SEND_REPLY_MESSAGE_V2
/// when it says `reply` (same header).
pub fn send_message_v2(h: SendMessageHeader, body: Bytes) -> RemotingCommand {
    let code = if h.batch {
        request::SEND_BATCH_MESSAGE
    } else if h.reply {
        request::SEND_REPLY_MESSAGE_V2
    } else {
        request::SEND_MESSAGE_V2
    };
    RemotingCommand::request(code, ExtFields::Typed(Arc::new(h))).with_body(body)
}

pub fn view_message_by_id(commit_log_offset: i64) -> RemotingCommand {
    RemotingCommand::request(
        request::VIEW_MESSAGE_BY_ID,
        vec![(Borrowed("offset"), commit_log_offset.to_string())],
    )
}

/// QUERY_MESSAGE: messages whose KEYS (or UNIQ_KEY) index entry matches `key`.
pub fn query_message(
    topic: &str,
    key: &str,
    max_num: i32,
    begin_ms: i64,
    end_ms: i64,
) -> RemotingCommand {
    RemotingCommand::request(
        request::QUERY_MESSAGE,
        vec![
            (Borrowed("topic"), topic.to_string()),
            (Borrowed("key"), key.to_string()),
            (Borrowed("maxNum"), max_num.to_string()),
            (Borrowed("beginTimestamp"), begin_ms.to_string()),
            (Borrowed("endTimestamp"), end_ms.to_string()),
            (Borrowed("_UNIQUE_KEY_QUERY"), "false".to_string()),
        ],
    )
}

/// HEART_BEAT with the client's producer groups and consumer data (ConsumerData JSON objects).
pub fn heartbeat(
    client_id: &str,
    producer_groups: &[String],
    consumer_data: &[serde_json::Value],
) -> RemotingCommand {
    let mut groups: Vec<serde_json::Value> = producer_groups
        .iter()
        .map(|g| serde_json::json!({ "groupName": g }))
        .collect();
    groups.push(serde_json::json!({ "groupName": CLIENT_INNER_PRODUCER_GROUP }));
    let body = serde_json::json!({
        "clientID": client_id,
        "consumerDataSet": consumer_data,
        "heartbeatFingerprint": 0,
        "producerDataSet": groups,
    });
    RemotingCommand::request(request::HEART_BEAT, Vec::new()).with_body(Bytes::from(
        serde_json::to_vec(&body).expect("JSON of plain values"),
    ))
}

pub fn unregister_client(client_id: &str, producer_group: &str) -> RemotingCommand {
    RemotingCommand::request(
        request::UNREGISTER_CLIENT,
        vec![
            (Borrowed("clientID"), client_id.to_string()),
            (Borrowed("producerGroup"), producer_group.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_header_uses_v2_short_keys() {
        let sent = send_message_v2(
            SendMessageHeader {
                producer_group: "G".into(),
                topic: "T".into(),
                queue_id: 3,
                sys_flag: 0,
                born_timestamp: 17,
                flag: 0,
                properties: "WAIT\u{1}true\u{2}".into(),
                broker_name: "broker-a".into(),
                batch: false,
                reconsume_times: 2,
                max_reconsume_times: Some(5),
                reply: false,
            },
            Bytes::from_static(b"x"),
        );
        // typed headers are write-only: read the fields back as the broker would
        use crate::remoting::codec::{decode_frame, encode_frame};
        use crate::remoting::SerializeType;
        for ser in [SerializeType::Json, SerializeType::RocketMq] {
            let mut frame = encode_frame(&sent, ser).unwrap();
            let cmd = decode_frame(&mut frame).unwrap().unwrap();
            check_send_fields(&cmd);
        }
    }

    fn check_send_fields(cmd: &RemotingCommand) {
        assert_eq!(cmd.code, 310);
        for (k, v) in [
            ("a", "G"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("f", "0"),
            ("g", "17"),
            ("i", "WAIT\u{1}true\u{2}"),
            ("j", "2"),
            ("k", "false"),
            ("l", "5"),
            ("n", "broker-a"),
        ] {
            assert_eq!(cmd.ext(k), Some(v), "key {k}");
        }
        assert_eq!(&cmd.body[..], b"x");
    }

    #[test]
    fn heartbeat_body_lists_groups() {
        let cmd = heartbeat("1.2.3.4@x", &["G1".to_string()], &[]);
        let v: serde_json::Value = serde_json::from_slice(&cmd.body).unwrap();
        assert_eq!(v["clientID"], "1.2.3.4@x");
        assert_eq!(v["producerDataSet"][0]["groupName"], "G1");
        assert_eq!(
            v["producerDataSet"][1]["groupName"],
            "CLIENT_INNER_PRODUCER"
        );
        assert_eq!(v["consumerDataSet"].as_array().unwrap().len(), 0);
    }
}
