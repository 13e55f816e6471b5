//! The broker's requests about a client's consumers, as the admin tools (mqadmin, the dashboard)
//! cause them: GET_CONSUMER_RUNNING_INFO (307), GET_CONSUMER_STATUS_FROM_CLIENT (221),
//! RESET_CONSUMER_CLIENT_OFFSET (220) and CONSUME_MESSAGE_DIRECTLY (309). Each processor finds
//! the consumer of the request's group in the instance and asks it through `ConsumerMember`;
//! they run on the instance's broker-request executor, never on the thread that read the socket.
//! Bodies follow the Java classes of the same names (`ConsumerRunningInfo`,
//! `GetConsumerStatusBody`, `ResetOffsetBody`, `ConsumeMessageDirectlyResult`), maps keyed by
//! message queue in fastjson's form (`protocol::mq_map`).
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::instance::{ConsumerMember, Consumers};
use super::MessageQueue;
use crate::protocol::code::{request, response};
use crate::protocol::message::{decode_stored_messages, MessageExt};
use crate::protocol::mq_map;
use crate::remoting::processor::RequestProcessor;
use crate::remoting::RemotingCommand;

/// Java's `ProcessQueueInfo` of one owned queue.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessQueueInfo {
    pub commit_offset: i64,
    pub cached_msg_min_offset: i64,
    pub cached_msg_max_offset: i64,
    pub cached_msg_count: i32,
    #[serde(rename = "cachedMsgSizeInMiB")]
    pub cached_msg_size_in_mib: i32,
    pub transaction_msg_min_offset: i64,
    pub transaction_msg_max_offset: i64,
    pub transaction_msg_count: i32,
    pub locked: bool,
    pub try_unlock_times: i64,
    pub last_lock_timestamp: i64,
    /// Java's spelling.
    #[serde(rename = "droped")]
    pub dropped: bool,
    pub last_pull_timestamp: i64,
    pub last_consume_timestamp: i64,
}

/// Java's `ConsumeStatus` of one topic (rates per second, times in ms).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumeStatus {
    #[serde(rename = "pullRT")]
    pub pull_rt: f64,
    #[serde(rename = "pullTPS")]
    pub pull_tps: f64,
    #[serde(rename = "consumeRT")]
    pub consume_rt: f64,
    #[serde(rename = "consumeOKTPS")]
    pub consume_ok_tps: f64,
    #[serde(rename = "consumeFailedTPS")]
    pub consume_failed_tps: f64,
    #[serde(rename = "consumeFailedMsgs")]
    pub consume_failed_msgs: i64,
}

/// What a consumer reports for GET_CONSUMER_RUNNING_INFO.
#[derive(Debug, Clone, Default)]
pub struct RunningInfo {
    /// Java's `PROP_*` keys and the consumer's settings under Java's property names.
    pub properties: BTreeMap<String, String>,
    /// SubscriptionData JSON objects.
    pub subscriptions: Vec<serde_json::Value>,
    pub queues: Vec<(MessageQueue, ProcessQueueInfo)>,
    /// By topic.
    pub status: BTreeMap<String, ConsumeStatus>,
}

impl RunningInfo {
    /// The ConsumerRunningInfo JSON (fastjson form: queue objects as map keys).
    pub fn encode(&self, jstack: Option<&str>) -> String {
        let mut s = String::from("{");
        if let Some(j) = jstack {
            s.push_str("\"jstack\":");
            s.push_str(&json(j));
            s.push(',');
        }
        s.push_str("\"mqPopTable\":{},\"mqTable\":");
        let mut queues: Vec<&(MessageQueue, ProcessQueueInfo)> = self.queues.iter().collect();
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        mq_map::write_map(&mut s, queues.iter().map(|(q, i)| (q, json(i))));
        s.push_str(",\"properties\":");
        s.push_str(&json(&self.properties));
        s.push_str(",\"statusTable\":");
        s.push_str(&json(&self.status));
        s.push_str(",\"subscriptionSet\":");
        s.push_str(&json(&self.subscriptions));
        s.push_str(",\"userConsumerInfo\":{}}");
        s
    }
}

/// Java's `CMResult` of a CONSUME_MESSAGE_DIRECTLY call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectOutcome {
    Success,
    Later,
    ThrowException,
}

#[derive(Debug, Clone)]
pub struct DirectResult {
    pub outcome: DirectOutcome,
    pub remark: Option<String>,
    pub spent_ms: i64,
}

impl DirectResult {
    /// The ConsumeMessageDirectlyResult JSON.
    pub fn encode(&self) -> String {
        let result = match self.outcome {
            DirectOutcome::Success => "CR_SUCCESS",
            DirectOutcome::Later => "CR_LATER",
            DirectOutcome::ThrowException => "CR_THROW_EXCEPTION",
        };
        let mut v = serde_json::json!({
            "autoCommit": true,
            "consumeResult": result,
            "order": false,
            "spentTimeMills": self.spent_ms,
        });
        if let Some(r) = &self.remark {
            v["remark"] = serde_json::Value::from(r.as_str());
        }
        v.to_string()
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Registers the four processors in the instance's registry.
pub(crate) fn processors(consumers: &Consumers) -> Vec<(i32, Arc<dyn RequestProcessor>)> {
    let c = || Arc::clone(consumers);
    vec![
        (
            request::GET_CONSUMER_RUNNING_INFO,
            Arc::new(RunningInfoProcessor(c())),
        ),
        (
            request::GET_CONSUMER_STATUS_FROM_CLIENT,
            Arc::new(StatusProcessor(c())),
        ),
        (
            request::RESET_CONSUMER_CLIENT_OFFSET,
            Arc::new(ResetProcessor(c())),
        ),
        (
            request::CONSUME_MESSAGE_DIRECTLY,
            Arc::new(DirectProcessor(c())),
        ),
    ]
}

fn member_of(consumers: &Consumers, group: &str) -> Option<Arc<dyn ConsumerMember>> {
    consumers
        .lock()
        .iter()
        .find(|(g, _)| g == group)
        .map(|(_, m)| Arc::clone(m))
}

fn not_here(request: &RemotingCommand, group: &str) -> RemotingCommand {
    RemotingCommand::response_to(
        request,
        response::SYSTEM_ERROR,
        Some(format!(
            "The Consumer Group <{group}> not exist in this consumer"
        )),
    )
}

fn success(request: &RemotingCommand, body: String) -> RemotingCommand {
    RemotingCommand::response_to(request, response::SUCCESS, None).with_body(Bytes::from(body))
}

/// The names of this process's threads, one a line, for `jstackEnable` (a Rust process has no
/// Java stacks to show; the thread list is what can be said cheaply).
fn thread_list() -> String {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return String::new();
    };
    let mut lines: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let tid = e.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            Some(format!("\"{}\" tid={tid}", name.trim()))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

struct RunningInfoProcessor(Consumers);

impl RequestProcessor for RunningInfoProcessor {
    fn process(&self, _remote: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let group = request.ext("consumerGroup").unwrap_or("").to_string();
        let info = member_of(&self.0, &group).and_then(|m| m.running_info());
        Some(match info {
            Some(info) => {
                let jstack = (request.ext("jstackEnable") == Some("true")).then(thread_list);
                success(&request, info.encode(jstack.as_deref()))
            }
            None => not_here(&request, &group),
        })
    }
}

struct StatusProcessor(Consumers);

impl RequestProcessor for StatusProcessor {
    fn process(&self, _remote: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let group = request.ext("group").unwrap_or("");
        let topic = request.ext("topic").unwrap_or("");
        let mut table = member_of(&self.0, group)
            .map(|m| m.offset_table(topic))
            .unwrap_or_default();
        table.sort_by(|a, b| a.0.cmp(&b.0));
        let mut body = String::from("{\"consumerTable\":{},\"messageQueueTable\":");
        mq_map::write_map(&mut body, table.iter().map(|(q, o)| (q, o.to_string())));
        body.push('}');
        Some(success(&request, body))
    }
}

struct ResetProcessor(Consumers);

impl RequestProcessor for ResetProcessor {
    fn process(&self, _remote: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let group = request.ext("group").unwrap_or("");
        let topic = request.ext("topic").unwrap_or("").to_string();
        let table = match mq_map::parse_offset_table(&request.body, "offsetTable") {
            Ok(t) => t,
            Err(e) => {
                crate::log_warn!(
                    "rmq::consumer",
                    "offset reset of group {group} topic {topic} ignored: {e}"
                );
                return None;
            }
        };
        let table: Vec<(MessageQueue, i64)> = table
            .into_iter()
            .filter(|(q, _)| *q.topic == *topic)
            .collect();
        if let Some(m) = member_of(&self.0, group) {
            m.reset_offsets(&topic, table);
        }
        // Sent oneway by the broker: nothing to answer.
        None
    }
}

struct DirectProcessor(Consumers);

impl RequestProcessor for DirectProcessor {
    fn process(&self, _remote: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let group = request.ext("consumerGroup").unwrap_or("").to_string();
        let Some(member) = member_of(&self.0, &group) else {
            return Some(not_here(&request, &group));
        };
        let msg: Option<MessageExt> = decode_stored_messages(request.body.clone())
            .ok()
            .and_then(|v| v.into_iter().next());
        let Some(mut msg) = msg else {
            return Some(RemotingCommand::response_to(
                &request,
                response::SYSTEM_ERROR,
                Some("the request body holds no readable message".into()),
            ));
        };
        if let Some(b) = request.ext("brokerName") {
            msg.broker_name = Arc::from(b);
        }
        Some(match member.consume_directly(msg) {
            Some(r) => success(&request, r.encode()),
            None => not_here(&request, &group),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_info_has_javas_field_names_and_queue_keys() {
        let mut info = RunningInfo::default();
        info.properties
            .insert("PROP_CONSUME_TYPE".into(), "CONSUME_PASSIVELY".into());
        info.queues.push((
            MessageQueue {
                topic: Arc::from("T"),
                broker_name: Arc::from("b"),
                queue_id: 1,
            },
            ProcessQueueInfo {
                commit_offset: 5,
                dropped: true,
                ..Default::default()
            },
        ));
        info.status.insert("T".into(), ConsumeStatus::default());
        let s = info.encode(Some(""));
        assert!(s.starts_with("{\"jstack\":\"\",\"mqPopTable\":{},\"mqTable\":{{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T\"}:{\"commitOffset\":5,"), "{s}");
        for key in [
            "\"cachedMsgSizeInMiB\":0",
            "\"droped\":true",
            "\"pullRT\":0.0",
            "\"consumeOKTPS\":0.0",
            "\"consumeFailedMsgs\":0",
            "\"PROP_CONSUME_TYPE\":\"CONSUME_PASSIVELY\"",
            "\"subscriptionSet\":[]",
        ] {
            assert!(s.contains(key), "{key} in {s}");
        }
        let table = mq_map::parse_offset_table(s.as_bytes(), "mqTable");
        assert!(table.is_err(), "values are objects, not offsets");
    }

    #[test]
    fn direct_result_is_javas_json() {
        let r = DirectResult {
            outcome: DirectOutcome::Later,
            remark: None,
            spent_ms: 3,
        };
        assert_eq!(
            r.encode(),
            r#"{"autoCommit":true,"consumeResult":"CR_LATER","order":false,"spentTimeMills":3}"#
        );
    }
}
