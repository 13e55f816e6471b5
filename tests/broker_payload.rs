//! Batches, compression and delays against a real Apache RocketMQ broker: every message is read
//! back from the broker (view by store id, query by key) and compared field by field.
mod common;

use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::config::{self, Config};
use rmq::protocol::ids::now_ms;
use rmq::{Error, Message, MessageExt, Producer, SendStatus};

fn producer_with(group: &str, extra: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set(config::NAME_SERVER, &namesrv()).unwrap();
    c.set(config::PRODUCER_GROUP, group).unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn message(topic: &str, body: &[u8], key: &str) -> Message {
    let mut m = Message::new(topic, body.to_vec());
    m.set_tags("TagP").unwrap();
    m.set_key_list(&[key]).unwrap();
    m.put_user_property("color", "green").unwrap();
    m
}

fn assert_same(sent: &Message, stored: &MessageExt) {
    assert_eq!(stored.message.topic(), sent.topic());
    assert_eq!(stored.message.body(), sent.body(), "body");
    assert_eq!(stored.message.flag(), sent.flag(), "flag");
    assert_eq!(stored.message.tags(), sent.tags());
    assert_eq!(stored.message.keys(), sent.keys());
    for (k, v) in sent.properties() {
        // WAIT tells the broker how to answer; 4.x brokers drop it from the stored message.
        if k == "WAIT" {
            continue;
        }
        assert_eq!(stored.message.property(k), Some(v.as_str()), "property {k}");
    }
}

/// Compressible but not trivial: text-like bytes.
fn text_body(n: usize) -> Vec<u8> {
    let words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do ";
    (0..n)
        .map(|i| words[(i * 7 + i / 13) % words.len()])
        .collect()
}

/// Incompressible: xorshift noise.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn find_by_key(p: &Producer, topic: &str, key: &str, within: Duration) -> Option<MessageExt> {
    let begin = now_ms() - 600_000;
    eventually(within, || {
        p.query_message_blocking(topic, key, 32, begin, i64::MAX)
            .ok()?
            .into_iter()
            .next()
    })
}

#[test]
fn batch_gives_each_message_its_own_ids_and_is_stored_field_for_field() {
    let p = producer_with(&unique("RustBatchGroup"), &[]);
    let topic = unique("RustBatch");
    let mut msgs: Vec<Message> = (0..5)
        .map(|i| message(&topic, format!("batch body {i}").as_bytes(), &unique("bk")))
        .collect();
    msgs[1].set_flag(42);
    // big bodies in a batch stay uncompressed
    msgs[2].set_body(text_body(10_000));
    msgs[3].set_body(b"\x00\x01\x02 binary \xff".to_vec());
    let r = p.send_batch_blocking(&msgs).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    let ids: Vec<&str> = r.msg_ids().collect();
    let offset_ids: Vec<&str> = r.offset_msg_ids().collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(offset_ids.len(), 5);
    for (i, m) in msgs.iter().enumerate() {
        let stored = p.view_message_blocking(offset_ids[i]).unwrap();
        assert_same(m, &stored);
        assert_eq!(
            stored.msg_id(),
            ids[i],
            "message {i} keeps its own UNIQ_KEY"
        );
        assert_eq!(stored.queue_id, r.queue.queue_id);
        assert_eq!(stored.queue_offset, r.queue_offset + i as i64, "in order");
        assert_eq!(
            stored.sys_flag & 0x701,
            0,
            "batch bodies are not compressed"
        );
    }
    // and each one is found by its own key
    let found = find_by_key(&p, &topic, msgs[4].keys().unwrap(), Duration::from_secs(10))
        .expect("indexed by key");
    assert_same(&msgs[4], &found);
    p.shutdown();
}

#[test]
fn batch_rules_are_refused_before_anything_is_sent() {
    let p = producer_with(&unique("RustBatchRulesGroup"), &[]);
    let topic = unique("RustBatchRules");
    let mut delayed = message(&topic, b"d", "k");
    delayed.set_delay_level(1).unwrap();
    for (msgs, needle) in [
        (vec![], "at least one"),
        (
            vec![message(&topic, b"a", "k"), message("Other", b"b", "k")],
            "one topic",
        ),
        (vec![message("%RETRY%G", b"a", "k")], "retry topic"),
        (vec![delayed], "delayed"),
    ] {
        let e = p.send_batch_blocking(&msgs).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
    p.shutdown();
}

#[test]
fn split_batches_fit_the_limit_and_all_arrive() {
    let max = 10_000;
    let p = producer_with(
        &unique("RustSplitGroup"),
        &[(config::MAX_MESSAGE_SIZE, &max.to_string())],
    );
    let topic = unique("RustSplit");
    let msgs: Vec<Message> = (0..40)
        .map(|i| message(&topic, &noise(900, i + 1), &format!("split-{i}")))
        .collect();
    // one batch of everything is over the limit
    assert!(matches!(
        p.send_batch_blocking(&msgs),
        Err(Error::MessageTooLarge { max: 10_000, .. })
    ));
    let batches = p.split_batches(&msgs).unwrap();
    assert!(batches.len() >= 4, "{} batches", batches.len());
    let mut n = 0;
    for b in &batches {
        let r = p.send_batch_blocking(b).unwrap();
        for (m, id) in b.iter().zip(r.offset_msg_ids()) {
            assert_same(m, &p.view_message_blocking(id).unwrap());
            n += 1;
        }
    }
    assert_eq!(n, msgs.len());
    p.shutdown();
}

#[test]
fn every_codec_is_sent_compressed_and_read_back_decompressed() {
    let topic = unique("RustCompress");
    for (codec, level, type_bits) in [
        ("zlib", "5", 0x300),
        ("lz4", "5", 0x100),
        ("zstd", "3", 0x200),
    ] {
        let p = producer_with(
            &unique("RustCompressGroup"),
            &[
                (config::COMPRESS_TYPE, codec),
                (config::COMPRESS_LEVEL, level),
            ],
        );
        let key = unique(codec);
        let msg = message(&topic, &text_body(64 * 1024), &key);
        let r = p.send_blocking(&msg).unwrap();
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_same(&msg, &stored);
        assert_eq!(stored.sys_flag & 0x700, type_bits, "{codec} flag stored");
        assert_eq!(stored.sys_flag & 1, 0, "exposed decompressed");
        let found = find_by_key(&p, &topic, &key, Duration::from_secs(10)).expect("indexed");
        assert_same(&msg, &found);
        // under the threshold: sent as it is
        let small = message(&topic, &text_body(4095), &unique("small"));
        let r = p.send_blocking(&small).unwrap();
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_eq!(stored.sys_flag & 0x701, 0);
        assert_same(&small, &stored);
        p.shutdown();
    }
}

#[test]
fn max_message_size_applies_to_the_body_as_sent() {
    let p = producer_with(
        &unique("RustCompressSizeGroup"),
        &[(config::MAX_MESSAGE_SIZE, "20000")],
    );
    let topic = unique("RustCompressSize");
    // 200 KB that compresses well fits; 30 KB of noise does not compress and does not fit
    let big = message(&topic, &text_body(200_000), "fits");
    let r = p.send_blocking(&big).unwrap();
    assert_same(&big, &p.view_message_blocking(&r.offset_msg_id).unwrap());
    let e = p
        .send_blocking(&message(&topic, &noise(30_000, 7), "too-big"))
        .unwrap_err();
    assert!(
        matches!(e, Error::MessageTooLarge { max: 20000, .. }),
        "{e}"
    );
    p.shutdown();
}

/// The copy the broker delivers to the real topic when the delay is over: found by key there
/// (the scheduled copy lives in a system topic).
fn delivered(p: &Producer, topic: &str, key: &str) -> MessageExt {
    find_by_key(p, topic, key, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("delayed message {key} was never delivered to {topic}"))
}

#[test]
fn delay_level_delivers_no_earlier_than_the_level() {
    let p = producer_with(&unique("RustDelayGroup"), &[]);
    let topic = unique("RustDelay");
    let key = unique("delay");
    let mut msg = message(&topic, b"delayed by level 2 (5 s)", &key);
    msg.set_delay_level(2).unwrap();
    let r = p.send_blocking(&msg).unwrap();
    let scheduled = p.view_message_blocking(&r.offset_msg_id).unwrap();
    assert_eq!(scheduled.message.topic(), "SCHEDULE_TOPIC_XXXX");
    assert_eq!(
        scheduled.message.property("REAL_TOPIC"),
        Some(topic.as_str())
    );
    let real = delivered(&p, &topic, &key);
    assert!(
        real.store_timestamp >= scheduled.store_timestamp + 5_000,
        "delivered {} ms after it was stored; level 2 is 5000 ms",
        real.store_timestamp - scheduled.store_timestamp
    );
    assert_eq!(real.msg_id(), r.msg_id);
    assert_eq!(real.message.body(), msg.body());
    assert_eq!(real.message.tags(), msg.tags());
    assert_eq!(real.message.property("color"), Some("green"));
    p.shutdown();
}

/// The broker's timer rounds delivery times down to its precision (`timerPrecisionMs`, 1000 ms by
/// default), so a timer message may arrive up to that much before the asked time, never more.
const TIMER_PRECISION_MS: i64 = 1000;

#[test]
fn timer_messages_deliver_no_earlier_than_asked() {
    let p = producer_with(&unique("RustTimerGroup"), &[]);
    let topic = unique("RustTimer");
    let mut cases = Vec::new();
    for kind in ["deliver_ms", "delay_ms", "delay_sec"] {
        let key = unique(kind);
        let mut msg = message(&topic, format!("timer {kind}").as_bytes(), &key);
        let sent_at = now_ms();
        let asked = match kind {
            "deliver_ms" => {
                let at = sent_at + 4_000;
                msg.set_deliver_time_ms(at).unwrap();
                at
            }
            "delay_ms" => {
                msg.set_delay_ms(3_000).unwrap();
                sent_at + 3_000
            }
            _ => {
                msg.set_delay_sec(3).unwrap();
                sent_at + 3_000
            }
        };
        let r = p.send_blocking(&msg).unwrap();
        let scheduled = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_eq!(scheduled.message.topic(), "rmq_sys_wheel_timer", "{kind}");
        cases.push((kind, key, msg, r, asked));
    }
    for (kind, key, msg, r, asked) in cases {
        let real = delivered(&p, &topic, &key);
        assert!(
            real.store_timestamp >= asked - TIMER_PRECISION_MS,
            "{kind}: delivered {} ms before the asked time",
            asked - real.store_timestamp
        );
        assert_eq!(real.msg_id(), r.msg_id);
        assert_eq!(real.message.body(), msg.body());
        assert_eq!(real.message.tags(), msg.tags());
    }
    p.shutdown();
}
