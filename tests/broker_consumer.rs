//! The push consumer against a real Apache RocketMQ broker: what was produced is what is consumed
//! (sets compared), with one to three consumers per group; retries and the DLQ; tag filters;
//! restarts from the committed offset; shutdown that leaves no thread.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{
    Config, ConsumeResult, Error, ExpressionType, Message, MessageQueue, Producer, ProducerConfig,
    PushConsumer,
};

const WITHIN: Duration = Duration::from_secs(90);

fn producer(group: &str) -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), group).unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn consumer_config(group: &str, instance: &str, extra: &[(&str, &str)]) -> rmq::ConsumerConfig {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", instance).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c.consumer_config().unwrap()
}

/// Sends `n` messages with bodies "<prefix>-<i>" and the given tag; returns the bodies.
fn send(p: &Producer, topic: &str, prefix: &str, n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            let mut m = Message::new(topic, body.clone().into_bytes());
            m.set_tags(tag).unwrap();
            p.send_blocking(&m).unwrap();
            body
        })
        .collect()
}

type Seen = Arc<Mutex<Vec<String>>>;

/// A started consumer that records every body it is given.
fn recording_consumer(
    group: &str,
    instance: &str,
    topic: &str,
    expression: &str,
    extra: &[(&str, &str)],
) -> (PushConsumer, Seen) {
    let c = PushConsumer::new(consumer_config(group, instance, extra)).unwrap();
    c.subscribe(topic, expression).unwrap();
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    c.set_listener(move |msgs| {
        let mut s = s.lock().unwrap();
        for m in msgs {
            s.push(String::from_utf8_lossy(m.message.body()).into_owned());
        }
        ConsumeResult::Success
    })
    .unwrap();
    c.start().unwrap();
    (c, seen)
}

fn set_of(v: &[String]) -> HashSet<String> {
    v.iter().cloned().collect()
}

fn consumed_by_group_of(consumers: usize) {
    let topic = unique(&format!("RustConsume{consumers}"));
    let group = unique("RustConsumeGroup");
    let p = producer(&unique("RustConsumeProducer"));
    let sent = send(&p, &topic, "m", 100, "TagA");
    let members: Vec<(PushConsumer, Seen)> = (0..consumers)
        .map(|i| recording_consumer(&group, &unique(&format!("c{i}")), &topic, "*", &[]))
        .collect();
    let ids: HashSet<String> = members
        .iter()
        .map(|(c, _)| c.client_id().unwrap())
        .collect();
    assert_eq!(ids.len(), consumers, "distinct client ids");
    let all = || {
        let mut got = HashSet::new();
        for (_, s) in &members {
            got.extend(set_of(&s.lock().unwrap()));
        }
        got
    };
    let want = set_of(&sent);
    let got = eventually(WITHIN, || (all() == want).then_some(()));
    assert!(got.is_some(), "consumed {} of {}", all().len(), want.len());
    // Every queue of the topic is owned by exactly one consumer once the group has settled.
    let settled = eventually(WITHIN, || {
        let mut owners: BTreeMap<MessageQueue, usize> = BTreeMap::new();
        for (c, _) in &members {
            for q in c.assigned_queues() {
                if *q.topic == *topic {
                    *owners.entry(q).or_default() += 1;
                }
            }
        }
        let every_consumer_has_some = consumers <= 4
            && members
                .iter()
                .all(|(c, _)| c.assigned_queues().iter().any(|q| *q.topic == *topic));
        (owners.len() == 4 && owners.values().all(|n| *n == 1) && every_consumer_has_some)
            .then_some(owners)
    });
    assert!(
        settled.is_some(),
        "queues not partitioned among the consumers"
    );
    for (c, _) in &members {
        c.shutdown().unwrap();
    }
}

#[test]
fn one_consumer_consumes_everything() {
    consumed_by_group_of(1);
}

#[test]
fn two_consumers_share_the_queues_and_consume_everything() {
    consumed_by_group_of(2);
}

#[test]
fn three_consumers_share_the_queues_and_consume_everything() {
    consumed_by_group_of(3);
}

#[test]
fn tag_filter_delivers_exactly_the_matching_messages() {
    let topic = unique("RustTags");
    let p = producer(&unique("RustTagsProducer"));
    // Unwanted messages first, on every queue: when the wanted ones have arrived, each queue
    // was read past the unwanted ones. "BB" has the same Java hash as "Aa", so the broker lets
    // it through and only the client-side check can drop it.
    let mut unwanted = send(&p, &topic, "c", 8, "TagC");
    unwanted.extend(send(&p, &topic, "bb", 8, "BB"));
    let mut wanted = send(&p, &topic, "a", 10, "TagA");
    wanted.extend(send(&p, &topic, "b", 10, "TagB"));
    wanted.extend(send(&p, &topic, "aa", 10, "Aa"));
    let (c, seen) = recording_consumer(
        &unique("RustTagsGroup"),
        &unique("tags"),
        &topic,
        "TagA || TagB || Aa",
        &[],
    );
    let want = set_of(&wanted);
    let got = eventually(WITHIN, || {
        let s = set_of(&seen.lock().unwrap());
        want.is_subset(&s).then_some(s)
    })
    .expect("all matching messages consumed");
    c.shutdown().unwrap();
    let got: HashSet<String> = set_of(&seen.lock().unwrap()).union(&got).cloned().collect();
    assert_eq!(got, want, "exactly the matching messages");
    assert!(unwanted.iter().all(|u| !got.contains(u)));
}

#[test]
fn sql92_filter_delivers_exactly_the_matching_messages() {
    let topic = unique("RustSql");
    let p = producer(&unique("RustSqlProducer"));
    let mut wanted = HashSet::new();
    for i in 0..40 {
        let body = format!("s-{i}");
        let mut m = Message::new(&topic, body.clone().into_bytes());
        m.put_user_property("n", &i.to_string()).unwrap();
        p.send_blocking(&m).unwrap();
        if i >= 30 {
            wanted.insert(body);
        }
    }
    let c = PushConsumer::new(consumer_config(
        &unique("RustSqlGroup"),
        &unique("sql"),
        &[],
    ))
    .unwrap();
    c.subscribe_with(&topic, "n >= 30", ExpressionType::Sql92)
        .unwrap();
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    c.set_listener(move |msgs| {
        for m in msgs {
            s.lock()
                .unwrap()
                .push(String::from_utf8_lossy(m.message.body()).into_owned());
        }
        ConsumeResult::Success
    })
    .unwrap();
    c.start().unwrap();
    eventually(WITHIN, || {
        wanted
            .is_subset(&set_of(&seen.lock().unwrap()))
            .then_some(())
    })
    .expect("all matching messages consumed");
    c.shutdown().unwrap();
    assert_eq!(set_of(&seen.lock().unwrap()), wanted);
}

#[test]
fn failing_messages_are_retried_then_reach_the_dlq() {
    let topic = unique("RustRetry");
    let group = unique("RustRetryGroup");
    let p = producer(&unique("RustRetryProducer"));
    let sent = set_of(&send(&p, &topic, "r", 3, "TagA"));
    // body -> reconsume times seen
    let attempts: Arc<Mutex<HashMap<String, Vec<i32>>>> = Arc::default();
    let c = PushConsumer::new(consumer_config(
        &group,
        &unique("retry"),
        &[("consumer.max-reconsume-times", "1")],
    ))
    .unwrap();
    c.subscribe(&topic, "*").unwrap();
    let a = Arc::clone(&attempts);
    c.set_listener(move |msgs| {
        for m in msgs {
            a.lock()
                .unwrap()
                .entry(String::from_utf8_lossy(m.message.body()).into_owned())
                .or_default()
                .push(m.reconsume_times);
        }
        // Level 1 is the broker's 1 s delay: the retry comes back quickly.
        ConsumeResult::ReconsumeLater { delay_level: 1 }
    })
    .unwrap();
    c.start().unwrap();
    eventually(WITHIN, || {
        let a = attempts.lock().unwrap();
        (a.len() == sent.len() && a.values().all(|v| v.contains(&0) && v.contains(&1)))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "each message delivered twice: {:?}",
            attempts.lock().unwrap()
        )
    });
    // The topic seen by the listener is the original one, not the retry topic.
    // After max-reconsume-times (1) the broker moves them to %DLQ%<group>.
    let dlq = format!("%DLQ%{group}");
    let (d, dead) = recording_consumer(&unique("RustDlqReader"), &unique("dlq"), &dlq, "*", &[]);
    eventually(WITHIN, || {
        (set_of(&dead.lock().unwrap()) == sent).then_some(())
    })
    .unwrap_or_else(|| panic!("DLQ holds {:?}", dead.lock().unwrap()));
    d.shutdown().unwrap();
    c.shutdown().unwrap();
    let a = attempts.lock().unwrap();
    assert!(
        a.values().all(|v| v.iter().all(|t| *t <= 1)),
        "no delivery after the DLQ: {a:?}"
    );
}

#[test]
fn a_restart_continues_from_the_committed_offset() {
    let topic = unique("RustRestart");
    let group = unique("RustRestartGroup");
    let p = producer(&unique("RustRestartProducer"));
    let first = set_of(&send(&p, &topic, "first", 40, "TagA"));
    let (c, seen) = recording_consumer(&group, &unique("r1"), &topic, "*", &[]);
    eventually(WITHIN, || {
        (set_of(&seen.lock().unwrap()) == first).then_some(())
    })
    .expect("first batch consumed");
    c.shutdown().unwrap();
    let second = set_of(&send(&p, &topic, "second", 40, "TagA"));
    let (c2, seen2) = recording_consumer(&group, &unique("r2"), &topic, "*", &[]);
    eventually(WITHIN, || {
        second
            .is_subset(&set_of(&seen2.lock().unwrap()))
            .then_some(())
    })
    .expect("second batch consumed");
    c2.shutdown().unwrap();
    let again = set_of(&seen2.lock().unwrap());
    assert!(
        again.is_disjoint(&first),
        "shutdown committed every consumed offset, so nothing of the first batch comes again"
    );
}

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn shutdown_leaves_no_consumer_thread_and_is_refused_inside_the_listener() {
    let topic = unique("RustShutdown");
    let p = producer(&unique("RustShutdownProducer"));
    let sent = set_of(&send(&p, &topic, "s", 20, "TagA"));
    let c = PushConsumer::new(consumer_config(
        &unique("RustShutdownGroup"),
        &unique("sd"),
        &[("consumer.consume-thread-number", "4")],
    ))
    .unwrap();
    c.subscribe(&topic, "*").unwrap();
    let slot: Arc<Mutex<Option<PushConsumer>>> = Arc::new(Mutex::new(Some(c.clone())));
    let refused: Arc<Mutex<Vec<bool>>> = Arc::default();
    let seen: Seen = Arc::default();
    let (s, r, sl) = (Arc::clone(&seen), Arc::clone(&refused), Arc::clone(&slot));
    c.set_listener(move |msgs| {
        let me = sl.lock().unwrap().clone();
        if let Some(me) = me {
            r.lock()
                .unwrap()
                .push(matches!(me.shutdown(), Err(Error::InvalidState(_))));
        }
        for m in msgs {
            s.lock()
                .unwrap()
                .push(String::from_utf8_lossy(m.message.body()).into_owned());
        }
        ConsumeResult::Success
    })
    .unwrap();
    c.start().unwrap();
    eventually(WITHIN, || {
        (set_of(&seen.lock().unwrap()) == sent).then_some(())
    })
    .expect("consumed");
    let prefix = c.thread_name_prefix();
    assert!(threads_named(&prefix) > 0, "listener threads {prefix}* ran");
    *slot.lock().unwrap() = None;
    c.shutdown().unwrap();
    c.shutdown().unwrap();
    assert!(refused.lock().unwrap().iter().all(|r| *r));
    assert!(!refused.lock().unwrap().is_empty());
    eventually(Duration::from_secs(10), || {
        (threads_named(&prefix) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("{} threads {prefix}* left", threads_named(&prefix)));
}

#[test]
fn a_long_poll_pull_does_not_hold_up_a_sync_send_on_the_same_connection() {
    let topic = unique("RustLongPoll");
    let instance = unique("lp");
    let p = {
        let mut c = Config::new();
        c.set("name-server", &namesrv()).unwrap();
        c.set("producer.group", &unique("RustLongPollProducer"))
            .unwrap();
        c.set("instance-name", &instance).unwrap();
        let p = Producer::new(c.producer_config().unwrap()).unwrap();
        p.start().unwrap();
        p
    };
    // The topic exists, with nothing more to read: the consumer's pulls are held by the broker.
    let first = send(&p, &topic, "x", 1, "TagA");
    let (c, seen) = recording_consumer(&unique("RustLongPollGroup"), &instance, &topic, "*", &[]);
    assert_eq!(
        c.client_id(),
        p.client_id(),
        "one client instance, one connection"
    );
    eventually(WITHIN, || (*seen.lock().unwrap() == first).then_some(())).expect("consumed");
    let inst = p.instance().unwrap();
    let addr = inst.master_addr("broker-a").expect("broker-a known");
    let conn = inst.remoting().existing(&addr).expect("connection open");
    for i in 0..5 {
        eventually(WITHIN, || (conn.pending_count() > 0).then_some(()))
            .expect("a pull is suspended by the broker");
        // The send's budget (3 s) is far below the 15 s suspension: it returns only because
        // the held pull does not block the connection.
        let mut m = Message::new(&topic, format!("during-{i}").into_bytes());
        m.set_tags("TagA").unwrap();
        p.send_blocking(&m).unwrap();
    }
    c.shutdown().unwrap();
}
