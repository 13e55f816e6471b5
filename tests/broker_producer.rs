//! The producer against a real Apache RocketMQ name server and broker: every message sent is read
//! back from the broker and compared.
mod common;

use std::collections::HashSet;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{eventually, namesrv, unique};
use rmq::client::registry;
use rmq::{ClientConfig, Error, Message, MessageExt, Producer, ProducerConfig, SendStatus};

fn producer(group: &str) -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), group).unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn message(topic: &str, body: &[u8], key: &str) -> Message {
    let mut m = Message::new(topic, body.to_vec());
    m.set_tags("TagA").unwrap();
    m.set_key_list(&[key, "second-key"]).unwrap();
    m.put_user_property("color", "blue").unwrap();
    m.put_user_property("ünïcode", "välue").unwrap();
    m
}

fn assert_same(sent: &Message, stored: &MessageExt) {
    assert_eq!(stored.message.topic(), sent.topic());
    assert_eq!(stored.message.body(), sent.body(), "body");
    assert_eq!(stored.message.tags(), sent.tags());
    assert_eq!(stored.message.keys(), sent.keys());
    for (k, v) in sent.properties() {
        // WAIT (wait for the store) tells the broker how to answer; 4.x brokers drop it from
        // the stored message to save its bytes, 5.x brokers keep it.
        if k == "WAIT" {
            continue;
        }
        assert_eq!(stored.message.property(k), Some(v.as_str()), "property {k}");
    }
}

/// Bytes that do not compress (xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn binary_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 256) as u8).collect()
}

#[test]
fn sync_send_is_stored_byte_for_byte() {
    let p = producer(&unique("RustSyncGroup"));
    let topic = unique("RustSync");
    for body in [b"\x00\xff\xfebinary\x00".to_vec(), binary_body(1 << 20)] {
        let msg = message(&topic, &body, &unique("k"));
        let r = p.send_blocking(&msg).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(&*r.queue.topic, topic.as_str());
        assert_eq!(r.msg_id.len(), 32);
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_same(&msg, &stored);
        assert_eq!(
            stored.msg_id(),
            r.msg_id,
            "UNIQ_KEY travels with the message"
        );
        assert_eq!(stored.queue_id, r.queue.queue_id);
        assert_eq!(stored.queue_offset, r.queue_offset);
    }
    p.shutdown();
}

#[test]
fn async_sends_all_complete_and_are_stored() {
    let p = producer(&unique("RustAsyncGroup"));
    let topic = unique("RustAsync");
    let (tx, rx) = mpsc::channel();
    let n = 100;
    let mut sent = Vec::new();
    for i in 0..n {
        let msg = message(
            &topic,
            format!("async body {i}").as_bytes(),
            &format!("async-{i}"),
        );
        let tx = tx.clone();
        p.send_with_callback(&msg, move |r| tx.send((i, r)).unwrap())
            .unwrap();
        sent.push(msg);
    }
    let mut ids = HashSet::new();
    for _ in 0..n {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("every callback runs");
        let r = r.unwrap();
        assert!(ids.insert(r.msg_id.clone()), "distinct ids");
        let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
        assert_same(&sent[i], &stored);
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "each callback runs once"
    );
    p.shutdown();
}

#[test]
fn async_rust_api_and_oneway_read_back_by_key() {
    let p = producer(&unique("RustOnewayGroup"));
    let topic = unique("RustOneway");
    let key = unique("oneway-key");
    let msg = message(&topic, b"oneway \x00 body", &key);
    // make sure the topic exists first, then fire and forget
    let first = rmq::runtime::handle()
        .block_on(p.send(&message(&topic, b"warm-up", "w")))
        .unwrap();
    assert_eq!(first.status, SendStatus::SendOk);
    p.send_oneway_blocking(&msg).unwrap();
    let begin = rmq::protocol::ids::now_ms() - 60_000;
    let found = eventually(Duration::from_secs(10), || {
        let v = p
            .query_message_blocking(&topic, &key, 32, begin, i64::MAX)
            .ok()?;
        (!v.is_empty()).then_some(v)
    })
    .expect("the oneway message is stored and indexed by its key");
    assert_eq!(found.len(), 1);
    assert_same(&msg, &found[0]);
    p.shutdown();
}

#[test]
fn sends_round_robin_over_the_auto_created_queues() {
    let p = producer(&unique("RustRrGroup"));
    let topic = unique("RustRr");
    let queues: HashSet<i32> = (0..8)
        .map(|i| {
            p.send_blocking(&message(&topic, format!("{i}").as_bytes(), "k"))
                .unwrap()
                .queue
                .queue_id
        })
        .collect();
    // auto-created topics get min(4, TBW102 queues) queues; round robin visits all of them
    assert_eq!(queues.len(), 4, "{queues:?}");
    p.shutdown();
}

#[test]
fn concurrent_blocking_senders_share_one_producer() {
    let p = producer(&unique("RustThreadsGroup"));
    let topic = unique("RustThreads");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            let topic = topic.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        let msg = Message::new(topic.as_str(), format!("t{t} m{i}"));
                        (msg.clone(), p.send_blocking(&msg).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(results.len(), 200);
    let offsets: HashSet<(i32, i64)> = results
        .iter()
        .map(|(_, r)| (r.queue.queue_id, r.queue_offset))
        .collect();
    assert_eq!(
        offsets.len(),
        200,
        "every message has its own queue position"
    );
    for (msg, r) in results.iter().step_by(37) {
        assert_eq!(
            p.view_message_blocking(&r.offset_msg_id)
                .unwrap()
                .message
                .body(),
            msg.body()
        );
    }
    p.shutdown();
}

#[test]
fn bad_input_gets_clear_errors_and_sends_nothing() {
    let p = producer(&unique("RustBadGroup"));
    let err = |m: Message| p.send_blocking(&m).unwrap_err();
    assert!(matches!(
        err(Message::new("", "x")),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        err(Message::new("bad topic!", "x")),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        err(Message::new("T", "")),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        // noise: bodies over the compression threshold are limited as sent, compressed
        err(Message::new("T", noise(4 * 1024 * 1024 + 1))),
        Error::MessageTooLarge { .. }
    ));
    // exactly the limit is fine
    let topic = unique("RustLimit");
    assert!(p
        .send_blocking(&Message::new(topic.as_str(), vec![1u8; 4 * 1024 * 1024]))
        .is_ok());
    p.shutdown();
}

#[test]
fn heartbeat_is_accepted_by_the_broker() {
    let mut config = ClientConfig::new(&namesrv()).unwrap();
    config.instance_name = unique("hb"); // an instance of its own, not shared with other tests
    let group = unique("RustHbGroup");
    let instance = registry::register_producer(&config, &group).unwrap();
    rmq::runtime::handle().block_on(async {
        // learning a route also heartbeats new brokers; count an explicit round too
        instance
            .update_route("TBW102", Instant::now() + Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(
            instance.send_heartbeats().await,
            1,
            "one master broker answered SUCCESS"
        );
    });
    assert!(registry::unregister_producer(&instance, &group));
    instance.close();
}

/// Producers with one client id and name-server set share one client instance (connections,
/// routes, heartbeats), as in Java; a group registered twice in it is refused.
#[test]
fn producers_with_one_client_id_share_one_instance() {
    let mut config = ProducerConfig::new(&namesrv(), &unique("RustShareA")).unwrap();
    config.client.instance_name = unique("shared");
    let a = Producer::new(config.clone()).unwrap();
    let mut b_config = config.clone();
    b_config.group = unique("RustShareB");
    let b = Producer::new(b_config).unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let (ia, ib) = (a.instance().unwrap(), b.instance().unwrap());
    assert!(Arc::ptr_eq(&ia, &ib), "one instance for one client id");
    assert_eq!(a.client_id(), b.client_id());

    // the same group twice in one instance is a clear error
    let twin = Producer::new(config.clone()).unwrap();
    let err = twin.start().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidState(m) if m.contains("already registered")),
        "{err}"
    );

    // both send through the shared connections; b learns a's route without asking again
    let topic = unique("RustShared");
    a.send_blocking(&Message::new(topic.as_str(), "from a"))
        .unwrap();
    assert!(
        ib.cached_publish_info(&topic).is_some(),
        "routes are per instance"
    );
    b.send_blocking(&Message::new(topic.as_str(), "from b"))
        .unwrap();

    // the instance outlives a while b is a member, and closes with the last one
    a.shutdown();
    assert!(!ib.is_shut_down());
    b.send_blocking(&Message::new(topic.as_str(), "b after a left"))
        .unwrap();
    b.shutdown();
    assert!(ib.is_shut_down());
    // a group freed by shutdown can join again (a new instance)
    twin.start().unwrap();
    assert!(!Arc::ptr_eq(&twin.instance().unwrap(), &ia));
    twin.shutdown();
}
