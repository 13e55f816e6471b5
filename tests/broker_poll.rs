//! The push consumer's poll mode against a real Apache RocketMQ broker: every message produced is
//! polled (sets compared) by two polling threads; per-message acknowledgement where the
//! reconsumed ones come back with reconsume times >= 1; batches not acknowledged at shutdown are
//! delivered again to the next consumer of the group; a poll with nothing to take returns
//! empty; shutdown wakes a waiting poll; misuse is a clear error.
mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, namesrv, unique};
use rmq::{Config, ConsumeResult, Error, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);

fn producer() -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), &unique("RustPollProducer")).unwrap())
        .unwrap();
    p.start().unwrap();
    p
}

fn send(p: &Producer, topic: &str, prefix: &str, n: usize) -> HashSet<String> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            p.send_blocking(&Message::new(topic, body.clone().into_bytes()))
                .unwrap();
            body
        })
        .collect()
}

fn polling_consumer(group: &str, topic: &str) -> PushConsumer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("poll")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    let c = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    c.subscribe(topic, "*").unwrap();
    c.set_poll_mode().unwrap();
    c.start().unwrap();
    c
}

fn body(m: &rmq::MessageExt) -> String {
    String::from_utf8_lossy(m.message.body()).into_owned()
}

#[test]
fn every_message_is_polled_by_two_threads_and_acknowledged() {
    let topic = unique("RustPollAll");
    let p = producer();
    let want = send(&p, &topic, "all", 200);
    let c = polling_consumer(&unique("RustPollAllGroup"), &topic);
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (c, seen, want) = (c.clone(), Arc::clone(&seen), want.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + WITHIN;
                let mut largest = 0;
                while Instant::now() < deadline && *seen.lock().unwrap() != want {
                    if let Some(mut b) = c.poll(16, POLL).unwrap() {
                        assert!(!b.is_empty() && b.len() <= 16);
                        largest = largest.max(b.len());
                        seen.lock()
                            .unwrap()
                            .extend(b.messages().iter().map(|m| body(m)));
                        b.ack().unwrap();
                    }
                }
                largest
            })
        })
        .collect();
    let largest = threads.into_iter().map(|t| t.join().unwrap()).max();
    assert_eq!(*seen.lock().unwrap(), want);
    assert!(
        largest > Some(1),
        "polls took more than one message at a time"
    );
    c.shutdown().unwrap();
}

#[test]
fn reconsumed_messages_come_back_with_reconsume_times() {
    let topic = unique("RustPollPartial");
    let p = producer();
    let want = send(&p, &topic, "part", 10);
    let c = polling_consumer(&unique("RustPollPartialGroup"), &topic);
    let mut consumed = HashSet::new();
    let mut refused = HashSet::new();
    let mut came_back = HashSet::new();
    let deadline = Instant::now() + WITHIN;
    while consumed != want && Instant::now() < deadline {
        let Some(mut b) = c.poll(32, POLL).unwrap() else {
            continue;
        };
        let results: Vec<ConsumeResult> = b
            .messages()
            .iter()
            .map(|m| {
                let body = body(m);
                let odd = body.ends_with(['1', '3', '5', '7', '9']);
                if m.reconsume_times == 0 && odd {
                    refused.insert(body);
                    ConsumeResult::ReconsumeLater { delay_level: 1 }
                } else {
                    if m.reconsume_times >= 1 {
                        came_back.insert(body.clone());
                    }
                    consumed.insert(body);
                    ConsumeResult::Success
                }
            })
            .collect();
        b.ack_each(&results).unwrap();
        assert!(
            matches!(b.ack(), Err(Error::InvalidState(_))),
            "a second acknowledgement is refused"
        );
    }
    assert_eq!(consumed, want);
    assert_eq!(refused.len(), 5);
    assert_eq!(came_back, refused, "each reconsumed message came back");
    c.shutdown().unwrap();
}

#[test]
fn batches_not_acknowledged_at_shutdown_are_delivered_again() {
    let topic = unique("RustPollUnacked");
    let group = unique("RustPollUnackedGroup");
    let p = producer();
    let want = send(&p, &topic, "held", 8);
    let first = polling_consumer(&group, &topic);
    let mut held = Vec::new();
    let mut got = HashSet::new();
    let deadline = Instant::now() + WITHIN;
    while got != want && Instant::now() < deadline {
        if let Some(b) = first.poll(32, POLL).unwrap() {
            got.extend(b.messages().iter().map(|m| body(m)));
            held.push(b);
        }
    }
    assert_eq!(got, want);
    first.shutdown().unwrap();
    for mut b in held {
        assert!(
            matches!(b.ack(), Err(Error::InvalidState(_))),
            "too late: the consumer is shut down"
        );
    }
    let second = polling_consumer(&group, &topic);
    let mut again = HashSet::new();
    let deadline = Instant::now() + WITHIN;
    while again != want && Instant::now() < deadline {
        if let Some(mut b) = second.poll(32, POLL).unwrap() {
            again.extend(b.messages().iter().map(|m| body(m)));
            b.ack().unwrap();
        }
    }
    assert_eq!(again, want, "everything unacknowledged came again");
    second.shutdown().unwrap();
}

#[test]
fn an_empty_poll_returns_none_and_shutdown_wakes_a_waiting_poll() {
    let topic = unique("RustPollEmpty");
    let p = producer();
    send(&p, &topic, "route", 1); // creates the topic
    let c = polling_consumer(&unique("RustPollEmptyGroup"), &topic);
    // Take the one message so the queue is empty.
    let mut b = eventually(WITHIN, || c.poll(8, POLL).unwrap()).expect("the message");
    b.ack().unwrap();
    let started = Instant::now();
    assert!(c.poll(8, Duration::from_millis(200)).unwrap().is_none());
    assert!(c.poll(8, Duration::ZERO).unwrap().is_none());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an empty poll returned within its timeout (failure bound only)"
    );
    let waiting = {
        let c = c.clone();
        std::thread::spawn(move || c.poll(8, Duration::MAX).map(|b| b.is_some()))
    };
    std::thread::sleep(Duration::from_millis(300));
    c.shutdown().unwrap();
    assert!(matches!(
        waiting.join().unwrap(),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.poll(8, Duration::MAX),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn misuse_of_poll_mode_is_a_clear_error() {
    let mut cfg = Config::new();
    cfg.set("name-server", &namesrv()).unwrap();
    cfg.set("consumer.group", &unique("RustPollMisuse"))
        .unwrap();
    let c = PushConsumer::new(cfg.consumer_config().unwrap()).unwrap();
    c.subscribe("RustPollMisuseTopic", "*").unwrap();
    c.set_poll_mode().unwrap();
    assert!(
        matches!(c.poll(1, Duration::ZERO), Err(Error::InvalidState(_))),
        "before start"
    );
    assert!(matches!(
        c.poll(0, Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    c.set_listener(|_| ConsumeResult::Success).unwrap();
    assert!(
        matches!(c.poll(1, Duration::ZERO), Err(Error::InvalidState(_))),
        "a listener replaced poll mode"
    );
    c.shutdown().unwrap();
    assert!(matches!(c.set_poll_mode(), Err(Error::InvalidState(_))));
}
