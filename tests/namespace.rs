//! Namespaces against the real broker: the broker stores `<namespace>%<topic>` with the property
//! INSTANCE_ID=<namespace>; the namespaced producer's results, reads and queries show the topic
//! as it was given.
mod common;

use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{Config, Message, Producer, SendStatus};

fn producer(group: &str, namespace: Option<&str>) -> Producer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("producer.group", group).unwrap();
    if let Some(ns) = namespace {
        c.set("client.namespace", ns).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn topics_are_wrapped_on_the_broker_and_unwrapped_in_results() {
    let ns = unique("Ns").replace('_', "-");
    let topic = unique("NsTopic");
    let key = unique("nskey");
    let inside = producer(&unique("NsGroup"), Some(&ns));
    let outside = producer(&unique("PlainGroup"), None);

    let mut msg = Message::new(&topic, "in a namespace");
    msg.set_keys(&key).unwrap();
    let r = inside.send_blocking(&msg).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(
        &*r.queue.topic,
        topic.as_str(),
        "the result shows the topic given"
    );

    // What the broker stored, read without a namespace.
    let stored = outside.view_message_blocking(&r.offset_msg_id).unwrap();
    assert_eq!(stored.message.topic(), format!("{ns}%{topic}"));
    assert_eq!(stored.message.property("INSTANCE_ID"), Some(ns.as_str()));
    assert_eq!(stored.message.body(), msg.body());

    // The same message read in the namespace.
    let seen = inside.view_message_blocking(&r.offset_msg_id).unwrap();
    assert_eq!(seen.message.topic(), topic);

    // A query in the namespace asks for the wrapped topic and shows it unwrapped.
    let found = eventually(Duration::from_secs(10), || {
        let now = rmq::protocol::ids::now_ms();
        let v = inside
            .query_message_blocking(&topic, &key, 16, 0, now + 60_000)
            .unwrap();
        (!v.is_empty()).then_some(v)
    })
    .expect("the broker indexes the key");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message.topic(), topic);
    assert_eq!(found[0].offset_msg_id, r.offset_msg_id);

    // Without the namespace the topic is a different one on the broker: nothing stored there.
    let now = rmq::protocol::ids::now_ms();
    assert!(outside
        .query_message_blocking(&topic, &key, 16, 0, now + 60_000)
        .map(|v| v.is_empty())
        .unwrap_or(true));
    inside.shutdown();
    outside.shutdown();
}

#[test]
fn bad_namespaces_are_refused() {
    let mut c = Config::new();
    for bad in ["a%b", "a b", "x|y"] {
        assert!(c.set("client.namespace", bad).is_err(), "{bad}");
    }
}
