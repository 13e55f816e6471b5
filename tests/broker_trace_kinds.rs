//! Message trace of batches, oneway sends and transactions against a real broker, as the Java
//! client (5.3.3) writes them: a batch is one Pub record whose message id is the batch's ids
//! joined by commas (also its trace key) and which has no tags or keys ("null"); a oneway send
//! has no answer and no record; each end of a transaction (after the local transaction, or
//! answering the broker's check) is an EndTransaction record of message type 2, with the
//! transaction id, the state's Java name and whether it answered a check.
mod common;

use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{Config, LocalTransactionState, Message, Producer, ProducerConfig, TransactionProducer};

const WITHIN: Duration = Duration::from_secs(90);

fn traced_config(group: &str) -> ProducerConfig {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", group).unwrap();
    c.set("client.trace-enabled", "true").unwrap();
    c.producer_config().unwrap()
}

fn reader() -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), &unique("RustTraceR")).unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// The records of RMQ_SYS_TRACE_TOPIC, found by trace key `key`, that have `key` as a field.
fn records(reader: &Producer, key: &str) -> Vec<Vec<String>> {
    let found = reader
        .query_message_blocking("RMQ_SYS_TRACE_TOPIC", key, 64, 0, i64::MAX / 2)
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in found {
        let body = String::from_utf8(m.message.body().to_vec()).unwrap();
        for record in body.split_terminator('\u{2}') {
            let fields: Vec<String> = record.split('\u{1}').map(str::to_string).collect();
            if fields.iter().any(|f| f == key) {
                out.push(fields);
            }
        }
    }
    out
}

/// Waits for a record of type `kind` for `key` for which `ok` holds.
fn wait_for(
    reader: &Producer,
    key: &str,
    kind: &str,
    ok: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    eventually(WITHIN, || {
        records(reader, key)
            .into_iter()
            .find(|f| f[0] == kind && ok(f))
    })
    .unwrap_or_else(|| {
        panic!(
            "no {kind} record of {key}; found {:?}",
            records(reader, key)
        )
    })
}

#[test]
fn a_batch_is_one_pub_record_and_a_oneway_send_none() {
    let topic = unique("RustTraceBatch");
    let group = unique("RustTraceBatchP");
    let producer = Producer::new(traced_config(&group)).unwrap();
    producer.start().unwrap();
    let oneway_key = unique("oneway-key");
    let mut oneway = Message::new(topic.as_str(), b"oneway".to_vec());
    oneway.set_keys(&oneway_key).unwrap();
    // The route first, so that the oneway send is not the topic's first.
    producer
        .send_blocking(&Message::new(topic.as_str(), b"first".to_vec()))
        .unwrap();
    producer.send_oneway_blocking(&oneway).unwrap();
    let batch: Vec<Message> = (0..3)
        .map(|i| {
            let mut m = Message::new(topic.as_str(), format!("batched-{i}").into_bytes());
            m.set_tags("TagB").unwrap();
            m.set_keys(&format!("bkey-{i}")).unwrap();
            m
        })
        .collect();
    let r = producer.send_batch_blocking(&batch).unwrap();
    assert_eq!(r.msg_id.split(',').count(), 3, "{}", r.msg_id);
    producer.shutdown(); // sends what is queued

    let reader = reader();
    let pubr = wait_for(&reader, &r.msg_id, "Pub", |_| true);
    // Pub: type, time, region, group, topic, msgId, tags, keys, storeHost, bodyLength,
    // costTime, msgType, offsetMsgId, success.
    assert_eq!(pubr.len(), 14, "{pubr:?}");
    assert_eq!(pubr[3], group);
    assert_eq!(pubr[4], topic);
    assert_eq!(pubr[5], r.msg_id);
    assert_eq!((&*pubr[6], &*pubr[7]), ("null", "null"), "{pubr:?}");
    assert!(pubr[8].contains(':'), "store host {pubr:?}");
    let bodies: usize = (0..3).map(|i| format!("batched-{i}").len()).sum();
    let encoded: usize = pubr[9].parse().unwrap();
    assert!(encoded > bodies, "the encoded batch's length: {pubr:?}");
    assert_eq!(pubr[11], "0");
    assert_eq!(pubr[12], r.offset_msg_id);
    assert_eq!(pubr[13], "true");
    // Every record queued before the batch's is in the topic now: none is the oneway send's.
    assert!(
        records(&reader, &oneway_key).is_empty(),
        "a oneway send has no trace record"
    );
    reader.shutdown();
}

#[test]
fn transaction_ends_and_check_answers_leave_end_transaction_records() {
    let topic = unique("RustTraceTxn");
    let group = unique("RustTraceTxnP");
    let producer = TransactionProducer::new(traced_config(&group), |m| {
        match m.message.keys().unwrap_or("") {
            "checked" => LocalTransactionState::Commit,
            _ => LocalTransactionState::Rollback,
        }
    })
    .unwrap();
    producer.start().unwrap();
    let mut ids = Vec::new();
    for (key, state) in [
        ("committed", LocalTransactionState::Commit),
        ("rolled-back", LocalTransactionState::Rollback),
        ("checked", LocalTransactionState::Unknown),
    ] {
        let mut m = Message::new(topic.as_str(), format!("body of {key}").into_bytes());
        m.set_keys(key).unwrap();
        if key == "committed" {
            m.set_tags("TagT").unwrap();
        }
        let r = producer
            .send_in_transaction_blocking(&m, |_, _| state)
            .unwrap();
        ids.push((key, r.send_result.msg_id.clone(), state));
    }
    let reader = reader();
    for (key, id, state) in &ids {
        let end = wait_for(&reader, id, "EndTransaction", |f| {
            f.get(12).map(String::as_str) == Some("false")
        });
        // EndTransaction: type, time, region, group, topic, msgId, tags, keys, storeHost,
        // msgType, transactionId, transactionState, fromTransactionCheck.
        assert_eq!(end.len(), 13, "{end:?}");
        assert_eq!(end[2], "DefaultRegion");
        assert_eq!((&*end[3], &*end[4], &*end[5]), (&*group, &*topic, &**id));
        let tags = if *key == "committed" { "TagT" } else { "null" };
        assert_eq!((&*end[6], &*end[7]), (tags, *key), "{end:?}");
        assert!(end[8].contains(':'), "store host {end:?}");
        assert_eq!(end[9], "2", "Java's Trans_msg_Commit, whatever the state");
        assert_eq!(end[10], *id, "the transaction id is the message's id");
        assert_eq!(end[11], state.java_name());
        // The half message's Pub record has type 1.
        let pubr = wait_for(&reader, id, "Pub", |_| true);
        assert_eq!(pubr[11], "1", "{pubr:?}");
    }
    // The broker checks the unknown one; the checker's answer is traced too.
    let (_, checked_id, _) = &ids[2];
    let end = wait_for(&reader, checked_id, "EndTransaction", |f| {
        f.get(12).map(String::as_str) == Some("true")
    });
    assert_eq!(
        (&*end[5], &*end[10], &*end[11]),
        (&**checked_id, &**checked_id, "COMMIT_MESSAGE"),
        "{end:?}"
    );
    assert_ne!(end[2], "", "a checked message's region: {end:?}");
    producer.close().unwrap();
    reader.shutdown();
}
