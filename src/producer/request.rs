//! Request-reply (RPC over RocketMQ), as the Java client's `DefaultMQProducer.request` and
//! `MessageUtil.createReplyMessage`.
//!
//! The requester sends an ordinary message carrying CORRELATION_ID (fresh per request),
//! REPLY_TO_CLIENT (its client id) and TTL (the timeout in ms), then waits for the reply under
//! that correlation id in its client instance (`client::reply`). The broker adds CLUSTER when it
//! stores the request. A responder (any consumer of the topic) builds the reply with
//! `create_reply`: topic `<cluster>_REPLY_TOPIC`, MSG_TYPE=reply and the three properties
//! copied; a producer sends it with SEND_REPLY_MESSAGE_V2, and the broker pushes it to the
//! requester (PUSH_REPLY_MESSAGE_TO_CLIENT) instead of storing it for consumers.
//!
//! One async implementation (`request_prepared`) serves the blocking, async and callback forms.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::send::{PreparedSend, RetryPolicy};
use super::{shut_down_error, Producer, SendResult, Target};
use crate::client::reply::{
    PROPERTY_CLUSTER, PROPERTY_CORRELATION_ID, PROPERTY_MESSAGE_TTL, PROPERTY_MESSAGE_TYPE,
    PROPERTY_REPLY_TO_CLIENT, REPLY_MESSAGE_FLAG, REPLY_TOPIC_SUFFIX,
};
use crate::client::ClientInstance;
use crate::error::{Error, Result};
use crate::protocol::ids;
use crate::protocol::message::{check_text, decode_properties, Message, MessageExt};
use crate::runtime;

pub use crate::client::reply::PROPERTY_REPLY_ARRIVE_TIME;

/// Whether `msg` is a reply (MSG_TYPE=reply): sent with SEND_REPLY_MESSAGE_V2.
pub(super) fn is_reply(msg: &Message) -> bool {
    msg.property(PROPERTY_MESSAGE_TYPE) == Some(REPLY_MESSAGE_FLAG)
}

/// The reply to `request` (a message a consumer received) with `body`, to send with any
/// producer: topic `<cluster>_REPLY_TOPIC` of the cluster that stored the request, MSG_TYPE=reply,
/// and the request's CORRELATION_ID, REPLY_TO_CLIENT and TTL. A message that is not a request
/// (no CLUSTER, REPLY_TO_CLIENT or CORRELATION_ID property) is `Error::InvalidArgument`.
pub fn create_reply(request: &Message, body: impl Into<Bytes>) -> Result<Message> {
    create_reply_with(|name| request.property(name), body.into())
}

/// `create_reply` for a request known only by its properties string (`name 0x01 value 0x02`
/// ..., as the broker stores it): the form the language bindings use for the copies of received
/// messages they keep.
pub fn create_reply_from_properties(properties: &str, body: impl Into<Bytes>) -> Result<Message> {
    let props = decode_properties(properties);
    create_reply_with(
        |name| {
            props
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        },
        body.into(),
    )
}

fn create_reply_with<'a>(
    property: impl Fn(&str) -> Option<&'a str>,
    body: Bytes,
) -> Result<Message> {
    let required = |name: &str| -> Result<&'a str> {
        let value = property(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cannot reply: the message has no {name} property, so it is not a request \
                 (requests carry CORRELATION_ID and REPLY_TO_CLIENT from the requester and \
                 CLUSTER from the broker that stored them)"
            ))
        })?;
        check_text(name, value)?;
        Ok(value)
    };
    let cluster = required(PROPERTY_CLUSTER)?;
    let reply_to = required(PROPERTY_REPLY_TO_CLIENT)?;
    let correlation_id = required(PROPERTY_CORRELATION_ID)?;
    let mut reply = Message::new(format!("{cluster}{REPLY_TOPIC_SUFFIX}"), body);
    reply.put_property(PROPERTY_MESSAGE_TYPE, REPLY_MESSAGE_FLAG);
    reply.put_property(PROPERTY_CORRELATION_ID, correlation_id);
    reply.put_property(PROPERTY_REPLY_TO_CLIENT, reply_to);
    if let Some(ttl) = property(PROPERTY_MESSAGE_TTL).filter(|v| !v.is_empty()) {
        check_text(PROPERTY_MESSAGE_TTL, ttl)?;
        reply.put_property(PROPERTY_MESSAGE_TTL, ttl);
    }
    Ok(reply)
}

/// A request checked and encoded once, with its correlation id.
pub struct PreparedRequest {
    send: PreparedSend,
    correlation_id: String,
    timeout: Duration,
}

impl PreparedRequest {
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }
}

impl Producer {
    /// Checks `msg` and `timeout` and encodes the request: `msg` with CORRELATION_ID (fresh),
    /// REPLY_TO_CLIENT (this client's id) and TTL (`timeout` in ms). `msg` itself is unchanged.
    pub fn prepare_request(&self, msg: &Message, timeout: Duration) -> Result<PreparedRequest> {
        let instance = self.running()?;
        let ms = timeout.as_millis();
        if ms == 0 || Instant::now().checked_add(timeout).is_none() || ms > i64::MAX as u128 {
            return Err(Error::InvalidArgument(format!(
                "request timeout must be at least 1 ms (and representable), not {timeout:?}"
            )));
        }
        let correlation_id = ids::new_uniq_id();
        let mut m = msg.clone();
        m.put_property(PROPERTY_CORRELATION_ID, &correlation_id);
        m.put_property(PROPERTY_REPLY_TO_CLIENT, instance.client_id());
        m.put_property(PROPERTY_MESSAGE_TTL, &ms.to_string());
        Ok(PreparedRequest {
            send: self.prepare(&m)?,
            correlation_id,
            timeout,
        })
    }

    /// Sends `msg` as a request and waits, at most `timeout`, for the reply a responder sends
    /// with `create_reply`. No reply in time is `Error::Timeout` (saying that none came); the
    /// send's own failures are reported as for `send`; shutdown meanwhile is `Error::Cancelled`.
    pub async fn request(&self, msg: &Message, timeout: Duration) -> Result<MessageExt> {
        let instance = self.running()?;
        let prepared = self.prepare_request(msg, timeout)?;
        self.request_prepared(&instance, &prepared).await
    }

    /// `request` from a thread outside any async runtime (C, Python and Go callers): the
    /// calling thread sends and sleeps until the reply, the timeout or shutdown.
    pub fn request_blocking(&self, msg: &Message, timeout: Duration) -> Result<MessageExt> {
        let prepared = self.prepare_request(msg, timeout)?;
        self.request_prepared_blocking(&prepared)
    }

    pub fn request_prepared_blocking(&self, prepared: &PreparedRequest) -> Result<MessageExt> {
        let instance = self.running()?;
        runtime::block_on(
            instance.shared(),
            "request",
            self.request_prepared(&instance, prepared),
        )?
    }

    /// `request` in the background: `callback` runs exactly once with the reply or the error,
    /// on the client instance's callback executor, as an async send's callback (and holding a
    /// slot of the in-flight window as one). Invalid input and a producer that is not running
    /// fail here, and the callback is then not called.
    pub fn request_with_callback<F>(
        &self,
        msg: &Message,
        timeout: Duration,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<MessageExt>) + Send + 'static,
    {
        let prepared = self.prepare_request(msg, timeout)?;
        self.request_prepared_with_callback(prepared, callback)
    }

    pub fn request_prepared_with_callback<F>(
        &self,
        prepared: PreparedRequest,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<MessageExt>) + Send + 'static,
    {
        let instance = self.running()?;
        let this = self.clone();
        let inst = Arc::clone(&instance);
        let work = async move { this.request_prepared(&inst, &prepared).await };
        self.spawn_with_callback(&instance, work, callback)
    }

    /// The request: register the correlation id, send, wait for the reply; all within the
    /// request's timeout, and ended at once by shutdown. The registration is removed however
    /// it ends.
    async fn request_prepared(
        &self,
        instance: &ClientInstance,
        prepared: &PreparedRequest,
    ) -> Result<MessageExt> {
        let deadline = Instant::now() + prepared.timeout;
        let ms = prepared.timeout.as_millis();
        let topic = &prepared.send.topic;
        let mut waiting = instance
            .pending_requests()
            .register(prepared.correlation_id.clone());
        let work = async {
            self.announce(instance, topic, deadline).await;
            let send =
                self.send_prepared(instance, &prepared.send, RetryPolicy::Sync, &Target::Any);
            match tokio::time::timeout_at(deadline.into(), send).await {
                Ok(sent) => sent?,
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "request to topic '{topic}' could not be sent within its {ms} ms"
                    )))
                }
            };
            match tokio::time::timeout_at(deadline.into(), &mut waiting.reply).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(shut_down_error()),
                Err(_) => Err(Error::Timeout(format!(
                    "request to topic '{topic}' was sent, but no reply came within {ms} ms"
                ))),
            }
        };
        tokio::select! {
            biased;
            _ = self.inner.cancel.fired() => Err(shut_down_error()),
            r = work => self.unless_shut_down(r),
        }
    }

    /// The broker pushes a reply only to a client that its heartbeats announced as a producer:
    /// before this producer's first request, look the topic up and send heartbeats (as Java's
    /// prepareSendRequest). Failures are left to the send, which reports them.
    async fn announce(&self, instance: &ClientInstance, topic: &str, deadline: Instant) {
        if self.inner.announced.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = instance.publish_info(topic, deadline).await;
        let _ = tokio::time::timeout_at(deadline.into(), instance.send_heartbeats()).await;
    }

    /// Builds the reply to `request` (`create_reply`) and sends it, waiting for the broker's
    /// answer. The broker answers once it has pushed the reply to the requester; a requester
    /// that is gone makes it answer SYSTEM_ERROR.
    pub fn reply_blocking(&self, request: &Message, body: impl Into<Bytes>) -> Result<SendResult> {
        self.send_blocking(&create_reply(request, body)?)
    }

    /// `reply_blocking`, awaited.
    pub async fn reply(&self, request: &Message, body: impl Into<Bytes>) -> Result<SendResult> {
        self.send(&create_reply(request, body)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Message {
        let mut m = Message::new("Orders", "question");
        for (k, v) in [
            (PROPERTY_CLUSTER, "DefaultCluster"),
            (PROPERTY_REPLY_TO_CLIENT, "10.0.0.1@123#1"),
            (PROPERTY_CORRELATION_ID, "C-1"),
            (PROPERTY_MESSAGE_TTL, "3000"),
        ] {
            m.put_property(k, v);
        }
        m
    }

    #[test]
    fn a_reply_goes_to_the_clusters_reply_topic_with_the_request_properties() {
        let r = create_reply(&request(), "answer").unwrap();
        assert_eq!(r.topic(), "DefaultCluster_REPLY_TOPIC");
        assert_eq!(&r.body()[..], b"answer");
        assert_eq!(r.property("MSG_TYPE"), Some("reply"));
        assert_eq!(r.property("CORRELATION_ID"), Some("C-1"));
        assert_eq!(r.property("REPLY_TO_CLIENT"), Some("10.0.0.1@123#1"));
        assert_eq!(r.property("TTL"), Some("3000"));
        assert!(is_reply(&r) && !is_reply(&request()));
        let encoded = crate::protocol::message::encode_properties(request().properties());
        assert_eq!(create_reply_from_properties(&encoded, "answer").unwrap(), r);
    }

    #[test]
    fn only_requests_can_be_replied_to() {
        for missing in [
            PROPERTY_CLUSTER,
            PROPERTY_REPLY_TO_CLIENT,
            PROPERTY_CORRELATION_ID,
        ] {
            let mut m = request();
            m.remove_property(missing);
            match create_reply(&m, "x") {
                Err(Error::InvalidArgument(e)) => assert!(e.contains(missing), "{e}"),
                other => panic!("without {missing}: {other:?}"),
            }
        }
        let mut no_ttl = request();
        no_ttl.remove_property(PROPERTY_MESSAGE_TTL);
        assert_eq!(create_reply(&no_ttl, "x").unwrap().property("TTL"), None);
        assert!(matches!(
            create_reply_from_properties("", "x"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
