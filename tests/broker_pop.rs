//! The push consumer in POP mode (`consumer.consume-mode=pop`) against a real 5.x broker: the
//! broker assigns the queues, two consumers of a group consume every message once (a second
//! delivery only as a re-delivery, with a higher reconsume count), a message not acked within
//! its invisible time comes again, and "reconsume later" brings it back with its count raised;
//! in poll mode an acked batch is acked at the broker and one dropped unanswered comes again.
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, namesrv, unique};
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(90);

fn producer() -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), &unique("RustPopProducer")).unwrap())
        .unwrap();
    p.start().unwrap();
    p
}

fn send(p: &Producer, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            p.send_blocking(&Message::new(topic, body.clone().into_bytes()))
                .unwrap();
            body
        })
        .collect()
}

fn pop_consumer(group: &str, topic: &str, extra: &[(&str, &str)]) -> PushConsumer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("pop")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.consume-mode", "pop").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let c = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    c.subscribe(topic, "*").unwrap();
    c
}

/// (body, reconsume count) of every delivery.
type Deliveries = Arc<Mutex<Vec<(String, i32)>>>;

fn recording(c: &PushConsumer) -> Deliveries {
    let seen: Deliveries = Arc::default();
    let s = Arc::clone(&seen);
    c.set_listener(move |msgs| {
        let mut s = s.lock().unwrap();
        for m in msgs {
            s.push((
                String::from_utf8_lossy(m.message.body()).into_owned(),
                m.reconsume_times,
            ));
        }
        ConsumeResult::Success
    })
    .unwrap();
    seen
}

#[test]
fn two_pop_consumers_consume_every_message_once() {
    let topic = unique("RustPop");
    let group = unique("RustPopGroup");
    let p = producer();
    let mut sent = send(&p, &topic, "before", 40);
    let a = pop_consumer(&group, &topic, &[]);
    let b = pop_consumer(&group, &topic, &[]);
    let (seen_a, seen_b) = (recording(&a), recording(&b));
    a.start().unwrap();
    b.start().unwrap();
    // The broker shares the queues between the two (no client rebalance).
    let settled = eventually(WITHIN, || {
        let (qa, qb) = (a.assigned_queues(), b.assigned_queues());
        let both: HashSet<_> = qa.iter().chain(qb.iter()).collect();
        (!qa.is_empty() && !qb.is_empty() && both.len() == qa.len() + qb.len()).then_some(())
    });
    assert!(
        settled.is_some(),
        "assignments {:?} / {:?}",
        a.assigned_queues(),
        b.assigned_queues()
    );
    sent.extend(send(&p, &topic, "after", 60));
    let want: HashSet<String> = sent.iter().cloned().collect();
    let all = || {
        let mut v = seen_a.lock().unwrap().clone();
        v.extend(seen_b.lock().unwrap().iter().cloned());
        v
    };
    let got = eventually(WITHIN, || {
        let bodies: HashSet<String> = all().into_iter().map(|(b, _)| b).collect();
        (bodies == want).then_some(())
    });
    let deliveries = all();
    assert!(
        got.is_some(),
        "consumed {} distinct of {}",
        deliveries
            .iter()
            .map(|d| &d.0)
            .collect::<HashSet<_>>()
            .len(),
        want.len()
    );
    // A message delivered twice must be a re-delivery, which raises its reconsume count.
    let mut count: HashMap<&(String, i32), usize> = HashMap::new();
    for d in &deliveries {
        *count.entry(d).or_default() += 1;
    }
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dup.is_empty(),
        "delivered twice with the same count: {dup:?}"
    );
    assert!(!seen_a.lock().unwrap().is_empty(), "a consumed nothing");
    assert!(!seen_b.lock().unwrap().is_empty(), "b consumed nothing");
    a.shutdown().unwrap();
    b.shutdown().unwrap();
}

#[test]
fn a_message_not_acked_comes_again_after_its_invisible_time() {
    let topic = unique("RustPopInvisible");
    let group = unique("RustPopInvisibleGroup");
    let p = producer();
    send(&p, &topic, "warmup", 1);
    let c = pop_consumer(
        &group,
        &topic,
        &[("consumer.pop-invisible-time-millis", "2000")],
    );
    // The first delivery holds its listener call until the second delivery arrives, so it is
    // not answered within the invisible time.
    type State = (Vec<(String, i32, Instant)>, bool);
    let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
    let s = Arc::clone(&state);
    c.set_listener(move |msgs| {
        let (lock, cv) = &*s;
        for m in msgs {
            let body = String::from_utf8_lossy(m.message.body()).into_owned();
            let mut st = lock.lock().unwrap();
            let first = !st.0.iter().any(|(b, _, _)| *b == body);
            st.0.push((body.clone(), m.reconsume_times, Instant::now()));
            cv.notify_all();
            if body == "slow-0" && first {
                let deadline = Instant::now() + WITHIN;
                while st.0.iter().filter(|(b, _, _)| *b == body).nth(1).is_none()
                    && Instant::now() < deadline
                {
                    st = cv.wait_timeout(st, Duration::from_millis(200)).unwrap().0;
                }
                st.1 = true;
            }
        }
        ConsumeResult::Success
    })
    .unwrap();
    c.start().unwrap();
    send(&p, &topic, "slow", 1);
    let again = eventually(WITHIN, || {
        let st = state.0.lock().unwrap();
        let d: Vec<_> =
            st.0.iter()
                .filter(|(b, _, _)| b == "slow-0")
                .cloned()
                .collect();
        (d.len() >= 2).then_some(d)
    });
    let d = again.expect("the message that was not acked did not come again");
    assert_eq!(d[0].1, 0);
    assert_eq!(d[1].1, 1, "a re-delivery counts one more consumption");
    assert!(
        d[1].2.duration_since(d[0].2) >= Duration::from_millis(1500),
        "came again before its invisible time: {:?}",
        d[1].2.duration_since(d[0].2)
    );
    c.shutdown().unwrap();
}

#[test]
fn reconsume_later_brings_the_message_back_with_its_count_raised() {
    let topic = unique("RustPopLater");
    let group = unique("RustPopLaterGroup");
    let p = producer();
    send(&p, &topic, "warmup", 1);
    let c = pop_consumer(&group, &topic, &[]);
    let seen: Arc<Mutex<Vec<(String, i32, String)>>> = Arc::default();
    let s = Arc::clone(&seen);
    c.set_listener(move |msgs| {
        let mut s = s.lock().unwrap();
        let mut result = ConsumeResult::Success;
        for m in msgs {
            let body = String::from_utf8_lossy(m.message.body()).into_owned();
            if body == "later-0" && m.reconsume_times == 0 {
                result = ConsumeResult::ReconsumeLater { delay_level: 1 };
            }
            s.push((body, m.reconsume_times, m.msg_id().to_string()));
        }
        result
    })
    .unwrap();
    c.start().unwrap();
    send(&p, &topic, "later", 1);
    let back = eventually(WITHIN, || {
        let s = seen.lock().unwrap();
        let d: Vec<_> = s
            .iter()
            .filter(|(b, _, _)| b == "later-0")
            .cloned()
            .collect();
        (d.len() >= 2).then_some(d)
    })
    .expect("the message did not come back after reconsume later");
    assert_eq!(back[0].1, 0);
    assert_eq!(back[1].1, 1);
    assert_eq!(back[0].2, back[1].2, "the same message id");
    c.shutdown().unwrap();
}

#[test]
fn poll_mode_acks_popped_batches_and_a_dropped_one_comes_again() {
    let topic = unique("RustPopPoll");
    let group = unique("RustPopPollGroup");
    let p = producer();
    let sent: HashSet<String> = send(&p, &topic, "poll", 20).into_iter().collect();
    let c = pop_consumer(
        &group,
        &topic,
        &[("consumer.pop-invisible-time-millis", "2000")],
    );
    c.set_poll_mode().unwrap();
    c.start().unwrap();
    // The first batch is dropped unanswered: its messages come again after their invisible
    // time, with the same ids and their count raised.
    let first =
        eventually(WITHIN, || c.poll(5, Duration::from_secs(1)).unwrap()).expect("nothing polled");
    let dropped: HashMap<String, i32> = first
        .messages()
        .iter()
        .map(|m| (m.msg_id().to_string(), m.reconsume_times))
        .collect();
    drop(first);
    // The rest is acked as it comes; each body is acked once.
    let mut acked: HashMap<String, (String, i32)> = HashMap::new();
    let mut twice = Vec::new();
    let done = eventually(WITHIN, || {
        if let Some(mut b) = c.poll(32, Duration::from_secs(1)).unwrap() {
            for m in b.messages() {
                let body = String::from_utf8_lossy(m.message.body()).into_owned();
                let d = (m.msg_id().to_string(), m.reconsume_times);
                if let Some(old) = acked.insert(body.clone(), d) {
                    twice.push((body, old));
                }
            }
            b.ack().unwrap();
        }
        let bodies: HashSet<String> = acked.keys().cloned().collect();
        let again = dropped
            .keys()
            .all(|id| acked.values().any(|(i, _)| i == id));
        (bodies == sent && again).then_some(())
    });
    c.shutdown().unwrap();
    assert!(done.is_some(), "acked {} of {}", acked.len(), sent.len());
    assert!(twice.is_empty(), "acked twice: {twice:?}");
    for (id, times) in &dropped {
        let (_, again) = acked.values().find(|(i, _)| i == id).unwrap();
        assert_eq!(*again, times + 1, "{id}");
    }
}

#[test]
fn pop_mode_refuses_bad_values() {
    let mut cfg = Config::new();
    assert!(cfg.set("consumer.consume-mode", "push").is_err());
    assert!(cfg.set("consumer.pop-invisible-time-millis", "10").is_err());
}

#[test]
fn after_max_reconsume_times_a_popped_message_goes_to_the_dlq() {
    let topic = unique("RustPopDlq");
    let group = unique("RustPopDlqGroup");
    let p = producer();
    let sent: HashSet<String> = send(&p, &topic, "dead", 3).into_iter().collect();
    let c = pop_consumer(&group, &topic, &[("consumer.max-reconsume-times", "1")]);
    let attempts: Arc<Mutex<HashMap<String, Vec<i32>>>> = Arc::default();
    let a = Arc::clone(&attempts);
    c.set_listener(move |msgs| {
        for m in msgs {
            a.lock()
                .unwrap()
                .entry(String::from_utf8_lossy(m.message.body()).into_owned())
                .or_default()
                .push(m.reconsume_times);
        }
        ConsumeResult::ReconsumeLater { delay_level: 1 }
    })
    .unwrap();
    c.start().unwrap();
    // A pull-mode reader of the group's DLQ.
    let mut cfg = Config::new();
    cfg.set("name-server", &namesrv()).unwrap();
    cfg.set("consumer.group", &unique("RustPopDlqReader"))
        .unwrap();
    cfg.set("instance-name", &unique("dlq")).unwrap();
    cfg.set("consumer.consume-from-where", "first").unwrap();
    let d = PushConsumer::new(cfg.consumer_config().unwrap()).unwrap();
    d.subscribe(&format!("%DLQ%{group}"), "*").unwrap();
    let dead = recording(&d);
    let dead_bodies = || -> HashSet<String> {
        dead.lock()
            .unwrap()
            .iter()
            .map(|(b, _)| b.clone())
            .collect()
    };
    // The DLQ topic exists once the first message is moved there; start the reader then.
    let moved = eventually(WITHIN, || {
        let a = attempts.lock().unwrap();
        (a.len() == sent.len() && a.values().all(|v| v.contains(&1))).then_some(())
    });
    assert!(moved.is_some(), "attempts {:?}", attempts.lock().unwrap());
    d.start().unwrap();
    let all = eventually(WITHIN, || (dead_bodies() == sent).then_some(()));
    assert!(all.is_some(), "DLQ holds {:?}", dead_bodies());
    d.shutdown().unwrap();
    c.shutdown().unwrap();
    let a = attempts.lock().unwrap();
    assert!(
        a.values().all(|v| v.iter().all(|t| *t <= 1)),
        "no delivery after the DLQ: {a:?}"
    );
}
