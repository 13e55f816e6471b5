//! Transactional messages against a real broker: a committed transaction is delivered, a
//! rolled-back one never is; an unknown one is settled by the checker (delivered exactly once
//! when it says commit, never when it says rollback); a checker that panics is asked again; a
//! producer that dies between the half message and the end has its transaction checked by a new
//! producer of the group. Works with any broker check interval and transaction timeout (the
//! waits are bounded by the broker's answers, not by sleeps).
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{
    Config, ConsumeResult, LocalTransactionState, Message, MessageExt, ProducerConfig,
    PushConsumer, TransactionProducer,
};

const WITHIN: Duration = Duration::from_secs(90);

/// Delivered bodies by key.
type Seen = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn consumer(topic: &str) -> (PushConsumer, Seen) {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", &unique("RustTxnConsumer")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    consumer
        .set_listener(move |msgs| {
            let mut s = s.lock().unwrap();
            for m in msgs {
                s.entry(m.message.keys().unwrap_or("").to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(m.message.body()).into_owned());
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    (consumer, seen)
}

fn message(topic: &str, key: &str) -> Message {
    let mut m = Message::new(topic, format!("body of {key}").into_bytes());
    m.set_keys(key).unwrap();
    m
}

fn config(group: &str, threads: &str) -> ProducerConfig {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", group).unwrap();
    c.set("producer.transaction-check-threads", threads)
        .unwrap();
    c.producer_config().unwrap()
}

/// Checker calls by message key, and the threads they ran on.
#[derive(Default)]
struct Calls {
    by_key: Mutex<HashMap<String, usize>>,
    threads: Mutex<Vec<String>>,
}

impl Calls {
    fn record(&self, m: &MessageExt) -> usize {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().name().unwrap_or("").to_string());
        let mut by_key = self.by_key.lock().unwrap();
        let n = by_key
            .entry(m.message.keys().unwrap_or("").to_string())
            .or_default();
        *n += 1;
        *n
    }

    fn of(&self, key: &str) -> usize {
        self.by_key.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

#[test]
fn commit_rollback_and_the_checker_settle_transactions() {
    let topic = unique("RustTxn");
    let group = unique("RustTxnGroup");
    let calls = Arc::new(Calls::default());
    let c = Arc::clone(&calls);
    let producer = TransactionProducer::new(config(&group, "2"), move |m| {
        let n = c.record(m);
        assert_eq!(m.message.topic(), m.message.topic().trim());
        match m.message.keys().unwrap_or("") {
            "unknown-then-commit" => LocalTransactionState::Commit,
            "checker-panics-once" if n == 1 => panic!("checker failure"),
            "checker-panics-once" => LocalTransactionState::Commit,
            _ => LocalTransactionState::Rollback,
        }
    })
    .unwrap();
    producer.start().unwrap();
    // The topic exists before the consumer looks for it.
    producer
        .producer()
        .send_blocking(&message(&topic, "plain"))
        .unwrap();
    let (consumer, seen) = consumer(&topic);

    let mut ids = HashMap::new();
    for (key, state) in [
        ("rolled-back", LocalTransactionState::Rollback),
        ("committed", LocalTransactionState::Commit),
        ("unknown-then-commit", LocalTransactionState::Unknown),
        ("unknown-then-rollback", LocalTransactionState::Unknown),
    ] {
        let arg = format!("arg of {key}");
        let r = producer
            .send_in_transaction_blocking(&message(&topic, key), |m, sent| {
                assert_eq!(arg, format!("arg of {key}"));
                assert_eq!(m.property("TRAN_MSG"), Some("true"));
                assert_eq!(m.property("PGROUP"), Some(group.as_str()));
                assert_eq!(
                    m.property("__transactionId__"),
                    sent.transaction_id.as_deref()
                );
                assert_eq!(m.keys(), Some(key));
                state
            })
            .unwrap();
        assert_eq!(r.state, state);
        assert_eq!(r.transaction_id(), r.send_result.msg_id);
        ids.insert(key, r.send_result.msg_id.clone());
    }
    let r = producer
        .send_in_transaction_blocking(&message(&topic, "checker-panics-once"), |_, _| {
            panic!("local transaction failure")
        })
        .unwrap();
    assert_eq!(r.state, LocalTransactionState::Unknown);

    let delivered = [
        "plain",
        "committed",
        "unknown-then-commit",
        "checker-panics-once",
    ];
    let all_in = eventually(WITHIN, || {
        let s = seen.lock().unwrap();
        delivered.iter().all(|k| s.contains_key(*k)).then_some(())
    });
    assert!(
        all_in.is_some(),
        "delivered: {:?}",
        seen.lock().unwrap().keys()
    );
    // The rollback of "unknown-then-rollback" is settled by the checker as well.
    assert!(
        eventually(WITHIN, || (calls.of("unknown-then-rollback") >= 1)
            .then_some(()))
        .is_some(),
        "the checker was never asked about unknown-then-rollback"
    );
    assert!(calls.of("unknown-then-commit") >= 1);
    assert!(
        calls.of("checker-panics-once") >= 2,
        "a panicking checker is asked again"
    );
    assert!(calls
        .threads
        .lock()
        .unwrap()
        .iter()
        .all(|t| t.starts_with("rmq-txn-check")));
    // A broker may also ask about a transaction that was ended (its scan can miss the end),
    // so checkers must answer from the application's state; this one rolls back keys it does
    // not know, which leaves an ended transaction as it is.
    // Every transaction is settled now; nothing settled later can be delivered. Let the broker
    // finish delivering what it will, then compare: once each, never the rolled-back ones.
    producer.close().unwrap();
    let s = seen.lock().unwrap().clone();
    for key in delivered {
        assert_eq!(s[key], vec![format!("body of {key}")], "{key} exactly once");
    }
    for key in ["rolled-back", "unknown-then-rollback"] {
        assert!(!s.contains_key(key), "{key} was delivered");
        let found = query(&topic, key, &namesrv());
        assert_eq!(found, 0, "{key} is stored in the topic");
    }
    consumer.shutdown().unwrap();
}

/// Messages of `topic` stored with `key` (committed messages only: half messages live in the
/// broker's half topic).
fn query(topic: &str, key: &str, ns: &str) -> usize {
    let p = rmq::Producer::new(ProducerConfig::new(ns, &unique("RustTxnQuery")).unwrap()).unwrap();
    p.start().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let n = p
        .query_message_blocking(topic, key, 32, now - 3_600_000, now + 60_000)
        .unwrap()
        .len();
    p.shutdown();
    n
}

const CHILD_TOPIC: &str = "RMQ_TXN_TEST_CHILD_TOPIC";
const CHILD_GROUP: &str = "RMQ_TXN_TEST_CHILD_GROUP";

/// The child process's part of the crash test: send a half message, then die inside the local
/// transaction, before the end is sent.
fn crash_after_half_message(topic: &str, group: &str) -> ! {
    let producer =
        TransactionProducer::new(config(group, "1"), |_| LocalTransactionState::Unknown).unwrap();
    producer.start().unwrap();
    let _ = producer
        .send_in_transaction_blocking(&message(topic, "orphan"), |_, _| std::process::exit(17));
    unreachable!("the local transaction exits the process");
}

#[test]
fn a_new_producer_of_the_group_answers_for_a_crashed_one() {
    if let (Ok(topic), Ok(group)) = (std::env::var(CHILD_TOPIC), std::env::var(CHILD_GROUP)) {
        crash_after_half_message(&topic, &group);
    }
    let topic = unique("RustTxnCrash");
    let group = unique("RustTxnCrashGroup");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_new_producer_of_the_group_answers_for_a_crashed_one",
            "--test-threads=1",
        ])
        .env(CHILD_TOPIC, &topic)
        .env(CHILD_GROUP, &group)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(17),
        "the child died in its local transaction"
    );

    let checked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let c = Arc::clone(&checked);
    let producer = TransactionProducer::new(config(&group, "1"), move |m| {
        c.lock().unwrap().push((
            m.message.keys().unwrap_or("").to_string(),
            String::from_utf8_lossy(m.message.body()).into_owned(),
        ));
        LocalTransactionState::Commit
    })
    .unwrap();
    producer.start().unwrap();
    let (consumer, seen) = consumer(&topic);
    let got = eventually(WITHIN, || seen.lock().unwrap().get("orphan").cloned());
    assert_eq!(got, Some(vec!["body of orphan".to_string()]));
    assert_eq!(
        checked.lock().unwrap()[0],
        ("orphan".to_string(), "body of orphan".to_string())
    );
    producer.close().unwrap();
    consumer.shutdown().unwrap();
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let producer = TransactionProducer::new(config(&unique("RustTxnBad"), "1"), |_| {
        LocalTransactionState::Rollback
    })
    .unwrap();
    let m = message("T", "k");
    let called = AtomicUsize::new(0);
    // not started
    assert!(producer
        .send_in_transaction_blocking(&m, |_, _| {
            called.fetch_add(1, Ordering::SeqCst);
            LocalTransactionState::Commit
        })
        .is_err());
    producer.start().unwrap();
    let mut delayed = message("T", "k");
    delayed.set_delay_level(2).unwrap();
    let e = producer
        .send_in_transaction_blocking(&delayed, |_, _| {
            called.fetch_add(1, Ordering::SeqCst);
            LocalTransactionState::Commit
        })
        .unwrap_err();
    assert!(e.to_string().contains("delay"), "{e}");
    assert_eq!(called.load(Ordering::SeqCst), 0);
    producer.close().unwrap();
}
