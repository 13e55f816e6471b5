//! Maps keyed by message queue, as the Java side writes them (fastjson): the key is the queue's
//! JSON object itself, `{{"brokerName":"b","queueId":0,"topic":"t"}:100,...}`. That is not strict
//! JSON, so serde cannot read or write it; these helpers do, for the bodies that carry such maps
//! (RESET_CONSUMER_CLIENT_OFFSET, GET_CONSUMER_STATUS_FROM_CLIENT, GET_CONSUMER_RUNNING_INFO) and
//! for the broadcasting offset file.
use std::sync::Arc;

use crate::client::MessageQueue;
use crate::error::{Error, Result};

/// Appends the queue as a JSON object, keys in fastjson's (alphabetical) order.
pub fn write_queue(out: &mut String, mq: &MessageQueue) {
    out.push_str("{\"brokerName\":");
    out.push_str(&serde_json::Value::from(&*mq.broker_name).to_string());
    out.push_str(",\"queueId\":");
    out.push_str(&mq.queue_id.to_string());
    out.push_str(",\"topic\":");
    out.push_str(&serde_json::Value::from(&*mq.topic).to_string());
    out.push('}');
}

/// Appends `{<queue>:<value>,...}`; each value is already JSON text.
pub fn write_map<'a>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a MessageQueue, String)>,
) {
    out.push('{');
    for (i, (mq, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_queue(out, mq);
        out.push(':');
        out.push_str(&value);
    }
    out.push('}');
}

/// The `field` of the top-level object of `body`, a map from queue to offset. Accepts the
/// fastjson form (queue objects as keys), whitespace included, and the C++ form (an array of
/// `{"brokerName","queueId","topic","offset"}` objects). A missing field is an empty map.
pub fn parse_offset_table(body: &[u8], field: &str) -> Result<Vec<(MessageQueue, i64)>> {
    let bad = |what: &str| Error::Protocol(format!("bad queue offset table: {what}"));
    let mut p = Parser { buf: body, pos: 0 };
    p.expect(b'{').ok_or_else(|| bad("not an object"))?;
    loop {
        match p.peek() {
            Some(b'}') | None => return Ok(Vec::new()),
            Some(b',') => {
                p.pos += 1;
                continue;
            }
            _ => {}
        }
        let key = p.string().ok_or_else(|| bad("a key is not a string"))?;
        p.expect(b':').ok_or_else(|| bad("no ':' after a key"))?;
        if key != field {
            p.skip_value().ok_or_else(|| bad("unbalanced value"))?;
            continue;
        }
        return match p.peek() {
            Some(b'{') => p.queue_map().ok_or_else(|| bad("unreadable map")),
            Some(b'[') => p.queue_list().ok_or_else(|| bad("unreadable list")),
            Some(b'n') => Ok(Vec::new()),
            _ => Err(bad("the table is neither a map nor a list")),
        };
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueKey {
    topic: String,
    broker_name: String,
    queue_id: i32,
    #[serde(default)]
    offset: Option<i64>,
}

impl QueueKey {
    fn queue(&self) -> MessageQueue {
        MessageQueue {
            topic: Arc::from(self.topic.as_str()),
            broker_name: Arc::from(self.broker_name.as_str()),
            queue_id: self.queue_id,
        }
    }
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<u8> {
        while self.buf.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
        self.buf.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// One JSON value of any kind read with serde (objects, strings, numbers).
    fn value<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        self.peek()?;
        let mut it = serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<T>();
        let v = it.next()?.ok()?;
        self.pos += it.byte_offset();
        Some(v)
    }

    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.value()
    }

    /// An offset: a number, or a number in a string.
    fn offset(&mut self) -> Option<i64> {
        let start = {
            self.peek()?;
            self.pos
        };
        let quoted = self.buf[start] == b'"';
        let mut end = start + usize::from(quoted);
        while self
            .buf
            .get(end)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
        {
            end += 1;
        }
        let digits = std::str::from_utf8(&self.buf[start + usize::from(quoted)..end]).ok()?;
        let n = digits.parse().ok()?;
        if quoted {
            (self.buf.get(end) == Some(&b'"')).then_some(())?;
            end += 1;
        }
        self.pos = end;
        Some(n)
    }

    fn queue_map(&mut self) -> Option<Vec<(MessageQueue, i64)>> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'}' => {
                    self.pos += 1;
                    return Some(out);
                }
                b',' => self.pos += 1,
                b'{' => {
                    let key: QueueKey = self.value()?;
                    self.expect(b':')?;
                    out.push((key.queue(), self.offset()?));
                }
                // A standard-JSON writer would have to quote the key: `"{...}":100`.
                b'"' => {
                    let text = self.string()?;
                    let key: QueueKey = serde_json::from_str(&text).ok()?;
                    self.expect(b':')?;
                    out.push((key.queue(), self.offset()?));
                }
                _ => return None,
            }
        }
    }

    fn queue_list(&mut self) -> Option<Vec<(MessageQueue, i64)>> {
        let items: Vec<QueueKey> = self.value()?;
        Some(
            items
                .iter()
                .map(|k| (k.queue(), k.offset.unwrap_or(0)))
                .collect(),
        )
    }

    /// Skips one value whatever it holds (object keys included), by bracket depth.
    fn skip_value(&mut self) -> Option<()> {
        self.peek()?;
        let mut depth = 0usize;
        while let Some(&b) = self.buf.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    while let Some(&c) = self.buf.get(self.pos) {
                        self.pos += 1;
                        match c {
                            b'\\' => self.pos += 1,
                            b'"' => break,
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        return Some(());
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return Some(());
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Some(());
                    }
                }
                b',' if depth == 0 => return Some(()),
                _ => {}
            }
            self.pos += 1;
        }
        (depth == 0).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(topic: &str, broker: &str, id: i32) -> MessageQueue {
        MessageQueue {
            topic: Arc::from(topic),
            broker_name: Arc::from(broker),
            queue_id: id,
        }
    }

    #[test]
    fn writes_and_reads_the_fastjson_form() {
        let a = mq("T", "broker-a", 0);
        let b = mq("T\"x", "broker-a", 3);
        let mut s = String::from("{\"offsetTable\":");
        write_map(&mut s, [(&a, "12".to_string()), (&b, "7".to_string())]);
        s.push('}');
        assert!(
            s.starts_with(
                r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:12,{"#
            ),
            "{s}"
        );
        let t = parse_offset_table(s.as_bytes(), "offsetTable").unwrap();
        assert_eq!(t, vec![(a, 12), (b, 7)]);
    }

    #[test]
    fn reads_pretty_printed_java_output_and_other_fields() {
        let java = "{\n\t\"other\":{{\"x\":1}:[1,\"}\"]},\n\t\"offsetTable\":{{\n\t\t\t\"brokerName\":\"b\",\n\t\t\t\"queueId\":1,\n\t\t\t\"topic\":\"t\"\n\t\t}:42\n\t}\n}";
        let t = parse_offset_table(java.as_bytes(), "offsetTable").unwrap();
        assert_eq!(t, vec![(mq("t", "b", 1), 42)]);
        assert!(parse_offset_table(b"{}", "offsetTable").unwrap().is_empty());
        assert!(parse_offset_table(b"[", "offsetTable").is_err());
        assert!(parse_offset_table(b"{\"offsetTable\":{{\"topic\":1}:2}}", "offsetTable").is_err());
    }

    #[test]
    fn reads_the_cpp_list_form() {
        let c = br#"{"offsetTable":[{"brokerName":"b","queueId":2,"topic":"t","offset":9}]}"#;
        assert_eq!(
            parse_offset_table(c, "offsetTable").unwrap(),
            vec![(mq("t", "b", 2), 9)]
        );
    }
}
