//! Completion queues against a real broker: every accepted send yields exactly one result,
//! whether the queue is shared, polled in batches, or closed with sends in flight.
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{namesrv, unique};
use rmq::{Completed, CompletionQueue, Error, Message, Producer, ProducerConfig};

/// Bursts of thousands of async sends on a busy machine: a failure must mean a bug, not a broker
/// that answered after the default 3 s.
fn producer(group: &str) -> Producer {
    let mut config = ProducerConfig::new(&namesrv(), group).unwrap();
    config.send_timeout = Duration::from_secs(30);
    let p = Producer::new(config).unwrap();
    p.start().unwrap();
    p
}

/// Sends `tags` through `q`, polling whenever the queue is at capacity; returns what the polls
/// took along the way.
fn send_all(
    q: &CompletionQueue,
    p: &Producer,
    topic: &str,
    tags: impl Iterator<Item = u64>,
) -> Vec<Completed> {
    let mut got = Vec::new();
    for tag in tags {
        let msg = Message::new(topic, format!("cq {tag}").into_bytes());
        loop {
            match q.send(p, &msg, tag) {
                Ok(()) => break,
                Err(Error::InFlightFull(_)) => {
                    q.poll(&mut got, 256, Some(Duration::from_secs(10)));
                }
                Err(e) => panic!("send {tag}: {e}"),
            }
        }
    }
    got
}

fn drain(q: &CompletionQueue, got: &mut Vec<Completed>, total: usize) {
    while got.len() < total {
        let n = q.poll(got, 256, Some(Duration::from_secs(30)));
        assert!(n > 0, "no result within 30 s; {} of {total}", got.len());
    }
}

#[test]
fn ten_thousand_sends_each_deliver_exactly_one_result() {
    let p = producer(&unique("CqGroup"));
    let topic = unique("Cq");
    let q = CompletionQueue::new(1024).unwrap();
    let mut got = send_all(&q, &p, &topic, 0..10_000);
    drain(&q, &mut got, 10_000);
    assert_eq!(
        q.poll(&mut got, 256, Some(Duration::ZERO)),
        0,
        "nothing more"
    );
    let tags: HashSet<u64> = got.iter().map(|c| c.tag).collect();
    assert_eq!(tags, (0..10_000).collect::<HashSet<_>>());
    let mut stored = HashSet::new();
    for c in &got {
        // A burst of 10 000 may meet the broker's flow control: a refusal is a result too.
        let r = match &c.outcome {
            Ok(r) => r,
            Err(e) if is_flow_control(e) => continue,
            Err(e) => panic!("tag {}: {e}", c.tag),
        };
        assert_eq!(&*r.queue.topic, topic);
        assert!(
            stored.insert((
                r.queue.broker_name.clone(),
                r.queue.queue_id,
                r.queue_offset
            )),
            "two results name one stored position"
        );
    }
    assert_eq!(q.owed(), 0);
    p.close().unwrap();
}

#[test]
fn two_producers_share_one_queue() {
    let a = producer(&unique("CqSharedA"));
    let b = producer(&unique("CqSharedB"));
    let topic = unique("CqShared");
    let q = CompletionQueue::new(300).unwrap();
    // Tags below 1000 go through a, the others through b, interleaved.
    let mut got = Vec::new();
    for i in 0..500u64 {
        got.extend(send_all(&q, &a, &topic, std::iter::once(i)));
        got.extend(send_all(&q, &b, &topic, std::iter::once(1000 + i)));
    }
    drain(&q, &mut got, 1000);
    let mut tags: Vec<u64> = got.iter().map(|c| c.tag).collect();
    tags.sort_unstable();
    let want: Vec<u64> = (0..500).chain(1000..1500).collect();
    assert_eq!(tags, want);
    assert!(got
        .iter()
        .all(|c| c.outcome.is_ok() || matches!(&c.outcome, Err(e) if is_flow_control(e))));
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn closing_the_queue_with_sends_in_flight_counts_every_result() {
    let p = producer(&unique("CqClose"));
    let topic = unique("CqClose");
    let q = CompletionQueue::new(500).unwrap();
    let _ = send_all(&q, &p, &topic, 0..200);
    let mut before = Vec::new();
    q.poll(&mut before, 50, Some(Duration::ZERO));
    q.close();
    assert!(matches!(
        q.send(&p, &Message::new(&topic, b"late".to_vec()), 999),
        Err(Error::InvalidState(_))
    ));
    // Closing the producer waits until every send has delivered (here: been dropped).
    p.close().unwrap();
    assert_eq!(before.len() as u64 + q.discarded(), 200);
    assert_eq!(q.owed(), 0);
    let mut after = Vec::new();
    assert_eq!(
        q.poll(&mut after, 10, None),
        0,
        "a closed queue does not wait"
    );
}

#[test]
fn a_producer_shut_down_with_sends_in_flight_delivers_each_once() {
    let p = producer(&unique("CqShutdown"));
    let topic = unique("CqShutdown");
    let q = CompletionQueue::new(1000).unwrap();
    let mut got = send_all(&q, &p, &topic, 0..300);
    p.close().unwrap();
    // Every result is in the queue once close returns.
    assert_eq!(q.owed(), 300 - got.len());
    drain(&q, &mut got, 300);
    let tags: HashSet<u64> = got.iter().map(|c| c.tag).collect();
    assert_eq!(tags.len(), 300);
    for c in &got {
        match &c.outcome {
            Ok(_) | Err(Error::Cancelled(_)) => {}
            Err(e) => panic!("tag {}: unexpected {e}", c.tag),
        }
    }
    assert!(matches!(
        q.send(&p, &Message::new(&topic, b"late".to_vec()), 1),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(q.owed(), 0);
}

/// The broker's SYSTEM_BUSY (2): it sheds load when its queue waits too long (a loaded machine).
fn is_flow_control(e: &rmq::Error) -> bool {
    matches!(e, rmq::Error::Broker { code: 2, .. })
}
