//! Interop with the Apache RocketMQ Java client 5.3.3 (the harness in tests/java, built once per
//! run with Maven): Java consumes what rmq sent (batched, delayed, compressed with each codec) and
//! rmq reads back what Java sent (compressed with each codec, batched), every field compared.
mod common;
#[path = "java_interop/request_reply.rs"]
mod request_reply;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::config::{self, Config};
use rmq::protocol::ids::{hex_decode, now_ms};
use rmq::protocol::message::decode_properties;
use rmq::{Message, MessageExt, Producer};

/// `java -cp ...` of the compiled harness; Maven runs once per test process.
fn java_classpath() -> &'static str {
    static CP: OnceLock<String> = OnceLock::new();
    CP.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java");
        let mut mvn = Command::new("mvn");
        mvn.args(["-B", "-q", "-f"]).arg(dir.join("pom.xml"));
        if std::env::var_os("RMQ_MVN_OFFLINE").is_some() {
            mvn.arg("-o");
        }
        mvn.args([
            "compile",
            "dependency:build-classpath",
            "-Dmdep.outputFile=target/classpath.txt",
        ]);
        let out = mvn
            .output()
            .expect("mvn is required for the Java interop test (see README)");
        assert!(
            out.status.success(),
            "building tests/java failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deps = std::fs::read_to_string(dir.join("target/classpath.txt")).unwrap();
        format!("{}:{}", dir.join("target/classes").display(), deps.trim())
    })
}

fn java(args: &[&str]) -> String {
    let out = Command::new(java_bin())
        .arg("-cp")
        .arg(java_classpath())
        .arg("rmq.interop.Interop")
        .args(args)
        .output()
        .expect("java is required for the Java interop test");
    assert!(
        out.status.success(),
        "java harness {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn java_bin() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) => Path::new(&home).join("bin/java"),
        None => PathBuf::from("java"),
    }
}

fn producer_with(extra: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set(config::NAME_SERVER, &namesrv()).unwrap();
    c.set(config::PRODUCER_GROUP, &unique("RustInteropGroup"))
        .unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn text_body(n: usize, salt: &str) -> Vec<u8> {
    let words = format!("rust interop {salt} lorem ipsum dolor sit amet ");
    let w = words.as_bytes();
    (0..n).map(|i| w[(i * 7 + i / 13) % w.len()]).collect()
}

fn message(topic: &str, body: Vec<u8>, key: &str, flag: i32) -> Message {
    let mut m = Message::new(topic, body);
    m.set_tags("TagR").unwrap();
    m.set_keys(key).unwrap();
    m.set_flag(flag);
    m.put_user_property("lang", "rust").unwrap();
    m
}

/// One RECV line of the harness.
struct Received {
    recv_ms: i64,
    topic: String,
    flag: i32,
    store_ms: i64,
    body: Vec<u8>,
    props: Vec<(String, String)>,
}

fn parse_recv(line: &str) -> (String, Received) {
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!((f[0], f.len()), ("RECV", 10), "{line}");
    let props = String::from_utf8(hex_decode(f[9]).unwrap()).unwrap();
    (
        f[2].to_string(),
        Received {
            recv_ms: f[1].parse().unwrap(),
            topic: f[3].to_string(),
            flag: f[4].parse().unwrap(),
            store_ms: f[7].parse().unwrap(),
            body: hex_decode(f[8]).unwrap_or_default(),
            props: decode_properties(&props),
        },
    )
}

fn prop<'a>(props: &'a [(String, String)], k: &str) -> Option<&'a str> {
    props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn assert_received(what: &str, sent: &Message, got: &Received) {
    assert_eq!(got.topic, sent.topic(), "{what}: topic");
    assert_eq!(got.flag, sent.flag(), "{what}: flag");
    assert_eq!(got.body, &sent.body()[..], "{what}: body");
    for (k, v) in sent.properties() {
        if k == "DELAY" || k.starts_with("TIMER_") {
            continue; // the broker consumes the delay properties when it delivers
        }
        assert_eq!(
            prop(&got.props, k),
            Some(v.as_str()),
            "{what}: property {k}"
        );
    }
}

#[test]
fn java_consumes_what_rmq_sent_batched_delayed_and_compressed() {
    let topic = unique("RustToJava");
    let mut sent: Vec<(String, String, Message)> = Vec::new(); // (what, msg id, message)
    let codecs = ["zlib", "lz4", "zstd"];
    for (i, codec) in codecs.iter().enumerate() {
        let p = producer_with(&[(config::COMPRESS_TYPE, codec)]);
        let m = message(
            &topic,
            text_body(20_000, codec),
            &unique(codec),
            10 + i as i32,
        );
        let r = p.send_blocking(&m).unwrap();
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_eq!(
            stored.sys_flag & 0x700,
            m_codec_bits(codec),
            "{codec} stored"
        );
        sent.push((codec.to_string(), r.msg_id, m));
        p.shutdown();
    }
    let p = producer_with(&[]);
    let batch: Vec<Message> = (0..3)
        .map(|i| {
            message(
                &topic,
                text_body(50 + i, "batch"),
                &unique("batch"),
                i as i32,
            )
        })
        .collect();
    let r = p.send_batch_blocking(&batch).unwrap();
    for (m, id) in batch
        .into_iter()
        .zip(r.msg_ids().map(str::to_string).collect::<Vec<_>>())
    {
        sent.push(("batch".into(), id, m));
    }
    let mut level = message(&topic, b"delayed by level 1".to_vec(), &unique("level"), 1);
    level.set_delay_level(1).unwrap();
    let rl = p.send_blocking(&level).unwrap();
    let level_stored_at = p
        .view_message_blocking(&rl.offset_msg_id)
        .unwrap()
        .store_timestamp;
    sent.push(("level".into(), rl.msg_id.clone(), level));
    let asked = now_ms() + 3_000;
    let mut timer = message(
        &topic,
        b"timer at an absolute time".to_vec(),
        &unique("timer"),
        2,
    );
    timer.set_deliver_time_ms(asked).unwrap();
    let rt = p.send_blocking(&timer).unwrap();
    sent.push(("timer".into(), rt.msg_id.clone(), timer));
    p.shutdown();

    let out = java(&[
        "consume",
        &namesrv(),
        &topic,
        &sent.len().to_string(),
        "60000",
    ]);
    let got: HashMap<String, Received> = out.lines().map(parse_recv).collect();
    assert_eq!(got.len(), sent.len(), "{out}");
    for (what, id, m) in &sent {
        let r = got
            .get(id)
            .unwrap_or_else(|| panic!("{what} message {id} not received by Java"));
        assert_received(what, m, r);
    }
    // delays: the delivered copies were stored no earlier than asked
    let l = &got[&rl.msg_id];
    assert!(l.store_ms >= level_stored_at + 1_000 && l.recv_ms >= l.store_ms);
    // the broker rounds timers down to its precision (1000 ms by default), never more
    let t = &got[&rt.msg_id];
    assert!(
        t.store_ms >= asked - 1_000,
        "timer {} ms early",
        asked - t.store_ms
    );
    assert!(t.recv_ms >= asked - 1_000);
}

/// One QRECV line of the harness: (broker, queue id, queue offset, msg id, message as read).
fn parse_qrecv(line: &str) -> (String, i32, i64, String, Received) {
    let f: Vec<&str> = line.split('\t').collect();
    assert_eq!((f[0], f.len()), ("QRECV", 9), "{line}");
    let props = String::from_utf8(hex_decode(f[8]).unwrap()).unwrap();
    (
        f[1].to_string(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].to_string(),
        Received {
            recv_ms: 0,
            topic: f[5].to_string(),
            flag: f[6].parse().unwrap(),
            store_ms: 0,
            body: hex_decode(f[7]).unwrap_or_default(),
            props: decode_properties(&props),
        },
    )
}

#[test]
fn java_reads_rmq_ordered_messages_in_send_order_per_key() {
    let topic = unique("RustOrderedToJava");
    let p = producer_with(&[]);
    let keys = ["order-1", "order-2", "order-3", "order-4", "order-5"];
    // (key, msg id, message) in send order; keys interleaved so that order is per key only
    let mut sent: Vec<(&str, String, Message)> = Vec::new();
    for i in 0..40 {
        let key = keys[i % keys.len()];
        let m = message(
            &topic,
            format!("{key} step {}", i / keys.len()).into_bytes(),
            key,
            i as i32,
        );
        let r = p
            .send_select_blocking(&m, &rmq::QueueSelector::ByHash(key))
            .unwrap();
        sent.push((key, r.msg_id, m));
    }
    p.shutdown();

    let out = java(&[
        "consume-ordered",
        &namesrv(),
        &topic,
        &sent.len().to_string(),
        "60000",
    ]);
    // Java's reading order, queue by queue
    let read: Vec<_> = out.lines().map(parse_qrecv).collect();
    assert_eq!(read.len(), sent.len(), "{out}");
    let position: HashMap<&str, usize> = read
        .iter()
        .enumerate()
        .map(|(i, r)| (r.3.as_str(), i))
        .collect();
    let mut queues_used = std::collections::BTreeSet::new();
    for key in keys {
        let mine: Vec<_> = sent.iter().filter(|s| s.0 == key).collect();
        let at: Vec<usize> = mine
            .iter()
            .map(|(_, id, _)| {
                *position
                    .get(id.as_str())
                    .unwrap_or_else(|| panic!("{key} message {id} not read by Java"))
            })
            .collect();
        let queue = (&read[at[0]].0, read[at[0]].1);
        queues_used.insert(queue);
        for (n, ((_, _, m), &i)) in mine.iter().zip(&at).enumerate() {
            let (broker, qid, _, _, got) = &read[i];
            assert_eq!((broker, *qid), queue, "{key}: message {n} on another queue");
            assert_received(&format!("{key} #{n}"), m, got);
        }
        assert!(
            at.windows(2)
                .all(|w| w[0] < w[1] && read[w[0]].2 < read[w[1]].2),
            "{key}: Java read its messages out of send order: {at:?}"
        );
    }
    assert!(queues_used.len() > 1, "the keys spread over several queues");
}

fn m_codec_bits(codec: &str) -> i32 {
    match codec {
        "lz4" => 0x100,
        "zstd" => 0x200,
        _ => 0x300,
    }
}

#[test]
fn rmq_reads_back_what_java_sent_compressed_and_batched() {
    let topic = unique("JavaToRust");
    let prefix = unique("jk");
    let out = java(&["produce", &namesrv(), &topic, &unique("JavaGroup"), &prefix]);
    let p = producer_with(&[]);
    let mut n = 0;
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!((f[0], f.len()), ("SENT", 8), "{line}");
        let (what, offset_id, msg_id) = (f[1], f[2], f[3]);
        let flag: i32 = f[5].parse().unwrap();
        let body = hex_decode(f[6]).unwrap();
        let props = decode_properties(&String::from_utf8(hex_decode(f[7]).unwrap()).unwrap());
        let check = |stored: &MessageExt, how: &str| {
            assert_eq!(stored.message.topic(), f[4], "{what} {how}: topic");
            assert_eq!(stored.message.flag(), flag, "{what} {how}: flag");
            assert_eq!(&stored.message.body()[..], &body[..], "{what} {how}: body");
            assert_eq!(stored.msg_id(), msg_id, "{what} {how}: id");
            for (k, v) in &props {
                assert_eq!(
                    stored.message.property(k),
                    Some(v.as_str()),
                    "{what} {how}: property {k}"
                );
            }
        };
        let stored = p.view_message_blocking(offset_id).unwrap();
        check(&stored, "viewed");
        let codec_bits = match what {
            "ZLIB" => 0x300,
            "LZ4" => 0x100,
            "ZSTD" => 0x200,
            _ => 0,
        };
        assert_eq!(stored.sys_flag & 0x700, codec_bits, "{what}: codec stored");
        let key = prop(&props, "KEYS").unwrap();
        let found = eventually(Duration::from_secs(10), || {
            p.query_message_blocking(&topic, key, 4, now_ms() - 600_000, i64::MAX)
                .ok()?
                .into_iter()
                .next()
        })
        .unwrap_or_else(|| panic!("{what}: key {key} not found"));
        check(&found, "queried");
        n += 1;
    }
    assert_eq!(n, 6, "three codecs and a batch of three:\n{out}");
    p.shutdown();
}

/// Transactions rmq committed (at once, and later through its checker) are consumed by the
/// Java client with their fields; the one rmq rolled back never is.
#[test]
fn java_consumes_transactions_rmq_committed_never_the_rolled_back_one() {
    use rmq::{LocalTransactionState as State, TransactionProducer};
    let topic = unique("RustTxnToJava");
    let mut c = Config::new();
    c.set(config::NAME_SERVER, &namesrv()).unwrap();
    c.set(config::PRODUCER_GROUP, &unique("RustTxnInteropGroup"))
        .unwrap();
    // The checker commits what the local transaction left unknown.
    let p = TransactionProducer::new(c.producer_config().unwrap(), |_| State::Commit).unwrap();
    p.start().unwrap();
    let mut sent = HashMap::new();
    for (what, state) in [
        ("commit", State::Commit),
        ("rollback", State::Rollback),
        ("unknown-then-commit", State::Unknown),
    ] {
        let m = message(
            &topic,
            format!("{what} body").into_bytes(),
            &unique(what),
            7,
        );
        let r = p.send_in_transaction_blocking(&m, |_, _| state).unwrap();
        assert_eq!(r.state, state);
        sent.insert(r.send_result.msg_id.clone(), (what, m));
    }
    let out = java(&["consume", &namesrv(), &topic, "2", "90000"]);
    let mut got = HashMap::new();
    for line in out.lines() {
        let sys_flag: i32 = line.split('\t').nth(5).unwrap().parse().unwrap();
        let (id, r) = parse_recv(line);
        let (what, m) = &sent[&id];
        let mut expected = m.clone();
        if *what == "unknown-then-commit" {
            // The broker re-stores a half message it checks without its flag (RocketMQ
            // 5.3.3), so a transaction committed through a check arrives with flag 0, whichever
            // client sent it.
            expected.set_flag(0);
        }
        assert_received(what, &expected, &r);
        assert_eq!(
            sys_flag & 0xC,
            0x8,
            "{what}: stored as a committed transaction"
        );
        got.insert(*what, id);
    }
    let mut kinds: Vec<&str> = got.keys().copied().collect();
    kinds.sort();
    assert_eq!(kinds, ["commit", "unknown-then-commit"], "{out}");
    p.close().unwrap();
}
