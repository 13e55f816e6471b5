//! Requests of the push consumer: pull, offsets, consumer list, send-back, unregister.
use std::borrow::Cow::Borrowed;

use super::code::request;
use crate::remoting::RemotingCommand;

/// PullSysFlag bits.
pub const PULL_FLAG_COMMIT_OFFSET: i32 = 0x1;
pub const PULL_FLAG_SUSPEND: i32 = 0x2;
pub const PULL_FLAG_SUBSCRIPTION: i32 = 0x4;

/// Fields of one PULL_MESSAGE request.
#[derive(Debug, Clone)]
pub struct PullRequest<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    pub broker_name: &'a str,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub max_msg_nums: i32,
    pub commit_offset: i64,
    pub suspend_timeout_ms: i64,
    pub sub_version: i64,
    pub expression_type: &'a str,
    /// The expression, sent with the pull (the lite pull consumer's way): the broker filters by
    /// it instead of the group's subscription from heartbeats.
    pub subscription: Option<&'a str>,
}

pub fn pull_message(p: &PullRequest<'_>) -> RemotingCommand {
    let mut sys_flag = PULL_FLAG_SUSPEND;
    if p.commit_offset > 0 {
        sys_flag |= PULL_FLAG_COMMIT_OFFSET;
    }
    if p.subscription.is_some() {
        sys_flag |= PULL_FLAG_SUBSCRIPTION;
    }
    let mut fields = vec![
        (Borrowed("consumerGroup"), p.group.to_string()),
        (Borrowed("topic"), p.topic.to_string()),
        (Borrowed("queueId"), p.queue_id.to_string()),
        (Borrowed("queueOffset"), p.queue_offset.to_string()),
        (Borrowed("maxMsgNums"), p.max_msg_nums.to_string()),
        (Borrowed("sysFlag"), sys_flag.to_string()),
        (Borrowed("commitOffset"), p.commit_offset.max(0).to_string()),
        (
            Borrowed("suspendTimeoutMillis"),
            p.suspend_timeout_ms.to_string(),
        ),
        (Borrowed("subVersion"), p.sub_version.to_string()),
        (Borrowed("expressionType"), p.expression_type.to_string()),
        (Borrowed("bname"), p.broker_name.to_string()),
    ];
    if let Some(s) = p.subscription {
        fields.push((Borrowed("subscription"), s.to_string()));
    }
    RemotingCommand::request(request::PULL_MESSAGE, fields)
}

fn queue_fields(
    group: &str,
    topic: &str,
    broker_name: &str,
    queue_id: i32,
) -> Vec<(std::borrow::Cow<'static, str>, String)> {
    vec![
        (Borrowed("consumerGroup"), group.to_string()),
        (Borrowed("topic"), topic.to_string()),
        (Borrowed("queueId"), queue_id.to_string()),
        (Borrowed("bname"), broker_name.to_string()),
    ]
}

/// QUERY_CONSUMER_OFFSET; QUERY_NOT_FOUND when the group has no offset for the queue (the
/// consumer then applies consume-from-where itself, so the broker is not asked to guess 0).
pub fn query_consumer_offset(
    group: &str,
    topic: &str,
    broker_name: &str,
    queue_id: i32,
) -> RemotingCommand {
    let mut fields = queue_fields(group, topic, broker_name, queue_id);
    fields.push((Borrowed("setZeroIfNotFound"), "false".to_string()));
    RemotingCommand::request(request::QUERY_CONSUMER_OFFSET, fields)
}

/// UPDATE_CONSUMER_OFFSET: `offset` is the next offset to consume.
pub fn update_consumer_offset(
    group: &str,
    topic: &str,
    broker_name: &str,
    queue_id: i32,
    offset: i64,
) -> RemotingCommand {
    let mut fields = queue_fields(group, topic, broker_name, queue_id);
    fields.push((Borrowed("commitOffset"), offset.to_string()));
    RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, fields)
}

pub fn get_max_offset(topic: &str, broker_name: &str, queue_id: i32) -> RemotingCommand {
    queue_bound(request::GET_MAX_OFFSET, topic, broker_name, queue_id)
}

/// GET_MIN_OFFSET: the queue's lowest offset still stored.
pub fn get_min_offset(topic: &str, broker_name: &str, queue_id: i32) -> RemotingCommand {
    queue_bound(request::GET_MIN_OFFSET, topic, broker_name, queue_id)
}

fn queue_bound(code: i32, topic: &str, broker_name: &str, queue_id: i32) -> RemotingCommand {
    RemotingCommand::request(
        code,
        vec![
            (Borrowed("topic"), topic.to_string()),
            (Borrowed("queueId"), queue_id.to_string()),
            (Borrowed("bname"), broker_name.to_string()),
        ],
    )
}

pub fn search_offset_by_timestamp(
    topic: &str,
    broker_name: &str,
    queue_id: i32,
    timestamp_ms: i64,
) -> RemotingCommand {
    RemotingCommand::request(
        request::SEARCH_OFFSET_BY_TIMESTAMP,
        vec![
            (Borrowed("topic"), topic.to_string()),
            (Borrowed("queueId"), queue_id.to_string()),
            (Borrowed("timestamp"), timestamp_ms.to_string()),
            (Borrowed("bname"), broker_name.to_string()),
        ],
    )
}

pub fn get_consumer_list_by_group(group: &str) -> RemotingCommand {
    RemotingCommand::request(
        request::GET_CONSUMER_LIST_BY_GROUP,
        vec![(Borrowed("consumerGroup"), group.to_string())],
    )
}

/// The `consumerIdList` of a GET_CONSUMER_LIST_BY_GROUP answer.
pub fn parse_consumer_list(body: &[u8]) -> crate::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        #[serde(default)]
        consumer_id_list: Vec<String>,
    }
    let b: Body = serde_json::from_slice(&super::json::quote_bare_keys(body))
        .map_err(|e| crate::Error::Protocol(format!("bad consumer list JSON: {e}")))?;
    Ok(b.consumer_id_list)
}

/// Fields of one CONSUMER_SEND_MSG_BACK request.
#[derive(Debug, Clone)]
pub struct SendBack<'a> {
    pub group: &'a str,
    pub commit_log_offset: i64,
    pub delay_level: i32,
    pub origin_msg_id: &'a str,
    pub origin_topic: &'a str,
    pub max_reconsume_times: i32,
    pub broker_name: &'a str,
}

pub fn consumer_send_msg_back(s: &SendBack<'_>) -> RemotingCommand {
    RemotingCommand::request(
        request::CONSUMER_SEND_MSG_BACK,
        vec![
            (Borrowed("offset"), s.commit_log_offset.to_string()),
            (Borrowed("group"), s.group.to_string()),
            (Borrowed("delayLevel"), s.delay_level.to_string()),
            (Borrowed("originMsgId"), s.origin_msg_id.to_string()),
            (Borrowed("originTopic"), s.origin_topic.to_string()),
            (Borrowed("unitMode"), "false".to_string()),
            (
                Borrowed("maxReconsumeTimes"),
                s.max_reconsume_times.to_string(),
            ),
            (Borrowed("bname"), s.broker_name.to_string()),
        ],
    )
}

pub fn unregister_consumer(client_id: &str, group: &str) -> RemotingCommand {
    RemotingCommand::request(
        request::UNREGISTER_CLIENT,
        vec![
            (Borrowed("clientID"), client_id.to_string()),
            (Borrowed("consumerGroup"), group.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_sets_commit_bit_only_with_an_offset() {
        let mut p = PullRequest {
            group: "G",
            topic: "T",
            broker_name: "b",
            queue_id: 1,
            queue_offset: 5,
            max_msg_nums: 32,
            commit_offset: 0,
            suspend_timeout_ms: 15000,
            sub_version: 7,
            expression_type: "TAG",
            subscription: None,
        };
        assert_eq!(pull_message(&p).ext("sysFlag"), Some("2"));
        assert_eq!(pull_message(&p).ext("subscription"), None);
        p.commit_offset = 3;
        let cmd = pull_message(&p);
        assert_eq!(cmd.ext("sysFlag"), Some("3"));
        assert_eq!(cmd.ext("commitOffset"), Some("3"));
        assert_eq!(cmd.ext("queueOffset"), Some("5"));
        p.commit_offset = 0;
        p.subscription = Some("a || b");
        let cmd = pull_message(&p);
        assert_eq!(cmd.ext("sysFlag"), Some("6"), "suspend + subscription");
        assert_eq!(cmd.ext("subscription"), Some("a || b"));
    }

    #[test]
    fn consumer_list_parses() {
        let ids = parse_consumer_list(br#"{"consumerIdList":["a@1","b@2"]}"#).unwrap();
        assert_eq!(ids, vec!["a@1", "b@2"]);
    }
}
