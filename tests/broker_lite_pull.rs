//! The lite pull consumer against a real Apache RocketMQ broker: every message sent is polled
//! (sets compared) and auto-commit at shutdown lets the next consumer start after them; a manual
//! commit is where a restart resumes (what was polled after it comes again); seek to an
//! offset, the beginning, the end and a timestamp; pause stops a queue and resume restarts it;
//! assign mode takes exactly the queues given; shutdown wakes a waiting poll; misuse is a clear
//! error.
mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{namesrv, unique};
use rmq::{
    Config, ConsumeResult, Error, LitePullConsumer, Message, MessageQueue, Producer, ProducerConfig,
};

const WITHIN: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(300);

fn producer() -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), &unique("RustLiteProducer")).unwrap())
        .unwrap();
    p.start().unwrap();
    p
}

/// Sends `n` messages "<prefix>-<i>" (to `mq` when given); returns the bodies.
fn send(
    p: &Producer,
    topic: &str,
    prefix: &str,
    n: usize,
    mq: Option<&MessageQueue>,
) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            let msg = Message::new(topic, body.clone().into_bytes());
            match mq {
                Some(q) => p.send_to_queue_blocking(&msg, q).unwrap(),
                None => p.send_blocking(&msg).unwrap(),
            };
            body
        })
        .collect()
}

fn consumer(group: &str, extra: &[(&str, &str)]) -> LitePullConsumer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("lite")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.pull-batch-size", "8").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    LitePullConsumer::new(c.consumer_config().unwrap()).unwrap()
}

fn body(m: &rmq::MessageExt) -> String {
    String::from_utf8_lossy(m.message.body()).into_owned()
}

/// (body, queue id, queue offset, store timestamp) of a polled message.
type Got = (String, i32, i64, i64);

fn entry(m: &rmq::MessageExt) -> Got {
    (body(m), m.queue_id, m.queue_offset, m.store_timestamp)
}

/// Polls until `want` messages came (or WITHIN passes).
fn poll_n(c: &LitePullConsumer, want: usize) -> Vec<Got> {
    let deadline = Instant::now() + WITHIN;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Some(b) = c.poll(POLL).unwrap() {
            assert!(!b.is_empty() && b.len() <= 8, "at most pull-batch-size");
            assert!(!b.needs_ack());
            got.extend(b.messages().iter().map(|m| entry(m)));
        }
    }
    got
}

fn bodies(v: &[Got]) -> HashSet<String> {
    v.iter().map(|m| m.0.clone()).collect()
}

/// Polls for `d` and returns whatever came (expected: nothing).
fn poll_for(c: &LitePullConsumer, d: Duration) -> Vec<Got> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        if let Some(b) = c.poll(POLL).unwrap() {
            got.extend(b.messages().iter().map(|m| entry(m)));
        }
    }
    got
}

/// A topic that exists (its first message, "create-0", created it), all its queues, and those
/// without that first message.
fn topic_with_queues(p: &Producer, prefix: &str) -> (String, Vec<MessageQueue>, Vec<MessageQueue>) {
    let topic = unique(prefix);
    let first = p
        .send_blocking(&Message::new(&topic, b"create-0".to_vec()))
        .unwrap();
    let c = consumer(&unique("RustLiteProbe"), &[]);
    c.start().unwrap();
    let qs = c.fetch_message_queues(&topic).unwrap();
    c.shutdown().unwrap();
    let free = qs.iter().filter(|q| **q != first.queue).cloned().collect();
    (topic, qs, free)
}

#[test]
fn every_message_is_polled_and_auto_commit_at_shutdown_moves_the_group_past_them() {
    let topic = unique("RustLiteAll");
    let group = unique("RustLiteAllGroup");
    let p = producer();
    let want: HashSet<String> = send(&p, &topic, "all", 100, None).into_iter().collect();
    let c = consumer(&group, &[]);
    c.subscribe(&topic, "*").unwrap();
    c.start().unwrap();
    assert!(
        !c.assignment().is_empty(),
        "the first rebalance ran in start"
    );
    let got = poll_n(&c, want.len());
    assert_eq!(got.len(), want.len(), "no duplicates");
    assert_eq!(bodies(&got), want);
    c.shutdown().unwrap();

    let later: HashSet<String> = send(&p, &topic, "later", 10, None).into_iter().collect();
    let c2 = consumer(&group, &[]);
    c2.subscribe(&topic, "*").unwrap();
    c2.start().unwrap();
    let got = poll_n(&c2, later.len());
    assert_eq!(
        bodies(&got),
        later,
        "the next consumer starts where shutdown committed"
    );
    c2.shutdown().unwrap();
}

#[test]
fn a_restart_resumes_at_the_manual_commit() {
    let p = producer();
    let (topic, qs, _) = topic_with_queues(&p, "RustLiteCommit");
    let group = unique("RustLiteCommitGroup");
    let first: HashSet<String> = send(&p, &topic, "first", 40, None).into_iter().collect();
    let c = consumer(&group, &[("consumer.auto-commit", "false")]);
    c.assign(&qs).unwrap();
    c.start().unwrap();
    let mut want = first.clone();
    want.insert("create-0".into());
    assert_eq!(bodies(&poll_n(&c, want.len())), want);
    c.commit().unwrap();
    let committed: i64 = qs
        .iter()
        .map(|q| c.committed(q).unwrap().unwrap_or(0))
        .sum();
    assert_eq!(
        committed, 41,
        "the commit stored every queue's consumed offset"
    );
    // Polled but not committed: a restart delivers these again.
    let second: HashSet<String> = send(&p, &topic, "second", 20, None).into_iter().collect();
    assert_eq!(bodies(&poll_n(&c, second.len())), second);
    c.shutdown().unwrap();

    let c2 = consumer(&group, &[("consumer.auto-commit", "false")]);
    c2.assign(&qs).unwrap();
    c2.start().unwrap();
    let again = poll_n(&c2, second.len());
    assert_eq!(bodies(&again), second, "resumed at the commit");
    assert!(poll_for(&c2, Duration::from_millis(600)).is_empty());
    // commit_offsets stores exactly what it is given.
    let q = &qs[0];
    c2.commit_offsets(&[(q.clone(), 1)]).unwrap();
    assert_eq!(c2.committed(q).unwrap(), Some(1));
    c2.shutdown().unwrap();
}

#[test]
fn seek_to_an_offset_the_beginning_the_end_and_a_timestamp() {
    let p = producer();
    let (topic, _, qs) = topic_with_queues(&p, "RustLiteSeek");
    let q = qs[0].clone();
    send(&p, &topic, "early", 5, Some(&q));
    std::thread::sleep(Duration::from_millis(1100));
    send(&p, &topic, "late", 5, Some(&q));
    let c = consumer(&unique("RustLiteSeekGroup"), &[]);
    c.assign(std::slice::from_ref(&q)).unwrap();
    c.start().unwrap();
    assert_eq!(c.assignment(), vec![q.clone()]);
    let all = poll_n(&c, 10);
    assert_eq!(all.len(), 10);
    let find = |b: &str| all.iter().find(|m| m.0 == b).unwrap().clone();
    let offset_of = |b: &str| find(b).2;
    let last = offset_of("late-4");
    assert_eq!(last - offset_of("early-0"), 9);

    c.seek(&q, offset_of("late-0")).unwrap();
    let got = poll_n(&c, 5);
    assert_eq!(
        got.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        ["late-0", "late-1", "late-2", "late-3", "late-4"],
        "in offset order from the seek"
    );

    c.seek_to_begin(&q).unwrap();
    let from_begin = poll_n(&c, all.len());
    assert_eq!(
        from_begin.first().map(|m| m.2),
        Some(all.iter().map(|m| m.2).min().unwrap())
    );
    assert_eq!(bodies(&from_begin), bodies(&all));

    c.seek_to_end(&q).unwrap();
    assert!(
        poll_for(&c, Duration::from_millis(600)).is_empty(),
        "nothing after the end"
    );
    send(&p, &topic, "after-end", 1, Some(&q));
    let got = poll_n(&c, 1);
    assert_eq!(
        got.iter().map(|m| (m.0.as_str(), m.2)).collect::<Vec<_>>(),
        [("after-end-0", last + 1)]
    );

    // The late messages were stored over a second after the early ones.
    let late_ts = find("late-0").3;
    assert!(late_ts - find("early-4").3 >= 1000);
    c.seek_to_timestamp(&q, late_ts).unwrap();
    let got = poll_n(&c, 1);
    assert_eq!(
        got[0].0, "late-0",
        "the first message stored at or after the time"
    );
    assert_eq!(
        c.offset_for_timestamp(&q, late_ts).unwrap(),
        offset_of("late-0")
    );

    // Out of range, or a queue this consumer does not own: refused.
    assert!(matches!(
        c.seek(&q, last + 100),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(c.seek(&q, -1), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.seek(&qs[1], 0), Err(Error::InvalidArgument(_))));
    c.shutdown().unwrap();
}

#[test]
fn pause_stops_a_queue_and_resume_restarts_it() {
    let p = producer();
    let (topic, _, qs) = topic_with_queues(&p, "RustLitePause");
    let (q0, q1) = (qs[0].clone(), qs[1].clone());
    let on0: HashSet<String> = send(&p, &topic, "q0", 6, Some(&q0)).into_iter().collect();
    let on1: HashSet<String> = send(&p, &topic, "q1", 6, Some(&q1)).into_iter().collect();
    let c = consumer(&unique("RustLitePauseGroup"), &[]);
    c.assign(&[q0.clone(), q1.clone()]).unwrap();
    c.pause(std::slice::from_ref(&q0));
    assert!(c.is_paused(&q0) && !c.is_paused(&q1));
    c.start().unwrap();
    let got = poll_n(&c, 6);
    assert_eq!(bodies(&got), on1, "nothing of the paused queue");
    let more = poll_for(&c, Duration::from_millis(1500));
    assert!(more.is_empty(), "paused: {more:?}");

    c.resume(std::slice::from_ref(&q0));
    let got0 = poll_n(&c, 6);
    assert_eq!(
        bodies(&got0),
        on0,
        "resume delivers the paused queue from its consumed offset"
    );

    // Pausing a running queue drops what it pulled: the next messages wait for resume.
    c.pause(std::slice::from_ref(&q1));
    let later1: HashSet<String> = send(&p, &topic, "q1-later", 3, Some(&q1))
        .into_iter()
        .collect();
    assert!(poll_for(&c, Duration::from_millis(1500)).is_empty());
    c.resume(std::slice::from_ref(&q1));
    assert_eq!(bodies(&poll_n(&c, 3)), later1);
    c.shutdown().unwrap();
}

#[test]
fn assign_takes_exactly_the_given_queues() {
    let p = producer();
    let (topic, _, qs) = topic_with_queues(&p, "RustLiteAssign");
    assert!(qs.len() >= 2, "{qs:?}");
    assert!(qs.iter().all(|q| *q.topic == *topic));
    let sent: Vec<(String, i32)> = qs
        .iter()
        .flat_map(|q| {
            send(&p, &topic, &format!("on{}", q.queue_id), 4, Some(q))
                .into_iter()
                .map(move |b| (b, q.queue_id))
        })
        .collect();
    let mine: Vec<MessageQueue> = qs.iter().step_by(2).cloned().collect();
    let ids: BTreeSet<i32> = mine.iter().map(|q| q.queue_id).collect();
    let want: HashSet<String> = sent
        .iter()
        .filter(|(_, id)| ids.contains(id))
        .map(|(b, _)| b.clone())
        .collect();
    let c = consumer(&unique("RustLiteAssignGroup"), &[]);
    c.start().unwrap();
    assert!(c.assignment().is_empty());
    c.assign(&mine).unwrap();
    assert_eq!(c.assignment(), mine);
    let got = poll_n(&c, want.len());
    assert_eq!(got.len(), want.len());
    assert_eq!(bodies(&got), want);
    assert!(got.iter().all(|m| ids.contains(&m.1)));
    assert!(poll_for(&c, Duration::from_millis(600)).is_empty());
    // A new assignment replaces the old one.
    c.assign(&qs[1..2]).unwrap();
    assert_eq!(c.assignment(), qs[1..2].to_vec());
    c.shutdown().unwrap();
}

#[test]
fn shutdown_wakes_a_waiting_poll_and_misuse_is_refused() {
    let topic = unique("RustLiteMisuse");
    let c = consumer(&unique("RustLiteMisuseGroup"), &[]);
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.fetch_message_queues(&topic),
        Err(Error::InvalidState(_))
    ));
    c.subscribe(&topic, "*").unwrap();
    let q = MessageQueue {
        topic: topic.as_str().into(),
        broker_name: "broker-a".into(),
        queue_id: 0,
    };
    assert!(matches!(
        c.assign(std::slice::from_ref(&q)),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(c.assign(&[]), Err(Error::InvalidArgument(_))));
    c.start().unwrap();
    assert!(matches!(
        c.subscribe(&topic, "*"),
        Err(Error::InvalidState(_))
    ));
    let waiter = {
        let c = c.clone();
        std::thread::spawn(move || c.poll(Duration::MAX))
    };
    std::thread::sleep(Duration::from_millis(300));
    c.shutdown().unwrap();
    assert!(matches!(
        waiter.join().unwrap(),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.poll(Duration::ZERO),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(c.start(), Err(Error::InvalidState(_))));
    c.shutdown().unwrap();
}

#[test]
fn a_lite_pull_batch_needs_no_ack_and_refuses_reconsume() {
    let topic = unique("RustLiteBatch");
    let p = producer();
    send(&p, &topic, "b", 3, None);
    let c = consumer(&unique("RustLiteBatchGroup"), &[]);
    c.subscribe(&topic, "*").unwrap();
    c.start().unwrap();
    let deadline = Instant::now() + WITHIN;
    let mut b = loop {
        if let Some(b) = c.poll(POLL).unwrap() {
            break b;
        }
        assert!(Instant::now() < deadline, "nothing polled");
    };
    let later = vec![ConsumeResult::ReconsumeLater { delay_level: 1 }; b.len()];
    assert!(matches!(b.ack_each(&later), Err(Error::InvalidArgument(_))));
    b.ack().unwrap();
    assert!(matches!(b.ack(), Err(Error::InvalidState(_))));
    c.shutdown().unwrap();
}
