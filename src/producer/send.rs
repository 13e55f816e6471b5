//! One send: message checks, the request, the retry budget shared by the sync and async paths,
//! and the response mapping.
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{SendResult, SendStatus};
use crate::client::{namespace, MessageQueue};
use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::compression::CompressionPolicy;
use crate::protocol::header::{self, SendMessageHeader};
use crate::protocol::ids;
use crate::protocol::message::{validate_topic, Message, PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX};

/// Retry bookkeeping a resend to `%RETRY%<group>` carries (moved into the send header).
pub const PROPERTY_RECONSUME_TIME: &str = "RECONSUME_TIME";
pub const PROPERTY_MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
use crate::remoting::RemotingCommand;

/// A message checked and encoded once, sent in one or more attempts. Owns everything it needs,
/// so the message it came from may change or go away meanwhile.
pub struct PreparedSend {
    pub topic: Arc<str>,
    pub msg_id: String,
    properties: Arc<str>,
    body: Bytes,
    flag: i32,
    /// Compression bits (see `protocol::compression`); 0 for a body sent as it is.
    sys_flag: i32,
    /// A SEND_BATCH_MESSAGE of several messages (`super::batch`).
    batch: bool,
    /// Header `j` and `l`, for `%RETRY%` topics (`retry_counts`).
    reconsume_times: i32,
    max_reconsume_times: Option<i32>,
    /// A reply of request-reply (`super::request`), sent as SEND_REPLY_MESSAGE_V2.
    reply: bool,
}

impl PreparedSend {
    /// The message with its body as it is.
    pub fn new(msg: &Message, max_message_size: usize) -> Result<PreparedSend> {
        Self::with_compression(msg, max_message_size, None)
    }

    /// The message, its body compressed when `compression` says so. `max_message_size` limits
    /// the body as sent (compressed when compressed), which is what the broker limits.
    pub fn with_compression(
        msg: &Message,
        max_message_size: usize,
        compression: Option<&CompressionPolicy>,
    ) -> Result<PreparedSend> {
        validate_topic(msg.topic())?;
        if msg.body().is_empty() {
            return Err(Error::InvalidArgument("message body is empty".into()));
        }
        let (body, sys_flag) = match compression.and_then(|c| c.apply(msg.body())) {
            Some((packed, flag)) => (Bytes::from(packed), flag),
            None => (msg.body().clone(), 0),
        };
        if body.len() > max_message_size {
            return Err(Error::MessageTooLarge {
                size: body.len(),
                max: max_message_size,
            });
        }
        let assigned = msg.property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
        let msg_id = match assigned {
            Some(id) => id.to_string(),
            None => ids::new_uniq_id(),
        };
        // The message's properties, then UNIQ_KEY unless it carries one: encoded once, in place.
        let extra = match assigned {
            Some(_) => None,
            None => Some((PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, msg_id.as_str())),
        };
        let (reconsume_times, max_reconsume_times, retry_props) = retry_counts(msg);
        let properties =
            encode_properties_with(retry_props.as_deref().unwrap_or(msg.properties()), extra);
        if properties.len() > i16::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "properties take {} bytes encoded; the broker accepts at most 32767",
                properties.len()
            )));
        }
        Ok(PreparedSend {
            topic: Arc::from(msg.topic()),
            msg_id,
            properties,
            body,
            flag: msg.flag(),
            sys_flag,
            batch: false,
            reconsume_times,
            max_reconsume_times,
            reply: super::request::is_reply(msg),
        })
    }

    /// The send as the broker sees it in `namespace`: the topic wrapped (`<namespace>%<topic>`)
    /// and the property INSTANCE_ID=<namespace>, as the Java client sends.
    pub fn in_namespace(mut self, ns: &str) -> Result<PreparedSend> {
        let topic = namespace::wrap(ns, &self.topic);
        if let Cow::Owned(topic) = topic {
            validate_topic(&topic).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("in namespace '{ns}': {m}"))
                }
                e => e,
            })?;
            self.topic = Arc::from(topic);
        }
        let mut props = String::with_capacity(self.properties.len() + ns.len() + 14);
        for entry in self.properties.split_terminator('\u{2}') {
            if !entry.starts_with("INSTANCE_ID\u{1}") {
                props.push_str(entry);
                props.push('\u{2}');
            }
        }
        props.push_str("INSTANCE_ID\u{1}");
        props.push_str(ns);
        props.push('\u{2}');
        if props.len() > i16::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "properties take {} bytes encoded; the broker accepts at most 32767",
                props.len()
            )));
        }
        self.properties = Arc::from(props);
        Ok(self)
    }

    /// A batch: `body` holds the encoded messages, `properties` the batch's own (`super::batch`).
    pub(super) fn batch(
        topic: &str,
        msg_ids: String,
        properties: Arc<str>,
        body: Bytes,
    ) -> PreparedSend {
        PreparedSend {
            topic: Arc::from(topic),
            msg_id: msg_ids,
            properties,
            body,
            flag: 0,
            sys_flag: 0,
            batch: true,
            reconsume_times: 0,
            max_reconsume_times: None,
            reply: false,
        }
    }

    /// Marks the send as a half message (sysFlag TRANSACTION_PREPARED); its properties carry
    /// TRAN_MSG and PGROUP already (`super::transaction`).
    pub(super) fn into_half_message(mut self) -> PreparedSend {
        self.sys_flag |= crate::protocol::transaction::SYSFLAG_TRANSACTION_PREPARED;
        self
    }

    /// The encoded properties sent (message trace reads tags and keys from them).
    pub(crate) fn encoded_properties(&self) -> &Arc<str> {
        &self.properties
    }

    /// Messages and body bytes this send stores when it succeeds (a batch: all of its messages).
    pub(crate) fn stored_counts(&self) -> (u64, u64) {
        let messages = if self.batch {
            self.msg_id.split(',').count() as u64
        } else {
            1
        };
        (messages, self.body.len() as u64)
    }

    /// Bytes of the body as sent (compressed, or the encoded batch).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    #[cfg(test)]
    pub(super) fn batch_body(&self) -> &Bytes {
        &self.body
    }

    /// The sysFlag bits the request carries (compression).
    pub fn sys_flag(&self) -> i32 {
        self.sys_flag
    }

    pub fn request(&self, group: &Arc<str>, mq: &MessageQueue) -> RemotingCommand {
        header::send_message_v2(
            SendMessageHeader {
                producer_group: Arc::clone(group),
                topic: Arc::clone(&self.topic),
                queue_id: mq.queue_id,
                sys_flag: self.sys_flag,
                born_timestamp: ids::now_ms(),
                flag: self.flag,
                properties: Arc::clone(&self.properties),
                broker_name: Arc::clone(&mq.broker_name),
                batch: self.batch,
                reconsume_times: self.reconsume_times,
                max_reconsume_times: self.max_reconsume_times,
                reply: self.reply,
            },
            self.body.clone(),
        )
    }

    pub fn parse_response(
        &self,
        resp: &RemotingCommand,
        mq: &MessageQueue,
        addr: &str,
    ) -> Result<SendResult> {
        let status = match resp.code {
            response::SUCCESS => SendStatus::SendOk,
            response::FLUSH_DISK_TIMEOUT => SendStatus::FlushDiskTimeout,
            response::FLUSH_SLAVE_TIMEOUT => SendStatus::FlushSlaveTimeout,
            response::SLAVE_NOT_AVAILABLE => SendStatus::SlaveNotAvailable,
            code => return Err(Error::broker(code, resp.remark_str(), addr)),
        };
        let missing = |k: &str| Error::Protocol(format!("send response from {addr} lacks '{k}'"));
        Ok(SendResult {
            status,
            msg_id: self.msg_id.clone(),
            offset_msg_id: resp
                .ext("msgId")
                .ok_or_else(|| missing("msgId"))?
                .to_string(),
            queue: MessageQueue {
                topic: Arc::clone(&mq.topic),
                broker_name: Arc::clone(&mq.broker_name),
                queue_id: resp
                    .ext_parse("queueId")
                    .ok_or_else(|| missing("queueId"))?,
            },
            queue_offset: resp
                .ext_parse("queueOffset")
                .ok_or_else(|| missing("queueOffset"))?,
            transaction_id: resp.ext("transactionId").map(str::to_string),
            region_id: match resp.ext("MSG_REGION") {
                None | Some(DEFAULT_REGION) => Cow::Borrowed(DEFAULT_REGION),
                Some(other) => Cow::Owned(other.to_string()),
            },
        })
    }
}

const DEFAULT_REGION: &str = "DefaultRegion";

/// The properties string (`name 0x01 value 0x02` ...) of `props`, plus `extra` at the end, in
/// one allocation of the exact size. Shared by every attempt of a send.
type Properties = Vec<(String, String)>;

/// A message to a `%RETRY%` topic carries its retry counts in the header, as the Java client
/// sends them: RECONSUME_TIME becomes `reconsumeTimes` and MAX_RECONSUME_TIMES
/// `maxReconsumeTimes`, and both leave the properties (the broker counts toward the DLQ by the
/// header alone). Returns the counts and, when any was moved, the remaining properties.
fn retry_counts(msg: &Message) -> (i32, Option<i32>, Option<Properties>) {
    if !msg.topic().starts_with("%RETRY%") {
        return (0, None, None);
    }
    let number = |k: &str| msg.property(k).and_then(|v| v.trim().parse::<i32>().ok());
    let (times, max) = (
        number(PROPERTY_RECONSUME_TIME),
        number(PROPERTY_MAX_RECONSUME_TIMES),
    );
    if times.is_none() && max.is_none() {
        return (0, None, None);
    }
    let rest = msg
        .properties()
        .iter()
        .filter(|(k, _)| k != PROPERTY_RECONSUME_TIME && k != PROPERTY_MAX_RECONSUME_TIMES)
        .cloned()
        .collect();
    (times.unwrap_or(0), max, Some(rest))
}

pub(super) fn encode_properties_with(
    props: &[(String, String)],
    extra: Option<(&str, &str)>,
) -> Arc<str> {
    let len: usize = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra)
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let mut s = String::with_capacity(len);
    for (k, v) in props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra)
    {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    Arc::from(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryPolicy {
    /// Sync sends retry transport failures and the Java list of broker codes.
    Sync,
    /// Async sends retry transport failures only; a broker answer goes straight to the caller.
    Async,
}

pub(crate) enum Next {
    Done(Result<SendResult>),
    Retry,
}

/// Attempts and time left for one send. The timeout is one budget for all attempts.
pub(crate) struct RetryBudget {
    attempts_left: u32,
    attempts_made: u32,
    deadline: Instant,
    policy: RetryPolicy,
    retry_not_stored: bool,
    pub last_broker: Option<Arc<str>>,
    last_error: Option<Error>,
}

impl RetryBudget {
    pub fn new(
        attempts: u32,
        deadline: Instant,
        policy: RetryPolicy,
        retry_not_stored: bool,
    ) -> Self {
        RetryBudget {
            attempts_left: attempts,
            attempts_made: 0,
            deadline,
            policy,
            retry_not_stored,
            last_broker: None,
            last_error: None,
        }
    }

    /// Counts an attempt and returns the time it may take, or the error that ends the send. A
    /// sync attempt may take all the time left (as Java's). An async attempt takes its share of
    /// it, the time left divided by the attempts left: async sends retry timeouts too, and a
    /// broker that stalls (answers nothing) must leave time for the retry elsewhere within the
    /// one send timeout.
    pub fn begin_attempt(&mut self) -> Result<Duration> {
        let now = Instant::now();
        if self.attempts_left == 0 || now >= self.deadline {
            return Err(self.exhausted(now >= self.deadline));
        }
        let left = self.deadline - now;
        let time = match self.policy {
            RetryPolicy::Sync => left,
            RetryPolicy::Async => left / self.attempts_left,
        };
        self.attempts_left -= 1;
        self.attempts_made += 1;
        Ok(time)
    }

    /// Gives back the attempt begun last, which the broker did not process (GO_AWAY).
    pub fn refund_attempt(&mut self) {
        if self.attempts_made > 0 {
            self.attempts_made -= 1;
            self.attempts_left += 1;
        }
    }

    /// Whether the attempt begun last is a retry.
    pub fn is_retry(&self) -> bool {
        self.attempts_made > 1
    }

    fn exhausted(&mut self, out_of_time: bool) -> Error {
        match (self.last_error.take(), out_of_time) {
            (Some(e), false) => e,
            (Some(e), true) => Error::Timeout(format!(
                "send timed out after {} attempt(s); last error: {e}",
                self.attempts_made
            )),
            (None, _) => Error::Timeout(format!(
                "send timed out after {} attempt(s)",
                self.attempts_made
            )),
        }
    }

    /// Decides after an attempt on `broker`.
    pub fn after(&mut self, broker: &Arc<str>, result: Result<SendResult>) -> Next {
        self.last_broker = Some(Arc::clone(broker));
        match result {
            Ok(r)
                if r.status != SendStatus::SendOk
                    && self.retry_not_stored
                    && self.attempts_left > 0 =>
            {
                crate::log_warn!(
                    "rmq::producer",
                    "broker {broker} stored the message with {:?}, retrying on another broker",
                    r.status
                );
                Next::Retry
            }
            Ok(r) => Next::Done(Ok(r)),
            Err(e) => {
                let retriable = match self.policy {
                    RetryPolicy::Sync => e.is_retriable(),
                    RetryPolicy::Async => e.is_transport(),
                };
                if retriable && self.attempts_left > 0 && Instant::now() < self.deadline {
                    crate::log_warn!(
                        "rmq::producer",
                        "send to broker {broker} failed, retrying on another broker ({} attempts left): {e}",
                        self.attempts_left
                    );
                    self.last_error = Some(e);
                    Next::Retry
                } else {
                    Next::Done(Err(e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(status: SendStatus) -> Result<SendResult> {
        Ok(SendResult {
            status,
            msg_id: "m".into(),
            offset_msg_id: "o".into(),
            queue: MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id: 0,
            },
            queue_offset: 0,
            transaction_id: None,
            region_id: Cow::Borrowed(DEFAULT_REGION),
        })
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// The request's ext fields as the broker reads them.
    fn sent_fields(p: &PreparedSend) -> RemotingCommand {
        use crate::remoting::codec::{decode_frame, encode_frame};
        let mq = MessageQueue {
            topic: Arc::clone(&p.topic),
            broker_name: "b".into(),
            queue_id: 0,
        };
        let cmd = p.request(&Arc::from("G"), &mq);
        let mut frame = encode_frame(&cmd, crate::remoting::SerializeType::Json).unwrap();
        decode_frame(&mut frame).unwrap().unwrap()
    }

    #[test]
    fn a_resend_to_a_retry_topic_carries_its_counts_in_the_header() {
        let mut m = Message::new("%RETRY%G", b"x".to_vec());
        m.put_property("RETRY_TOPIC", "T");
        m.put_property(PROPERTY_RECONSUME_TIME, "3");
        m.put_property(PROPERTY_MAX_RECONSUME_TIMES, "2");
        let cmd = sent_fields(&PreparedSend::new(&m, usize::MAX).unwrap());
        assert_eq!(cmd.ext("j"), Some("3"));
        assert_eq!(cmd.ext("l"), Some("2"));
        let props = cmd.ext("i").unwrap();
        assert!(props.contains("RETRY_TOPIC\u{1}T\u{2}"), "{props:?}");
        assert!(
            !props.contains("RECONSUME_TIME") && !props.contains("MAX_RECONSUME_TIMES"),
            "moved to the header: {props:?}"
        );

        // Any other topic: the properties stay, the header says 0 and has no `l`.
        m.set_topic("T").unwrap();
        let cmd = sent_fields(&PreparedSend::new(&m, usize::MAX).unwrap());
        assert_eq!((cmd.ext("j"), cmd.ext("l")), (Some("0"), None));
        assert!(cmd.ext("i").unwrap().contains("RECONSUME_TIME\u{1}3\u{2}"));
    }

    #[test]
    fn sync_retries_retriable_errors_up_to_the_attempt_count() {
        let mut b = RetryBudget::new(3, far(), RetryPolicy::Sync, false);
        for _ in 0..2 {
            b.begin_attempt().unwrap();
            assert!(matches!(
                b.after(&"a".into(), Err(Error::broker(2, "busy", "x"))),
                Next::Retry
            ));
        }
        b.begin_attempt().unwrap();
        match b.after(&"a".into(), Err(Error::broker(2, "busy", "x"))) {
            Next::Done(Err(e)) => assert_eq!(e.response_code(), Some(2)),
            _ => panic!("third failure must end the send"),
        }
        assert!(b.begin_attempt().is_err());
    }

    #[test]
    fn non_retriable_broker_answers_end_at_once() {
        let mut b = RetryBudget::new(3, far(), RetryPolicy::Sync, false);
        b.begin_attempt().unwrap();
        // 13 MESSAGE_ILLEGAL is not in the retry list
        assert!(matches!(
            b.after(&"a".into(), Err(Error::broker(13, "bad", "x"))),
            Next::Done(Err(_))
        ));
    }

    #[test]
    fn async_retries_transport_failures_only() {
        let mut b = RetryBudget::new(3, far(), RetryPolicy::Async, false);
        b.begin_attempt().unwrap();
        assert!(matches!(
            b.after(&"a".into(), Err(Error::Timeout("t".into()))),
            Next::Retry
        ));
        b.begin_attempt().unwrap();
        assert!(matches!(
            b.after(&"a".into(), Err(Error::broker(2, "busy", "x"))),
            Next::Done(Err(_))
        ));
    }

    #[test]
    fn time_budget_is_shared_by_all_attempts() {
        let mut b = RetryBudget::new(
            3,
            Instant::now() + Duration::from_millis(30),
            RetryPolicy::Sync,
            false,
        );
        let first = b.begin_attempt().unwrap();
        assert!(first <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        // the failure came after the deadline: no retry
        assert!(matches!(
            b.after(&"a".into(), Err(Error::Timeout("t".into()))),
            Next::Done(Err(_))
        ));
        match b.begin_attempt() {
            Err(Error::Timeout(_)) => {}
            other => panic!("expected timeout, got {other:?}"),
        }
    }

    #[test]
    fn async_attempts_share_the_time_left() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut b = RetryBudget::new(3, deadline, RetryPolicy::Async, false);
        let first = b.begin_attempt().unwrap();
        assert!(first <= Duration::from_secs(20) && first > Duration::from_secs(19));
        assert!(matches!(
            b.after(&"a".into(), Err(Error::Timeout("t".into()))),
            Next::Retry
        ));
        let second = b.begin_attempt().unwrap();
        assert!(second <= Duration::from_secs(30) && second > Duration::from_secs(29));
        assert!(matches!(
            b.after(&"a".into(), Err(Error::Timeout("t".into()))),
            Next::Retry
        ));
        // the last attempt may take all that is left
        assert!(b.begin_attempt().unwrap() > Duration::from_secs(59) - first - second);
        // one attempt only: all of it
        let mut one = RetryBudget::new(1, deadline, RetryPolicy::Async, false);
        assert!(one.begin_attempt().unwrap() > Duration::from_secs(59));
        let mut sync = RetryBudget::new(3, deadline, RetryPolicy::Sync, false);
        assert!(sync.begin_attempt().unwrap() > Duration::from_secs(59));
    }

    #[test]
    fn not_stored_statuses_retry_only_when_asked() {
        let mut b = RetryBudget::new(3, far(), RetryPolicy::Sync, false);
        b.begin_attempt().unwrap();
        assert!(matches!(
            b.after(&"a".into(), ok(SendStatus::FlushDiskTimeout)),
            Next::Done(Ok(_))
        ));
        let mut b = RetryBudget::new(2, far(), RetryPolicy::Sync, true);
        b.begin_attempt().unwrap();
        assert!(matches!(
            b.after(&"a".into(), ok(SendStatus::FlushDiskTimeout)),
            Next::Retry
        ));
        assert_eq!(b.last_broker.as_deref(), Some("a"));
        b.begin_attempt().unwrap();
        assert!(matches!(
            b.after(&"b".into(), ok(SendStatus::FlushDiskTimeout)),
            Next::Done(Ok(_))
        ));
    }

    #[test]
    fn in_a_namespace_the_topic_is_wrapped_and_instance_id_set_once() {
        let mut m = Message::new("T", "x");
        m.put_property("INSTANCE_ID", "old");
        let p = PreparedSend::new(&m, 10)
            .unwrap()
            .in_namespace("ns")
            .unwrap();
        assert_eq!(&*p.topic, "ns%T");
        assert_eq!(p.properties.matches("INSTANCE_ID").count(), 1);
        assert!(p.properties.contains("INSTANCE_ID\u{1}ns\u{2}"));
        assert!(p
            .properties
            .contains(&format!("UNIQ_KEY\u{1}{}\u{2}", p.msg_id)));
        let long = Message::new("t".repeat(125), "x");
        let err = PreparedSend::new(&long, 10).unwrap().in_namespace("ns");
        assert!(matches!(err, Err(Error::InvalidArgument(m)) if m.contains("namespace")));
    }

    #[test]
    fn prepared_send_checks_the_message() {
        let max = 10;
        assert!(matches!(
            PreparedSend::new(&Message::new("", "x"), max),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            PreparedSend::new(&Message::new("T", ""), max),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            PreparedSend::new(&Message::new("T", vec![0u8; 11]), max),
            Err(Error::MessageTooLarge { size: 11, max: 10 })
        ));
        let p = PreparedSend::new(&Message::new("T", "x"), max).unwrap();
        assert!(p
            .properties
            .contains(&format!("UNIQ_KEY\u{1}{}\u{2}", p.msg_id)));
        let mut with_id = Message::new("T", "x");
        with_id.put_property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, "MINE");
        assert_eq!(PreparedSend::new(&with_id, max).unwrap().msg_id, "MINE");
    }
}
