//! `consumer.consume-concurrently-max-span` against a real broker: while one message of a queue is
//! stuck in its listener, pulling of that queue stops once the unconsumed span exceeds the bound,
//! so the rest of the queue cannot run far ahead of the committed offset. Nothing is lost once the
//! stuck message is released.
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const MAX_SPAN: i64 = 20;
const PULL_BATCH: i64 = 8;

#[test]
fn a_stuck_message_bounds_how_far_its_queue_is_pulled() {
    let topic = unique("RustMaxSpan");
    let group = unique("rust_max_span");
    let producer =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("max_span_p")).unwrap()).unwrap();
    producer.start().unwrap();

    // The first message is the stuck one; the rest follow on every queue.
    let stuck = producer
        .send_blocking(&Message::new(&topic, b"stuck".to_vec()))
        .unwrap();
    let total = 400;
    let mut on_other_queues = 0;
    for i in 1..total {
        let r = producer
            .send_blocking(&Message::new(&topic, format!("m-{i}").into_bytes()))
            .unwrap();
        if r.queue.queue_id != stuck.queue.queue_id {
            on_other_queues += 1;
        }
    }

    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", &group).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.consume-thread-number", "4").unwrap();
    c.set("consumer.pull-batch-size", &PULL_BATCH.to_string())
        .unwrap();
    c.set(
        "consumer.consume-concurrently-max-span",
        &MAX_SPAN.to_string(),
    )
    .unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(&topic, "*").unwrap();

    let release = Arc::new(AtomicBool::new(false));
    // (queue id, queue offset, body) of every delivery.
    let seen: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    {
        let (release, seen) = (Arc::clone(&release), Arc::clone(&seen));
        consumer
            .set_listener(move |msgs| {
                for m in msgs {
                    let body = String::from_utf8_lossy(m.message.body()).into_owned();
                    seen.lock()
                        .unwrap()
                        .push((m.queue_id, m.queue_offset, body.clone()));
                    if body == "stuck" {
                        while !release.load(Ordering::Acquire) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                ConsumeResult::Success
            })
            .unwrap();
    }
    consumer.start().unwrap();

    let stuck_queue = stuck.queue.queue_id;
    let stuck_offset = stuck.queue_offset;
    let others_done = eventually(Duration::from_secs(60), || {
        let s = seen.lock().unwrap();
        let other_queues = s.iter().filter(|(q, _, _)| *q != stuck_queue).count();
        let stuck_seen = s.iter().any(|(_, _, b)| b == "stuck");
        (stuck_seen && other_queues >= on_other_queues).then_some(())
    });
    assert!(
        others_done.is_some(),
        "the other queues were not consumed while one message was stuck"
    );
    // A pull starts only while the span is within the bound, and adds at most one batch.
    let furthest = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(q, _, _)| *q == stuck_queue)
        .map(|(_, o, _)| *o)
        .max()
        .unwrap();
    assert!(
        furthest - stuck_offset <= MAX_SPAN + PULL_BATCH,
        "queue {stuck_queue} was pulled to offset {furthest}, {} past the stuck message at \
         {stuck_offset}; the bound is {MAX_SPAN} + one batch of {PULL_BATCH}",
        furthest - stuck_offset
    );

    release.store(true, Ordering::Release);
    let all = eventually(Duration::from_secs(60), || {
        let bodies: HashSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| b.clone())
            .collect();
        (bodies.len() == total).then_some(bodies)
    });
    assert!(
        all.is_some(),
        "not every message was consumed after the release"
    );
    consumer.shutdown().unwrap();
    producer.shutdown();
}
