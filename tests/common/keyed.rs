//! Keyed ordered messages for the orderly tests: bodies "<key>:<i>", sent through the hash
//! selector so that one key stays on one queue.
use std::time::Duration;

use super::eventually;
use rmq::{Message, Producer, QueueSelector};

/// Sends "<key>:<i>" for i in from..to and each key, interleaved. An ordered send makes one
/// attempt, so a failed one (a busy broker, a topic being created) is repeated here, in place:
/// the order stays.
pub fn send_keyed(p: &Producer, topic: &str, keys: &[String], from: usize, to: usize) {
    for i in from..to {
        for key in keys {
            let m = Message::new(topic, format!("{key}:{i}"));
            let sent = eventually(Duration::from_secs(30), || {
                p.send_select_blocking(&m, &QueueSelector::ByHash(key)).ok()
            });
            assert!(sent.is_some(), "{key}:{i} not sent");
        }
    }
}

pub fn body(m: &rmq::MessageExt) -> String {
    String::from_utf8_lossy(m.message.body()).into_owned()
}

/// (key, index) of a body "<key>:<i>".
pub fn parse(body: &str) -> (String, usize) {
    let (k, i) = body.rsplit_once(':').unwrap();
    (k.to_string(), i.parse().unwrap())
}
