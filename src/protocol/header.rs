//! Typed request headers, written straight into ext fields (no per-request maps).
use std::borrow::Cow::Borrowed;

use bytes::Bytes;

use super::code::request;
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

/// SendMessageRequestHeaderV2 (short keys a..n).
pub struct SendMessageHeader<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: &'a str,
    pub broker_name: &'a str,
}

pub fn send_message_v2(h: &SendMessageHeader<'_>, body: Bytes) -> RemotingCommand {
    RemotingCommand::request(
        request::SEND_MESSAGE_V2,
        vec![
            (Borrowed("a"), h.producer_group.to_string()),
            (Borrowed("b"), h.topic.to_string()),
            (Borrowed("c"), AUTO_CREATE_TOPIC_KEY.to_string()),
            (Borrowed("d"), DEFAULT_TOPIC_QUEUE_NUMS.to_string()),
            (Borrowed("e"), h.queue_id.to_string()),
            (Borrowed("f"), h.sys_flag.to_string()),
            (Borrowed("g"), h.born_timestamp.to_string()),
            (Borrowed("h"), h.flag.to_string()),
            (Borrowed("i"), h.properties.to_string()),
            (Borrowed("j"), "0".to_string()),
            (Borrowed("k"), "false".to_string()),
            (Borrowed("m"), "false".to_string()),
            (Borrowed("n"), h.broker_name.to_string()),
        ],
    )
    .with_body(body)
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
        let cmd = send_message_v2(
            &SendMessageHeader {
                producer_group: "G",
                topic: "T",
                queue_id: 3,
                sys_flag: 0,
                born_timestamp: 17,
                flag: 0,
                properties: "WAIT\u{1}true\u{2}",
                broker_name: "broker-a",
            },
            Bytes::from_static(b"x"),
        );
        assert_eq!(cmd.code, 310);
        for (k, v) in [
            ("a", "G"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "3"),
            ("g", "17"),
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
