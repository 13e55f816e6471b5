//! Orderly consumption against a real Apache RocketMQ broker: messages of a sharding key arrive
//! in send order, exactly once, across a rebalance to a second consumer; one queue never runs
//! two listener calls at once; a suspended batch comes again, in order, after the configured
//! time; a message suspended max-reconsume-times times goes to the DLQ and the queue moves on;
//! the broker holds the queues' locks while they are owned and releases them at shutdown.
mod common;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::keyed::{body, parse, send_keyed};
use common::{eventually, namesrv, unique};
use rmq::remoting::command::RemotingCommand;
use rmq::{
    Config, ConsumeResult, MessageQueue, OrderlyResult, Producer, ProducerConfig, PushConsumer,
};

const WITHIN: Duration = Duration::from_secs(120);

fn producer() -> Producer {
    let p = Producer::new(ProducerConfig::new(&namesrv(), &unique("RustOrderlyProducer")).unwrap())
        .unwrap();
    p.start().unwrap();
    p
}

fn config(group: &str, extra: &[(&str, &str)]) -> rmq::ConsumerConfig {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("orderly")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c.consumer_config().unwrap()
}

#[derive(Default)]
struct Record {
    /// Bodies in the order the listeners were called, over both consumers.
    order: Vec<String>,
    /// Which consumers consumed each key.
    consumers_of: BTreeMap<String, HashSet<usize>>,
    /// Listener calls running per queue, and the most ever seen at once.
    running: HashMap<(String, i32), usize>,
    most_at_once: usize,
    per_consumer: [usize; 2],
    /// Messages consumed when the second consumer's first call came.
    handover_at: usize,
}

fn orderly_consumer(
    group: &str,
    topic: &str,
    who: usize,
    rec: &Arc<Mutex<Record>>,
) -> PushConsumer {
    let c = PushConsumer::new(config(
        group,
        &[
            ("consumer.rebalance-interval", "2000"),
            ("consumer.consume-thread-number", "4"),
        ],
    ))
    .unwrap();
    c.subscribe(topic, "*").unwrap();
    let rec = Arc::clone(rec);
    c.set_orderly_listener(move |msgs| {
        let q = (msgs[0].broker_name.to_string(), msgs[0].queue_id);
        {
            let mut r = rec.lock().unwrap();
            let n = r.running.entry(q.clone()).or_default();
            *n += 1;
            let n = *n;
            r.most_at_once = r.most_at_once.max(n);
            for m in msgs {
                let b = body(m);
                r.consumers_of.entry(parse(&b).0).or_default().insert(who);
                r.order.push(b);
            }
            if who == 1 && r.per_consumer[1] == 0 {
                r.handover_at = r.order.len();
            }
            r.per_consumer[who] += msgs.len();
        }
        // Slow enough that the second consumer joins while the first is busy.
        std::thread::sleep(Duration::from_millis(5));
        *rec.lock().unwrap().running.get_mut(&q).unwrap() -= 1;
        OrderlyResult::Success
    })
    .unwrap();
    c.start().unwrap();
    c
}

#[test]
fn keys_arrive_in_send_order_exactly_once_across_a_rebalance() {
    let topic = unique("RustOrderly");
    let group = unique("RustOrderlyGroup");
    let p = producer();
    let keys: Vec<String> = (0..8).map(|k| format!("order-{k}")).collect();
    const HALF: usize = 60;
    send_keyed(&p, &topic, &keys, 0, HALF);
    let rec: Arc<Mutex<Record>> = Arc::default();
    let first = orderly_consumer(&group, &topic, 0, &rec);
    eventually(WITHIN, || {
        (rec.lock().unwrap().order.len() >= 20).then_some(())
    })
    .expect("the first consumer consumes");
    // The second consumer joins mid-stream: the group rebalances while messages flow.
    let second = orderly_consumer(&group, &topic, 1, &rec);
    eventually(WITHIN, || {
        let mine = |c: &PushConsumer| {
            c.assigned_queues()
                .iter()
                .filter(|q| *q.topic == *topic)
                .count()
        };
        (mine(&first) == 2 && mine(&second) == 2).then_some(())
    })
    .expect("the two consumers share the four queues");
    send_keyed(&p, &topic, &keys, HALF, 2 * HALF);
    let total = keys.len() * 2 * HALF;
    eventually(WITHIN, || {
        (rec.lock().unwrap().order.len() >= total).then_some(())
    })
    .unwrap_or_else(|| panic!("consumed {} of {total}", rec.lock().unwrap().order.len()));
    first.shutdown().unwrap();
    second.shutdown().unwrap();
    p.shutdown();

    let r = rec.lock().unwrap();
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for b in &r.order {
        let (k, i) = parse(b);
        per_key.entry(k).or_default().push(i);
    }
    let want: Vec<usize> = (0..2 * HALF).collect();
    for k in &keys {
        assert_eq!(per_key.get(k), Some(&want), "{k}: in send order, each once");
    }
    assert_eq!(r.order.len(), total, "nothing delivered twice");
    assert_eq!(r.most_at_once, 1, "one listener call per queue at a time");
    assert!(
        r.per_consumer[0] > 0 && r.per_consumer[1] > 0,
        "both consumers consumed: {:?}",
        r.per_consumer
    );
    assert!(
        r.consumers_of.values().any(|c| c.len() == 2),
        "a queue moved from one consumer to the other: {:?}",
        r.consumers_of
    );
    eprintln!(
        "consumed by the first / second consumer: {:?}; handed over at {} of {total}",
        r.per_consumer, r.handover_at
    );
}

/// (topic, group) of a single-key stream of `n` messages "k:<i>", all on one queue.
fn one_key_stream(p: &Producer, n: usize) -> String {
    let topic = unique("RustOrderlyOne");
    send_keyed(p, &topic, &["k".to_string()], 0, n);
    topic
}

#[test]
fn a_suspended_batch_comes_again_in_order_after_the_configured_time() {
    let p = producer();
    let topic = one_key_stream(&p, 5);
    let seen: Arc<Mutex<Vec<(String, i32, Instant)>>> = Arc::default();
    let c = PushConsumer::new(config(
        &unique("RustOrderlySuspend"),
        &[("consumer.suspend-current-queue-time-millis", "300")],
    ))
    .unwrap();
    c.subscribe(&topic, "*").unwrap();
    let s = Arc::clone(&seen);
    c.set_orderly_listener(move |msgs| {
        let mut s = s.lock().unwrap();
        let b = body(&msgs[0]);
        let first_time = !s.iter().any(|(x, _, _)| *x == b);
        s.push((b.clone(), msgs[0].reconsume_times, Instant::now()));
        if b == "k:2" && first_time {
            OrderlyResult::Suspend { suspend: None }
        } else {
            OrderlyResult::Success
        }
    })
    .unwrap();
    c.start().unwrap();
    eventually(WITHIN, || (seen.lock().unwrap().len() >= 6).then_some(())).expect("all delivered");
    c.shutdown().unwrap();
    p.shutdown();
    let s = seen.lock().unwrap();
    let order: Vec<(&str, i32)> = s.iter().map(|(b, t, _)| (b.as_str(), *t)).collect();
    assert_eq!(
        order,
        vec![
            ("k:0", 0),
            ("k:1", 0),
            ("k:2", 0),
            ("k:2", 1),
            ("k:3", 0),
            ("k:4", 0)
        ]
    );
    let waited = s[3].2.duration_since(s[2].2);
    assert!(
        waited >= Duration::from_millis(300),
        "suspended only {waited:?}"
    );
}

#[test]
fn a_message_suspended_max_reconsume_times_goes_to_the_dlq_and_the_queue_moves_on() {
    let p = producer();
    let topic = one_key_stream(&p, 3);
    let group = unique("RustOrderlyDlq");
    let seen: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let c = PushConsumer::new(config(
        &group,
        &[
            ("consumer.max-reconsume-times", "2"),
            ("consumer.suspend-current-queue-time-millis", "10"),
        ],
    ))
    .unwrap();
    c.subscribe(&topic, "*").unwrap();
    let s = Arc::clone(&seen);
    c.set_orderly_listener(move |msgs| {
        let b = body(&msgs[0]);
        s.lock().unwrap().push((b.clone(), msgs[0].reconsume_times));
        if b == "k:1" {
            OrderlyResult::Suspend { suspend: None }
        } else {
            OrderlyResult::Success
        }
    })
    .unwrap();
    c.start().unwrap();
    eventually(WITHIN, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(b, _)| b == "k:2")
            .then_some(())
    })
    .expect("the queue moved on past the dead letter");
    // The dead letter, read back from %DLQ%<group> by a plain consumer.
    let dead: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = PushConsumer::new(config(&unique("RustOrderlyDlqReader"), &[])).unwrap();
    reader.subscribe(&format!("%DLQ%{group}"), "*").unwrap();
    let d = Arc::clone(&dead);
    reader
        .set_listener(move |msgs| {
            d.lock().unwrap().extend(msgs.iter().map(|m| body(m)));
            ConsumeResult::Success
        })
        .unwrap();
    reader.start().unwrap();
    eventually(WITHIN, || (!dead.lock().unwrap().is_empty()).then_some(()))
        .expect("the message reaches the DLQ");
    reader.shutdown().unwrap();
    c.shutdown().unwrap();
    p.shutdown();
    assert_eq!(*dead.lock().unwrap(), vec!["k:1".to_string()]);
    let s = seen.lock().unwrap();
    let order: Vec<(&str, i32)> = s.iter().map(|(b, t)| (b.as_str(), *t)).collect();
    assert_eq!(
        order,
        vec![("k:0", 0), ("k:1", 0), ("k:1", 1), ("k:1", 2), ("k:2", 0)],
        "delivered max-reconsume-times + 1 times, then the next message"
    );
}

/// LOCK_BATCH_MQ for `mqs` as another client; returns how many the broker granted it.
fn lock_as_stranger(p: &Producer, group: &str, mqs: &[MessageQueue], code: i32) -> usize {
    let instance = p.instance().unwrap();
    let addr = instance.master_addr(&mqs[0].broker_name).unwrap();
    let set: Vec<serde_json::Value> = mqs
        .iter()
        .map(|q| serde_json::json!({"topic": &*q.topic, "brokerName": &*q.broker_name, "queueId": q.queue_id}))
        .collect();
    let body = serde_json::json!({"consumerGroup": group, "clientId": "10.0.0.1@stranger",
        "onlyThisBroker": false, "mqSet": set});
    let req = RemotingCommand::request(code, Vec::<(Cow<'static, str>, String)>::new())
        .with_body(serde_json::to_vec(&body).unwrap().into());
    let resp = rmq::runtime::handle()
        .block_on(
            instance
                .remoting()
                .invoke(&addr, &req, Instant::now() + Duration::from_secs(3)),
        )
        .unwrap();
    assert_eq!(resp.code, 0, "{}", resp.remark_str());
    if code != 41 {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    v["lockOKMQSet"].as_array().map_or(0, Vec::len)
}

#[test]
fn the_broker_holds_the_locks_while_owned_and_releases_them_at_shutdown() {
    let p = producer();
    let topic = one_key_stream(&p, 1);
    let group = unique("RustOrderlyLocks");
    let c = PushConsumer::new(config(&group, &[])).unwrap();
    c.subscribe(&topic, "*").unwrap();
    c.set_orderly_listener(|_| OrderlyResult::Success).unwrap();
    c.start().unwrap();
    let owned: Vec<MessageQueue> = eventually(WITHIN, || {
        let qs: Vec<MessageQueue> = c
            .assigned_queues()
            .into_iter()
            .filter(|q| *q.topic == *topic)
            .collect();
        (qs.len() == 4).then_some(qs)
    })
    .expect("the consumer owns the topic's queues");
    assert_eq!(
        lock_as_stranger(&p, &group, &owned, 41),
        0,
        "held by the consumer"
    );
    c.shutdown().unwrap();
    assert_eq!(
        lock_as_stranger(&p, &group, &owned, 41),
        4,
        "released at shutdown"
    );
    lock_as_stranger(&p, &group, &owned, 42);
    p.shutdown();
    let distinct: HashSet<i32> = owned.iter().map(|q| q.queue_id).collect();
    assert_eq!(distinct.len(), 4);
}
