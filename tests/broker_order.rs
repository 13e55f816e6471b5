//! Ordered sends, the in-flight window, client.language and read-back of user properties
//! against a real Apache RocketMQ name server and broker.
mod common;

use std::borrow::Cow;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{namesrv, unique};
use rmq::producer::hash_index;
use rmq::remoting::command::RemotingCommand;
use rmq::{Config, Error, Message, MessageQueue, Producer, QueueSelector};

fn producer(group: &str, set: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", group).unwrap();
    for (k, v) in set {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// The topic's writable queues as a selector sees them (the first send creates the topic).
fn queues_of(p: &Producer, topic: &str) -> Vec<MessageQueue> {
    p.send_blocking(&Message::new(topic, "create")).unwrap();
    let mut seen = Vec::new();
    p.select_queue_blocking(topic, |qs| {
        seen = qs.to_vec();
        Ok(0)
    })
    .unwrap();
    seen
}

/// Messages with one sharding key all land on the queue Java's SelectMessageQueueByHash picks,
/// in the order sent, sync and async alike; stored bodies read back equal.
#[test]
fn hash_selector_keeps_a_key_on_its_queue_in_order() {
    let p = producer(&unique("RustOrderGroup"), &[]);
    let topic = unique("RustOrder");
    let qs = queues_of(&p, &topic);
    assert!(qs.len() >= 2, "{qs:?}");
    for key in ["order-1001", "order-1002", "order-1003"] {
        let want = &qs[hash_index(key, qs.len())];
        let mut offsets = Vec::new();
        for i in 0..5 {
            let body = format!("{key}-{i}");
            let r = p
                .send_select_blocking(
                    &Message::new(&topic, body.clone()),
                    &QueueSelector::ByHash(key),
                )
                .unwrap();
            assert_eq!(&r.queue, want, "{key}");
            let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
            assert_eq!(stored.message.body().as_ref(), body.as_bytes());
            offsets.push(r.queue_offset);
        }
        let (tx, rx) = mpsc::channel();
        p.send_select_with_callback(
            &Message::new(&topic, format!("{key}-async")),
            &QueueSelector::ByHash(key),
            move |r| tx.send(r).unwrap(),
        )
        .unwrap();
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(&r.queue, want);
        offsets.push(r.queue_offset);
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "in order: {offsets:?}"
        );
    }
    p.shutdown();
}

/// Round robin visits every queue; random stays among them; a custom closure sees the queues and
/// chooses one.
#[test]
fn built_in_and_custom_selectors_choose_among_the_writable_queues() {
    let p = producer(&unique("RustSelGroup"), &[]);
    let topic = unique("RustSel");
    let qs = queues_of(&p, &topic);
    let mut visited: Vec<i32> = (0..qs.len())
        .map(|_| {
            p.send_select_blocking(&Message::new(&topic, "rr"), &QueueSelector::RoundRobin)
                .unwrap()
                .queue
                .queue_id
        })
        .collect();
    visited.sort();
    assert_eq!(visited, (0..qs.len() as i32).collect::<Vec<_>>());
    for _ in 0..5 {
        let r = p
            .send_select_blocking(&Message::new(&topic, "rnd"), &QueueSelector::Random)
            .unwrap();
        assert!(qs.contains(&r.queue));
    }
    let last = |qs: &[MessageQueue]| qs.len() - 1;
    let r = p
        .send_select_blocking(&Message::new(&topic, "last"), &QueueSelector::Custom(&last))
        .unwrap();
    assert_eq!(&r.queue, qs.last().unwrap());
    let beyond = |qs: &[MessageQueue]| qs.len();
    let r = p.send_select_blocking(&Message::new(&topic, "x"), &QueueSelector::Custom(&beyond));
    assert!(matches!(r, Err(Error::QueueSelector(_))), "{r:?}");
    p.shutdown();
}

/// An explicit queue is written to as given; a queue of another topic is refused before
/// sending; a queue id the topic lacks is refused by the broker, whose code is kept.
#[test]
fn explicit_queue_sends() {
    let p = producer(&unique("RustMqGroup"), &[]);
    let topic = unique("RustMq");
    let qs = queues_of(&p, &topic);
    let q = qs.last().unwrap().clone();
    let r = p
        .send_to_queue_blocking(&Message::new(&topic, "to q"), &q)
        .unwrap();
    assert_eq!(r.queue, q);
    let (tx, rx) = mpsc::channel();
    p.send_to_queue_with_callback(&Message::new(&topic, "to q async"), &q, move |r| {
        tx.send(r).unwrap()
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap()
            .queue,
        q
    );

    let other = MessageQueue {
        topic: "SomeOtherTopic".into(),
        ..q.clone()
    };
    assert!(matches!(
        p.send_to_queue_blocking(&Message::new(&topic, "x"), &other),
        Err(Error::InvalidArgument(_))
    ));
    let nowhere = MessageQueue {
        broker_name: "no-such-broker".into(),
        ..q.clone()
    };
    assert!(matches!(
        p.send_to_queue_blocking(&Message::new(&topic, "x"), &nowhere),
        Err(Error::RouteNotFound { .. })
    ));
    let missing = MessageQueue {
        queue_id: 999,
        ..q.clone()
    };
    let r = p.send_to_queue_blocking(&Message::new(&topic, "x"), &missing);
    match r {
        Err(e) => assert!(e.response_code().is_some(), "a broker answer: {e}"),
        Ok(r) => panic!("queue 999 of {} accepted: {r:?}", qs.len()),
    }
    p.shutdown();
}

/// The broker records the language code the producer's requests carried.
#[test]
fn the_broker_sees_the_configured_language() {
    for language in ["JAVA", "RUST"] {
        let group = unique(&format!("RustLang{language}"));
        let mut c = Config::new();
        c.set("name-server", &namesrv()).unwrap();
        c.set("producer.group", &group).unwrap();
        c.set("client.language", language).unwrap();
        c.set("instance-name", &unique("lang")).unwrap();
        let p = Producer::new(c.producer_config().unwrap()).unwrap();
        p.start().unwrap();
        let r = p
            .send_blocking(&Message::new(unique("RustLang"), "x"))
            .unwrap();
        let instance = p.instance().unwrap();
        let addr = instance.master_addr(&r.queue.broker_name).unwrap();
        // GET_PRODUCER_CONNECTION_LIST (204): the broker's table of this group's producers.
        let req =
            RemotingCommand::request(204, vec![(Cow::Borrowed("producerGroup"), group.clone())]);
        let resp = rmq::runtime::handle()
            .block_on(instance.remoting().invoke(
                &addr,
                &req,
                Instant::now() + Duration::from_secs(3),
            ))
            .unwrap();
        assert_eq!(resp.code, 0, "{:?}", resp.remark_str());
        let body = String::from_utf8_lossy(&resp.body).to_string();
        assert!(
            body.contains(&format!("\"language\":\"{language}\"")),
            "{language}: {body}"
        );
        p.shutdown();
    }
}

/// Read back from the broker, a message's user properties are the ones set, without the
/// reserved ones the client and broker add.
#[test]
fn user_properties_read_back_without_reserved_ones() {
    let p = producer(&unique("RustUserPropGroup"), &[]);
    let topic = unique("RustUserProp");
    let mut m = Message::new(&topic, "props");
    m.set_tags("TagA").unwrap();
    m.set_keys("k1").unwrap();
    m.put_user_property("color", "blue").unwrap();
    m.put_user_property("size", "XL").unwrap();
    let r = p.send_blocking(&m).unwrap();
    let stored = p.view_message_blocking(&r.offset_msg_id).unwrap();
    let mut user: Vec<(String, String)> = stored.message.user_properties().cloned().collect();
    user.sort(); // the broker keeps properties in a hash map
    assert_eq!(
        user,
        vec![
            ("color".into(), "blue".into()),
            ("size".into(), "XL".into())
        ]
    );
    assert!(
        stored.message.properties().len() > user.len(),
        "the stored message has reserved ones"
    );
    p.shutdown();
}

/// Against the real broker, 500 async sends through a window of 8 each complete exactly once.
#[test]
fn async_sends_through_a_small_window_all_complete() {
    let p = producer(
        &unique("RustWindowGroup"),
        &[("producer.max-in-flight-async-sends", "8")],
    );
    let topic = unique("RustWindow");
    let counts = Arc::new(std::sync::Mutex::new(vec![0u32; 500]));
    let (tx, rx) = mpsc::channel();
    for i in 0..500 {
        let (counts, tx) = (Arc::clone(&counts), tx.clone());
        p.send_with_callback(&Message::new(&topic, format!("w{i}")), move |r| {
            counts.lock().unwrap()[i] += 1;
            tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    }
    for _ in 0..500 {
        assert!(rx.recv_timeout(Duration::from_secs(20)).unwrap());
    }
    p.close().unwrap();
    assert!(counts.lock().unwrap().iter().all(|&c| c == 1));
}
