//! Broadcasting consumption against a real broker: every consumer of the group gets every
//! message; offsets live in a local file in the Java client's format (queue objects as map
//! keys); a restart resumes from it; a failed message is dropped rather than retried.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::protocol::mq_map::parse_offset_table;
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(90);

type Counts = Arc<Mutex<HashMap<String, usize>>>;

fn producer() -> Producer {
    let p =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustBcProducer")).unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn send(p: &Producer, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            p.send_blocking(&Message::new(topic, body.clone().into_bytes()))
                .unwrap();
            body
        })
        .collect()
}

/// A started broadcasting consumer counting deliveries; bodies starting with "fail" are
/// answered ReconsumeLater.
fn broadcaster(group: &str, instance: &str, topic: &str, dir: &Path) -> (PushConsumer, Counts) {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", instance).unwrap();
    c.set("consumer.message-model", "BROADCASTING").unwrap();
    c.set("consumer.local-offset-store-dir", dir.to_str().unwrap())
        .unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.persist-consumer-offset-interval", "200")
        .unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    let counts: Counts = Arc::default();
    let seen = Arc::clone(&counts);
    consumer
        .set_listener(move |msgs| {
            let mut s = seen.lock().unwrap();
            let mut result = ConsumeResult::Success;
            for m in msgs {
                let body = String::from_utf8_lossy(m.message.body()).into_owned();
                if body.starts_with("fail") {
                    result = ConsumeResult::ReconsumeLater { delay_level: 1 };
                }
                *s.entry(body).or_default() += 1;
            }
            result
        })
        .unwrap();
    consumer.start().unwrap();
    (consumer, counts)
}

fn all_once(counts: &Counts, sent: &[String]) -> bool {
    eventually(WITHIN, || {
        let c = counts.lock().unwrap();
        sent.iter().all(|b| c.contains_key(b)).then_some(())
    })
    .is_some()
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(unique("rmq-bc-offsets"))
}

/// The sum of the offsets of `topic`'s queues in the file (the messages consumed).
fn file_total(path: &Path, topic: &str) -> Option<i64> {
    let text = std::fs::read(path).ok()?;
    let table = parse_offset_table(&text, "offsetTable").ok()?;
    Some(
        table
            .iter()
            .filter(|(q, _)| &*q.topic == topic)
            .map(|(_, o)| o)
            .sum(),
    )
}

#[test]
fn every_consumer_gets_every_message_and_a_restart_resumes_from_the_file() {
    let topic = unique("RustBroadcast");
    let group = unique("RustBroadcastGroup");
    let dir = temp_dir();
    let p = producer();
    let first = send(&p, &topic, "first", 20);
    let (a_name, b_name) = (unique("bc-a"), unique("bc-b"));
    let (a, seen_a) = broadcaster(&group, &a_name, &topic, &dir);
    let (b, seen_b) = broadcaster(&group, &b_name, &topic, &dir);
    assert!(all_once(&seen_a, &first), "consumer a got everything");
    assert!(all_once(&seen_b, &first), "consumer b got everything");
    assert_eq!(a.assigned_queues().len(), 4, "a reads every queue");
    assert_eq!(b.assigned_queues().len(), 4, "b reads every queue");
    let path = a
        .local_offsets_path()
        .expect("a broadcasting consumer has a file");
    assert!(path.starts_with(&dir), "{}", path.display());
    assert!(path.ends_with(Path::new(&group).join("offsets.json")));
    assert!(
        path.parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("@{a_name}")),
        "<dir>/<ip@instance-name>/<group>: {}",
        path.display()
    );
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    // Java's format: the queue object itself is the map key.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\"offsetTable\":{{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":"),
        "{text}"
    );
    assert!(
        !path.with_extension("json.tmp").exists(),
        "no temp file left"
    );
    assert_eq!(file_total(&path, &topic), Some(20), "{text}");
    // A restart of a (same instance name, so the same file) reads only what came since.
    let second = send(&p, &topic, "second", 10);
    let (a2, seen_a2) = broadcaster(&group, &a_name, &topic, &dir);
    assert!(
        all_once(&seen_a2, &second),
        "the restarted consumer got the new messages"
    );
    a2.shutdown().unwrap();
    let again = seen_a2.lock().unwrap();
    assert!(
        first.iter().all(|b| !again.contains_key(b)),
        "nothing consumed before the restart came again: {again:?}"
    );
    assert_eq!(file_total(&path, &topic), Some(30));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_message_is_dropped_not_retried() {
    let topic = unique("RustBroadcastFail");
    let group = unique("RustBroadcastFailGroup");
    let dir = temp_dir();
    let p = producer();
    let mut sent = send(&p, &topic, "fail", 1);
    sent.extend(send(&p, &topic, "ok", 11));
    let (c, seen) = broadcaster(&group, &unique("bc-f"), &topic, &dir);
    assert!(all_once(&seen, &sent), "everything delivered");
    let path = c.local_offsets_path().unwrap();
    // The offset moves past the failed message: it is not held back for a retry.
    let total = eventually(WITHIN, || file_total(&path, &topic).filter(|t| *t == 12));
    assert_eq!(
        total,
        Some(12),
        "offsets cover every message, the failed one included"
    );
    assert_eq!(
        seen.lock().unwrap().get("fail-0"),
        Some(&1),
        "delivered once"
    );
    c.shutdown().unwrap();
    assert_eq!(seen.lock().unwrap().get("fail-0"), Some(&1), "never again");
    std::fs::remove_dir_all(&dir).unwrap();
}
