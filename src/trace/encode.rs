//! The Java client's message trace format (its TraceDataEncoder): one record per traced message,
//! fields separated by CONTENT_SPLITOR (0x01), each record ended by FIELD_SPLITOR (0x02); a
//! trace message's body is records one after another, and its keys are the traced messages' ids
//! and keys, so that `mqadmin queryMsgTraceById` finds them by message id.
use std::fmt::Write;

pub const CONTENT_SPLITOR: char = '\u{1}';
pub const FIELD_SPLITOR: char = '\u{2}';

/// Java's MessageType ordinals as the Pub and EndTransaction records carry them.
pub const MSG_TYPE_NORMAL: u8 = 0;
pub const MSG_TYPE_TRANS_HALF: u8 = 1;
pub const MSG_TYPE_TRANS_COMMIT: u8 = 2;
pub const MSG_TYPE_DELAY: u8 = 3;

/// What Java writes for tags or keys a message does not have (it appends a null String).
pub const ABSENT: &str = "null";

/// Java's ConsumeReturnType ordinals (SubAfter's context code).
pub const CONTEXT_SUCCESS: i32 = 0;
pub const CONTEXT_FAILED: i32 = 4;

/// A send the broker answered (Java traces only those).
pub struct Pub<'a> {
    pub timestamp: i64,
    pub region_id: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub msg_id: &'a str,
    pub tags: &'a str,
    pub keys: &'a str,
    pub store_host: &'a str,
    pub body_length: usize,
    pub cost_ms: i64,
    pub msg_type: u8,
    pub offset_msg_id: &'a str,
    pub success: bool,
}

/// One message of a consume record.
pub struct Bean<'a> {
    pub msg_id: &'a str,
    pub retry_times: i32,
    pub keys: &'a str,
}

/// Before the listener runs: one record per message of the batch.
pub struct SubBefore<'a> {
    pub timestamp: i64,
    pub region_id: &'a str,
    pub group: &'a str,
    pub request_id: &'a str,
    pub beans: &'a [Bean<'a>],
}

/// After the listener returned.
pub struct SubAfter<'a> {
    pub request_id: &'a str,
    pub beans: &'a [Bean<'a>],
    /// Per message: the call's time divided by the batch size, as Java.
    pub cost_ms: i64,
    pub success: bool,
    pub context_code: i32,
    pub timestamp: i64,
    pub group: &'a str,
}

/// A transaction's end, as the producer sent it (or answered a check with): Java's
/// EndTransactionTraceHookImpl. Its message type is always Trans_msg_Commit (2), whatever the
/// state, as Java's.
pub struct EndTransaction<'a> {
    pub timestamp: i64,
    pub region_id: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub msg_id: &'a str,
    pub tags: &'a str,
    pub keys: &'a str,
    pub store_host: &'a str,
    pub transaction_id: &'a str,
    /// COMMIT_MESSAGE, ROLLBACK_MESSAGE or UNKNOW.
    pub state: &'a str,
    pub from_transaction_check: bool,
}

/// Appends one record's fields, CONTENT_SPLITOR between them and FIELD_SPLITOR after the last.
fn record(out: &mut String, fields: &[&dyn std::fmt::Display]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(CONTENT_SPLITOR);
        }
        let _ = write!(out, "{f}");
    }
    out.push(FIELD_SPLITOR);
}

impl Pub<'_> {
    pub fn encode(&self, out: &mut String) {
        record(
            out,
            &[
                &"Pub",
                &self.timestamp,
                &self.region_id,
                &self.group,
                &self.topic,
                &self.msg_id,
                &self.tags,
                &self.keys,
                &self.store_host,
                &self.body_length,
                &self.cost_ms,
                &self.msg_type,
                &self.offset_msg_id,
                &self.success,
            ],
        );
    }
}

impl SubBefore<'_> {
    pub fn encode(&self, out: &mut String) {
        for b in self.beans {
            record(
                out,
                &[
                    &"SubBefore",
                    &self.timestamp,
                    &self.region_id,
                    &self.group,
                    &self.request_id,
                    &b.msg_id,
                    &b.retry_times,
                    &b.keys,
                ],
            );
        }
    }
}

impl SubAfter<'_> {
    pub fn encode(&self, out: &mut String) {
        for b in self.beans {
            record(
                out,
                &[
                    &"SubAfter",
                    &self.request_id,
                    &b.msg_id,
                    &self.cost_ms,
                    &self.success,
                    &b.keys,
                    &self.context_code,
                    &self.timestamp,
                    &self.group,
                ],
            );
        }
    }
}

impl EndTransaction<'_> {
    pub fn encode(&self, out: &mut String) {
        record(
            out,
            &[
                &"EndTransaction",
                &self.timestamp,
                &self.region_id,
                &self.group,
                &self.topic,
                &self.msg_id,
                &self.tags,
                &self.keys,
                &self.store_host,
                &MSG_TYPE_TRANS_COMMIT,
                &self.transaction_id,
                &self.state,
                &self.from_transaction_check,
            ],
        );
    }
}

/// The keys a trace message carries for one traced message: its id, then its own keys.
pub fn trace_keys<'a>(msg_id: &'a str, keys: &'a str) -> impl Iterator<Item = &'a str> {
    std::iter::once(msg_id).chain(keys.split(' ').filter(|k| !k.is_empty()))
}

/// A property's value in encoded properties (`name 0x01 value 0x02 ...`).
pub fn encoded_property<'a>(props: &'a str, name: &str) -> Option<&'a str> {
    props.split_terminator(FIELD_SPLITOR).find_map(|entry| {
        let (k, v) = entry.split_once(CONTENT_SPLITOR)?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_java_field_order() {
        let mut out = String::new();
        Pub {
            timestamp: 1700000000000,
            region_id: "DefaultRegion",
            group: "G",
            topic: "T",
            msg_id: "ID1",
            tags: "TagA",
            keys: "k1 k2",
            store_host: "127.0.0.1:10911",
            body_length: 5,
            cost_ms: 3,
            msg_type: MSG_TYPE_NORMAL,
            offset_msg_id: "OFF1",
            success: true,
        }
        .encode(&mut out);
        assert_eq!(
            out,
            "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}G\u{1}T\u{1}ID1\u{1}TagA\u{1}k1 k2\u{1}\
             127.0.0.1:10911\u{1}5\u{1}3\u{1}0\u{1}OFF1\u{1}true\u{2}"
        );
        let beans = [
            Bean {
                msg_id: "ID1",
                retry_times: 0,
                keys: "k1",
            },
            Bean {
                msg_id: "ID2",
                retry_times: 2,
                keys: "",
            },
        ];
        let mut out = String::new();
        SubBefore {
            timestamp: 5,
            region_id: "R",
            group: "CG",
            request_id: "REQ",
            beans: &beans,
        }
        .encode(&mut out);
        assert_eq!(
            out,
            "SubBefore\u{1}5\u{1}R\u{1}CG\u{1}REQ\u{1}ID1\u{1}0\u{1}k1\u{2}\
             SubBefore\u{1}5\u{1}R\u{1}CG\u{1}REQ\u{1}ID2\u{1}2\u{1}\u{2}"
        );
        let mut out = String::new();
        SubAfter {
            request_id: "REQ",
            beans: &beans[..1],
            cost_ms: 7,
            success: false,
            context_code: CONTEXT_FAILED,
            timestamp: 9,
            group: "CG",
        }
        .encode(&mut out);
        assert_eq!(
            out,
            "SubAfter\u{1}REQ\u{1}ID1\u{1}7\u{1}false\u{1}k1\u{1}4\u{1}9\u{1}CG\u{2}"
        );
        let mut out = String::new();
        EndTransaction {
            timestamp: 11,
            region_id: "DefaultRegion",
            group: "PG",
            topic: "T",
            msg_id: "ID1",
            tags: ABSENT,
            keys: "k1",
            store_host: "127.0.0.1:10911",
            transaction_id: "ID1",
            state: "ROLLBACK_MESSAGE",
            from_transaction_check: true,
        }
        .encode(&mut out);
        assert_eq!(
            out,
            "EndTransaction\u{1}11\u{1}DefaultRegion\u{1}PG\u{1}T\u{1}ID1\u{1}null\u{1}k1\u{1}\
             127.0.0.1:10911\u{1}2\u{1}ID1\u{1}ROLLBACK_MESSAGE\u{1}true\u{2}"
        );
        let keys: Vec<&str> = trace_keys("ID1", " k1  k2").collect();
        assert_eq!(keys, ["ID1", "k1", "k2"]);
        let props = "TAGS\u{1}A\u{2}KEYS\u{1}x y\u{2}";
        assert_eq!(encoded_property(props, "KEYS"), Some("x y"));
        assert_eq!(encoded_property(props, "NONE"), None);
    }
}
