//! Batches: several messages of one topic in one SEND_BATCH_MESSAGE, and the helper that cuts a
//! list into batches that fit.
//!
//! The rules are Java's (`MessageBatch.generateFromList`): one topic, not a retry topic, no delay,
//! the same WAIT flag; each message gets its own UNIQ_KEY; bodies are never compressed. Unlike
//! Java, the batch itself carries no UNIQ_KEY (see `prepare`). The encoded batch is the body the broker limits to its maximum message size.
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::send::{encode_properties_with, PreparedSend, RetryPolicy};
use super::{Producer, SendResult, Target};
use crate::error::{Error, Result};
use crate::protocol::ids;
use crate::protocol::message::{
    validate_topic, Message, PROPERTIES_MAX_LENGTH, PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
    PROPERTY_WAIT_STORE_MSG_OK,
};

/// Topic prefix of consumer retry topics, which batches may not go to.
const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Fixed part of one encoded message: size, magic, body CRC, flag, body length (4 bytes each)
/// and the properties length (2).
const RECORD_OVERHEAD: usize = 4 * 5 + 2;

/// Bytes `msg` takes in an encoded batch, counting the UNIQ_KEY the batch adds when it has none.
pub fn encoded_size(msg: &Message) -> usize {
    let props: usize = msg
        .properties()
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let uniq = match msg.property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX) {
        Some(_) => 0,
        None => PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX.len() + ids::uniq_id_len() + 2,
    };
    RECORD_OVERHEAD + msg.body().len() + props + uniq
}

/// Cuts `messages` into consecutive batches whose encoded size is at most `max_bytes` each, in
/// order. A message that alone is over the limit is an error naming it. Only sizes are checked
/// here; the batch rules are checked when a batch is sent.
pub fn split(messages: &[Message], max_bytes: usize) -> Result<Vec<&[Message]>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, msg) in messages.iter().enumerate() {
        let n = encoded_size(msg);
        if n > max_bytes {
            return Err(Error::MessageTooLarge {
                size: n,
                max: max_bytes,
            });
        }
        if size + n > max_bytes {
            batches.push(&messages[start..i]);
            start = i;
            size = 0;
        }
        size += n;
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    Ok(batches)
}

/// Checks the batch rules and encodes the messages into one send. The result's `msg_id` lists the
/// messages' UNIQ_KEYs joined by ',', in order, as the Java client reports them.
pub fn prepare(messages: &[Message], max_message_size: usize) -> Result<PreparedSend> {
    let first = messages
        .first()
        .ok_or_else(|| Error::InvalidArgument("a batch needs at least one message".into()))?;
    let topic = first.topic();
    validate_topic(topic)?;
    if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
        return Err(Error::InvalidArgument(format!(
            "retry topic '{topic}' is not supported for batches"
        )));
    }
    let wait = first.property(PROPERTY_WAIT_STORE_MSG_OK);
    let mut body = BytesMut::with_capacity(messages.iter().map(encoded_size).sum());
    let mut msg_ids = String::with_capacity(messages.len() * (ids::uniq_id_len() + 1));
    for (i, msg) in messages.iter().enumerate() {
        let bad = |why: String| Error::InvalidArgument(format!("batch message {i}: {why}"));
        if msg.topic() != topic {
            return Err(bad(format!(
                "topic '{}' differs from the batch's '{topic}'; a batch has one topic",
                msg.topic()
            )));
        }
        if msg.has_delay() {
            return Err(bad(
                "delayed and timer messages are not supported for batches".into(),
            ));
        }
        if msg.property(PROPERTY_WAIT_STORE_MSG_OK) != wait {
            return Err(bad(
                "its WAIT (wait for store) flag differs from the first message's".into(),
            ));
        }
        if msg.body().is_empty() {
            return Err(bad("the body is empty".into()));
        }
        let assigned = msg.property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX);
        let id = match assigned {
            Some(id) => id.to_string(),
            None => ids::new_uniq_id(),
        };
        let extra = match assigned {
            Some(_) => None,
            None => Some((PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, id.as_str())),
        };
        let props = encode_properties_with(msg.properties(), extra);
        if props.len() > PROPERTIES_MAX_LENGTH {
            return Err(bad(format!(
                "properties take {} bytes encoded; the broker accepts at most \
                 {PROPERTIES_MAX_LENGTH}",
                props.len()
            )));
        }
        let body_len = msg.body().len();
        body.put_i32((RECORD_OVERHEAD + body_len + props.len()) as i32);
        body.put_i32(0); // magic code: unused in a batch
        body.put_i32(0); // body CRC: the broker computes it
        body.put_i32(msg.flag());
        body.put_i32(body_len as i32);
        body.put_slice(msg.body());
        body.put_i16(props.len() as i16);
        body.put_slice(props.as_bytes());
        if i > 0 {
            msg_ids.push(',');
        }
        msg_ids.push_str(&id);
    }
    if body.len() > max_message_size {
        return Err(Error::MessageTooLarge {
            size: body.len(),
            max: max_message_size,
        });
    }
    // The batch's own properties: WAIT as its messages have it, and no UNIQ_KEY. Java gives the
    // batch one too, but the broker appends the batch's properties to every message it stores,
    // and readers that keep the last value of a name (the Java client) would then see that one
    // id on every message of the batch instead of each message's own.
    let own: Vec<(String, String)> = wait
        .map(|w| (PROPERTY_WAIT_STORE_MSG_OK.to_string(), w.to_string()))
        .into_iter()
        .collect();
    let properties: Arc<str> = encode_properties_with(&own, None);
    Ok(PreparedSend::batch(
        topic,
        msg_ids,
        properties,
        Bytes::from(body),
    ))
}

impl Producer {
    /// Checks the batch rules and encodes `messages` once for any number of attempts; send it
    /// with the `send_prepared_*` calls like a single message.
    pub fn prepare_batch(&self, messages: &[Message]) -> Result<PreparedSend> {
        prepare(messages, self.inner.config.max_message_size)
    }

    /// Cuts `messages` into consecutive batches that each fit this producer's
    /// `producer.max-message-size`.
    pub fn split_batches<'a>(&self, messages: &'a [Message]) -> Result<Vec<&'a [Message]>> {
        split(messages, self.inner.config.max_message_size)
    }

    /// Sends `messages` (one topic) in one request and waits for the broker's answer, from a
    /// thread outside any async runtime. Retries as a single send does.
    pub fn send_batch_blocking(&self, messages: &[Message]) -> Result<SendResult> {
        let prepared = self.prepare_batch(messages)?;
        self.send_prepared_blocking(&prepared)
    }

    /// Sends `messages` (one topic) in the background, as `send_with_callback` sends one message:
    /// the same retries, in-flight window and exactly-once callback. The batch rules are checked
    /// here, before anything is sent; a broken one is an error and the callback is not called.
    pub fn send_batch_with_callback<F>(&self, messages: &[Message], callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let prepared = self.prepare_batch(messages)?;
        self.send_prepared_with_callback(prepared, callback)
    }

    /// Sends `messages` (one topic) in one request and awaits the broker's answer.
    pub async fn send_batch(&self, messages: &[Message]) -> Result<SendResult> {
        let instance = self.running()?;
        let prepared = self.prepare_batch(messages)?;
        self.send_prepared(&instance, &prepared, RetryPolicy::Sync, &Target::Any)
            .await
    }
}

impl SendResult {
    /// The message ids (UNIQ_KEY), one per message sent: several for a batch, in its order.
    pub fn msg_ids(&self) -> impl Iterator<Item = &str> {
        self.msg_id.split(',')
    }

    /// The broker store ids, one per message sent, in the same order as `msg_ids`.
    pub fn offset_msg_ids(&self) -> impl Iterator<Item = &str> {
        self.offset_msg_id.split(',')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    fn msg(topic: &str, body: &[u8]) -> Message {
        Message::new(topic, body.to_vec())
    }

    #[test]
    fn encoding_is_the_java_batch_layout() {
        let mut a = msg("T", b"first");
        a.set_flag(7);
        a.set_tags("TagA").unwrap();
        let b = msg("T", b"\x00second");
        let p = prepare(&[a.clone(), b.clone()], 1 << 20).unwrap();
        let ids: Vec<&str> = p.msg_id.split(',').collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        let mut body = p.batch_body().clone();
        assert_eq!(body.len(), encoded_size(&a) + encoded_size(&b));
        for (m, id) in [(&a, ids[0]), (&b, ids[1])] {
            let total = body.get_i32() as usize;
            assert_eq!(total, encoded_size(m));
            assert_eq!(body.get_i32(), 0);
            assert_eq!(body.get_i32(), 0);
            assert_eq!(body.get_i32(), m.flag());
            let n = body.get_i32() as usize;
            assert_eq!(&body.split_to(n)[..], &m.body()[..]);
            let pn = body.get_i16() as usize;
            let props = String::from_utf8(body.split_to(pn).to_vec()).unwrap();
            let decoded = crate::protocol::message::decode_properties(&props);
            assert!(decoded.contains(&("UNIQ_KEY".to_string(), id.to_string())));
            for kv in m.properties() {
                assert!(decoded.contains(kv), "{kv:?}");
            }
        }
        assert!(body.is_empty());
    }

    #[test]
    fn java_batch_rules_are_enforced() {
        let e = |msgs: &[Message]| match prepare(msgs, 1 << 20) {
            Ok(_) => panic!("batch accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e(&[]).contains("at least one"));
        assert!(e(&[msg("A", b"x"), msg("B", b"x")]).contains("one topic"));
        assert!(e(&[msg("%RETRY%G", b"x")]).contains("retry topic"));
        let mut delayed = msg("A", b"x");
        delayed.set_delay_level(3).unwrap();
        assert!(e(&[msg("A", b"x"), delayed]).contains("delayed"));
        let mut timer = msg("A", b"x");
        timer.set_delay_ms(5000).unwrap();
        assert!(e(&[timer]).contains("delayed"));
        let mut nowait = msg("A", b"x");
        nowait.put_property(PROPERTY_WAIT_STORE_MSG_OK, "false");
        assert!(e(&[msg("A", b"x"), nowait]).contains("WAIT"));
        assert!(e(&[msg("A", b"")]).contains("empty"));
        assert!(e(&[msg("bad topic", b"x")]).contains("illegal character"));
        assert!(matches!(
            prepare(&[msg("A", &[0u8; 100])], 50),
            Err(Error::MessageTooLarge { max: 50, .. })
        ));
    }

    #[test]
    fn bodies_in_a_batch_are_not_compressed() {
        let big = vec![b'a'; 64 * 1024];
        let p = prepare(&[msg("A", &big)], 1 << 20).unwrap();
        assert_eq!(p.sys_flag(), 0);
        assert!(p.body_len() > big.len());
    }

    #[test]
    fn split_keeps_order_and_fits_every_batch() {
        let msgs: Vec<Message> = (0..10).map(|i| msg("A", &[i as u8; 100])).collect();
        let one = encoded_size(&msgs[0]);
        let batches = split(&msgs, one * 3).unwrap();
        assert_eq!(
            batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let rejoined: Vec<&Message> = batches.iter().flat_map(|b| b.iter()).collect();
        assert!(rejoined.iter().zip(&msgs).all(|(a, b)| std::ptr::eq(*a, b)));
        for b in &batches {
            // the size split() counted is the size prepare() produces
            assert!(prepare(b, one * 3).unwrap().body_len() <= one * 3);
        }
        assert!(split(&[], 10).unwrap().is_empty());
        assert!(matches!(
            split(&msgs, one - 1),
            Err(Error::MessageTooLarge { .. })
        ));
    }
}
