//! Request-reply on the client instance: the requests of its producers that wait for a reply,
//! by correlation id, and PUSH_REPLY_MESSAGE_TO_CLIENT (326), with which a broker hands this
//! client a reply that a responder sent to `<cluster>_REPLY_TOPIC`.
//!
//! The broker finds this client by the REPLY_TO_CLIENT property of the request (our client id)
//! among the producers that sent it heartbeats, and calls it synchronously; the reply is routed
//! to the waiting request by its CORRELATION_ID property and answered SUCCESS, also when nobody
//! waits for it any more (it timed out, or it was meant for another client): that is logged.
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::compression::{self, SYSFLAG_COMPRESSED};
use crate::protocol::ids;
use crate::protocol::message::{decode_properties, Message, MessageExt};
use crate::remoting::processor::RequestProcessor;
use crate::remoting::RemotingCommand;

/// Property names of request-reply, as the Java client's MessageConst spells them.
pub const PROPERTY_CORRELATION_ID: &str = "CORRELATION_ID";
pub const PROPERTY_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
pub const PROPERTY_MESSAGE_TTL: &str = "TTL";
pub const PROPERTY_MESSAGE_TYPE: &str = "MSG_TYPE";
pub const PROPERTY_CLUSTER: &str = "CLUSTER";
/// Set on a reply when it reaches the requester (ms since the epoch), as Java does.
pub const PROPERTY_REPLY_ARRIVE_TIME: &str = "ARRIVE_TIME";
/// MSG_TYPE of a reply.
pub const REPLY_MESSAGE_FLAG: &str = "reply";
/// The reply topic of cluster `c` is `c` + this.
pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";

/// Requests waiting for their reply, by correlation id.
#[derive(Default)]
pub struct PendingRequests {
    waiting: Mutex<HashMap<String, oneshot::Sender<MessageExt>>>,
}

/// A registered request; dropping it (reply received, timeout, cancel) removes it.
pub struct Waiting<'a> {
    table: &'a PendingRequests,
    correlation_id: String,
    pub reply: oneshot::Receiver<MessageExt>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.table.waiting.lock().remove(&self.correlation_id);
    }
}

impl PendingRequests {
    /// Registers a request under `correlation_id` (unique: a fresh id per request).
    pub fn register(&self, correlation_id: String) -> Waiting<'_> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(correlation_id.clone(), tx);
        Waiting {
            table: self,
            correlation_id,
            reply: rx,
        }
    }

    /// Hands `reply` to the request waiting under `correlation_id`; false when none waits.
    pub fn deliver(&self, correlation_id: &str, reply: MessageExt) -> bool {
        let waiter = self.waiting.lock().remove(correlation_id);
        match waiter {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// PUSH_REPLY_MESSAGE_TO_CLIENT: decodes the reply and routes it by correlation id.
pub(crate) struct PushReplyProcessor(pub Arc<PendingRequests>);

impl RequestProcessor for PushReplyProcessor {
    fn process(&self, remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let arrived = ids::now_ms();
        let (code, remark) = match decode_reply(&request, arrived) {
            Ok(reply) => {
                let id = reply
                    .message
                    .property(PROPERTY_CORRELATION_ID)
                    .unwrap_or("")
                    .to_string();
                if !self.0.deliver(&id, reply) {
                    crate::log_warn!(
                        "rmq::producer",
                        "a reply from {remote_addr} with correlation id '{id}' matches no request \
                         waiting in this client (it timed out, or was cancelled); dropped"
                    );
                }
                (response::SUCCESS, None)
            }
            Err(e) => {
                crate::log_warn!(
                    "rmq::producer",
                    "a reply pushed by {remote_addr} does not decode: {e}"
                );
                (
                    response::SYSTEM_ERROR,
                    Some("process reply message fail".to_string()),
                )
            }
        };
        Some(RemotingCommand::response_to(&request, code, remark))
    }
}

/// The reply as the requester sees it: ReplyMessageRequestHeader fields, the body decompressed,
/// ARRIVE_TIME added.
fn decode_reply(request: &RemotingCommand, arrived_ms: i64) -> Result<MessageExt> {
    let topic = request
        .ext("topic")
        .ok_or_else(|| Error::Protocol("reply without 'topic'".into()))?;
    let num = |k: &str| request.ext_parse::<i64>(k).unwrap_or(0);
    let mut sys_flag = num("sysFlag") as i32;
    let mut body: Bytes = request.body.clone();
    if sys_flag & SYSFLAG_COMPRESSED != 0 {
        body = Bytes::from(compression::decompress(sys_flag, &body)?);
        sys_flag &= !SYSFLAG_COMPRESSED;
    }
    let mut properties = decode_properties(request.ext("properties").unwrap_or(""));
    properties.retain(|(k, _)| k != PROPERTY_REPLY_ARRIVE_TIME);
    properties.push((
        PROPERTY_REPLY_ARRIVE_TIME.to_string(),
        arrived_ms.to_string(),
    ));
    Ok(MessageExt {
        message: Message::from_parts(topic.to_string(), num("flag") as i32, properties, body),
        queue_id: num("queueId") as i32,
        queue_offset: 0,
        commit_log_offset: 0,
        sys_flag,
        born_timestamp: num("bornTimestamp"),
        born_host: host(request.ext("bornHost")),
        store_timestamp: num("storeTimestamp"),
        store_host: host(request.ext("storeHost")),
        reconsume_times: num("reconsumeTimes") as i32,
        body_crc: 0,
        offset_msg_id: String::new(),
        broker_name: Arc::from(""),
    })
}

/// A host as the broker writes it (Java's `InetSocketAddress.toString()`: "name/ip:port" or
/// "/ip:port"); 0.0.0.0:0 when it does not parse.
fn host(text: Option<&str>) -> SocketAddr {
    let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let Some(text) = text else {
        return unspecified;
    };
    let addr = text.rsplit('/').next().unwrap_or(text);
    addr.parse().unwrap_or(unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::code::request;
    use std::borrow::Cow::Borrowed;

    fn push(props: &str, body: &'static [u8]) -> RemotingCommand {
        RemotingCommand::request(
            request::PUSH_REPLY_MESSAGE_TO_CLIENT,
            vec![
                (Borrowed("topic"), "DefaultCluster_REPLY_TOPIC".to_string()),
                (Borrowed("sysFlag"), "0".to_string()),
                (Borrowed("flag"), "3".to_string()),
                (Borrowed("bornTimestamp"), "17".to_string()),
                (Borrowed("storeTimestamp"), "18".to_string()),
                (Borrowed("bornHost"), "/127.0.0.1:5000".to_string()),
                (Borrowed("storeHost"), "host/10.0.0.1:10911".to_string()),
                (Borrowed("properties"), props.to_string()),
            ],
        )
        .with_body(Bytes::from_static(body))
    }

    #[test]
    fn replies_go_to_the_request_with_their_correlation_id_once() {
        let table = Arc::new(PendingRequests::default());
        let processor = PushReplyProcessor(Arc::clone(&table));
        let mut a = table.register("A".into());
        let mut b = table.register("B".into());
        assert_eq!(table.len(), 2);
        let resp = processor
            .process(
                "broker",
                push("CORRELATION_ID\u{1}B\u{2}k\u{1}v\u{2}", b"hi"),
            )
            .unwrap();
        assert_eq!(resp.code, response::SUCCESS);
        let got = b.reply.try_recv().unwrap();
        assert_eq!(&got.message.body()[..], b"hi");
        assert_eq!(got.message.topic(), "DefaultCluster_REPLY_TOPIC");
        assert_eq!(got.message.flag(), 3);
        assert_eq!(got.message.property("k"), Some("v"));
        assert!(got.message.property(PROPERTY_REPLY_ARRIVE_TIME).is_some());
        assert_eq!(got.born_host.to_string(), "127.0.0.1:5000");
        assert_eq!(got.store_host.to_string(), "10.0.0.1:10911");
        assert_eq!((got.born_timestamp, got.store_timestamp), (17, 18));
        assert!(a.reply.try_recv().is_err());
        // a second reply for B finds nobody: still answered SUCCESS (and logged)
        let again = processor
            .process("broker", push("CORRELATION_ID\u{1}B\u{2}", b"x"))
            .unwrap();
        assert_eq!(again.code, response::SUCCESS);
        drop(b);
        drop(a);
        assert!(table.is_empty(), "dropped requests leave the table");
    }

    #[test]
    fn compressed_replies_are_decompressed_and_bad_ones_refused() {
        use crate::protocol::compression::{compress, Codec};
        let table = Arc::new(PendingRequests::default());
        let processor = PushReplyProcessor(Arc::clone(&table));
        let mut w = table.register("Z".into());
        let flag = SYSFLAG_COMPRESSED | Codec::Zstd.sys_flag();
        let pushed = |body: Vec<u8>, props: &str| {
            RemotingCommand::request(
                request::PUSH_REPLY_MESSAGE_TO_CLIENT,
                vec![
                    (Borrowed("topic"), "C_REPLY_TOPIC".to_string()),
                    (Borrowed("sysFlag"), flag.to_string()),
                    (Borrowed("properties"), props.to_string()),
                ],
            )
            .with_body(Bytes::from(body))
        };
        let cmd2 = pushed(
            compress(Codec::Zstd, 3, b"squeezed").unwrap(),
            "CORRELATION_ID\u{1}Z\u{2}",
        );
        assert_eq!(
            processor.process("b", cmd2).unwrap().code,
            response::SUCCESS
        );
        assert_eq!(&w.reply.try_recv().unwrap().message.body()[..], b"squeezed");
        let bad = pushed(b"not zstd".to_vec(), "");
        let resp = processor.process("b", bad).unwrap();
        assert_eq!(resp.code, response::SYSTEM_ERROR);
        assert_eq!(resp.remark_str(), "process reply message fail");
    }
}
