//! Orderly POP (an orderly listener with `consumer.consume-mode=pop`) against a real 5.x broker:
//! messages of a sharding key arrive in send order, exactly once, with two consumers of the
//! group, and one queue never runs two listener calls at once; a suspended batch comes again in
//! the same order with its reconsume count raised; a message suspended max-reconsume-times
//! times goes to the DLQ and its queue moves on.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::keyed::{body, parse, send_keyed};
use common::{eventually, namesrv, unique};
use rmq::{Config, ConsumeResult, OrderlyResult, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(120);

fn producer() -> Producer {
    let p =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustPopOrderlyProducer")).unwrap())
            .unwrap();
    p.start().unwrap();
    p
}

fn config(group: &str, extra: &[(&str, &str)]) -> rmq::ConsumerConfig {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("poporderly")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.consume-mode", "pop").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c.consumer_config().unwrap()
}

#[derive(Default)]
struct Record {
    order: Vec<String>,
    running: HashMap<i32, usize>,
    most_at_once: usize,
    per_consumer: [usize; 2],
}

fn orderly_pop_consumer(
    group: &str,
    topic: &str,
    who: usize,
    rec: &Arc<Mutex<Record>>,
) -> PushConsumer {
    let c = PushConsumer::new(config(
        group,
        &[
            ("consumer.consume-thread-number", "4"),
            ("consumer.consume-message-batch-max-size", "3"),
        ],
    ))
    .unwrap();
    c.subscribe(topic, "*").unwrap();
    let rec = Arc::clone(rec);
    c.set_orderly_listener(move |msgs| {
        let q = msgs[0].queue_id;
        {
            let mut r = rec.lock().unwrap();
            let n = r.running.entry(q).or_default();
            *n += 1;
            let n = *n;
            r.most_at_once = r.most_at_once.max(n);
            r.order.extend(msgs.iter().map(|m| body(m)));
            r.per_consumer[who] += msgs.len();
        }
        std::thread::sleep(Duration::from_millis(2));
        *rec.lock().unwrap().running.get_mut(&q).unwrap() -= 1;
        OrderlyResult::Success
    })
    .unwrap();
    c.start().unwrap();
    c
}

#[test]
fn orderly_pop_delivers_each_key_in_send_order_exactly_once() {
    let topic = unique("RustPopOrderly");
    let group = unique("RustPopOrderlyGroup");
    let p = producer();
    let keys: Vec<String> = (0..6).map(|k| format!("order-{k}")).collect();
    const HALF: usize = 30;
    send_keyed(&p, &topic, &keys, 0, HALF);
    let rec: Arc<Mutex<Record>> = Arc::default();
    let a = orderly_pop_consumer(&group, &topic, 0, &rec);
    let b = orderly_pop_consumer(&group, &topic, 1, &rec);
    send_keyed(&p, &topic, &keys, HALF, 2 * HALF);
    let total = keys.len() * 2 * HALF;
    let done = eventually(WITHIN, || {
        (rec.lock().unwrap().order.len() >= total).then_some(())
    });
    // Anything late (a duplicate) would show in the order below.
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    let r = rec.lock().unwrap();
    assert!(done.is_some(), "consumed {} of {total}", r.order.len());
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for b in &r.order {
        let (k, i) = parse(b);
        per_key.entry(k).or_default().push(i);
    }
    let want: Vec<usize> = (0..2 * HALF).collect();
    for (k, got) in &per_key {
        assert_eq!(got, &want, "key {k} out of order or not exactly once");
    }
    assert_eq!(per_key.len(), keys.len());
    assert_eq!(
        r.most_at_once, 1,
        "one queue ran two listener calls at once"
    );
    assert!(
        r.per_consumer[0] > 0 && r.per_consumer[1] > 0,
        "the broker's assignment gave one consumer everything: {:?}",
        r.per_consumer
    );
}

/// Every call: (bodies, reconsume counts).
type Calls = Arc<Mutex<Vec<(Vec<String>, Vec<i32>)>>>;

#[test]
fn a_suspended_batch_comes_again_in_the_same_order() {
    let topic = unique("RustPopOrderlySuspend");
    let group = unique("RustPopOrderlySuspendGroup");
    let p = producer();
    let keys = vec!["k".to_string()];
    send_keyed(&p, &topic, &keys, 0, 12);
    let c = PushConsumer::new(config(
        &group,
        &[("consumer.consume-message-batch-max-size", "4")],
    ))
    .unwrap();
    c.subscribe(&topic, "*").unwrap();
    let calls: Calls = Arc::default();
    let seen = Arc::clone(&calls);
    c.set_orderly_listener(move |msgs| {
        let bodies: Vec<String> = msgs.iter().map(|m| body(m)).collect();
        let times: Vec<i32> = msgs.iter().map(|m| m.reconsume_times).collect();
        let suspend = bodies.iter().any(|b| b == "k:5") && times.iter().all(|t| *t == 0);
        seen.lock().unwrap().push((bodies, times));
        if suspend {
            OrderlyResult::Suspend {
                suspend: Some(Duration::from_millis(300)),
            }
        } else {
            OrderlyResult::Success
        }
    })
    .unwrap();
    c.start().unwrap();
    let done = eventually(WITHIN, || {
        let calls = calls.lock().unwrap();
        let consumed: usize = calls.iter().map(|(b, _)| b.len()).sum();
        (calls.iter().any(|(b, _)| b.contains(&"k:11".to_string())) && consumed >= 12).then_some(())
    });
    c.shutdown().unwrap();
    let calls = calls.lock().unwrap();
    assert!(done.is_some(), "calls {calls:?}");
    let at = calls
        .iter()
        .position(|(b, _)| b.contains(&"k:5".to_string()))
        .expect("k:5 delivered");
    let (suspended, times) = &calls[at];
    assert!(times.iter().all(|t| *t == 0), "{calls:?}");
    let (again, again_times) = &calls[at + 1];
    assert_eq!(
        again, suspended,
        "the suspended batch came again differently: {calls:?}"
    );
    assert!(again_times.iter().all(|t| *t == 1), "{calls:?}");
    // Consumed once each, in order: the calls before the suspend and from its repeat on.
    let consumed: Vec<usize> = calls[..at]
        .iter()
        .chain(calls[at + 1..].iter())
        .flat_map(|(b, _)| b.iter().map(|b| parse(b).1))
        .collect();
    assert_eq!(consumed, (0..12).collect::<Vec<_>>(), "{calls:?}");
}

#[test]
fn after_max_reconsume_times_an_orderly_popped_message_goes_to_the_dlq() {
    let topic = unique("RustPopOrderlyDlq");
    let group = unique("RustPopOrderlyDlqGroup");
    let p = producer();
    send_keyed(&p, &topic, &["k".to_string()], 0, 3);
    let c = PushConsumer::new(config(&group, &[("consumer.max-reconsume-times", "1")])).unwrap();
    c.subscribe(&topic, "*").unwrap();
    let calls: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let seen = Arc::clone(&calls);
    c.set_orderly_listener(move |msgs| {
        let mut s = seen.lock().unwrap();
        s.extend(msgs.iter().map(|m| (body(m), m.reconsume_times)));
        if msgs.iter().any(|m| body(m) == "k:1") {
            OrderlyResult::Suspend {
                suspend: Some(Duration::from_millis(100)),
            }
        } else {
            OrderlyResult::Success
        }
    })
    .unwrap();
    c.start().unwrap();
    let done = eventually(WITHIN, || {
        calls
            .lock()
            .unwrap()
            .iter()
            .any(|(b, _)| b == "k:2")
            .then_some(())
    });
    let got = calls.lock().unwrap().clone();
    assert!(done.is_some(), "the queue did not move on: {got:?}");
    // k:1 twice (then the DLQ), the others once, in order. (k:2's reconsume count is the
    // broker's count of its pops, which includes those of k:1's suspended batch.)
    let bodies: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["k:0", "k:1", "k:1", "k:2"], "{got:?}");
    assert_eq!((got[1].1, got[2].1), (0, 1), "{got:?}");
    // A pull-mode reader of the group's DLQ finds it there.
    let mut cfg = Config::new();
    cfg.set("name-server", &namesrv()).unwrap();
    cfg.set("consumer.group", &unique("RustPopOrderlyDlqReader"))
        .unwrap();
    cfg.set("instance-name", &unique("dlq")).unwrap();
    cfg.set("consumer.consume-from-where", "first").unwrap();
    let d = PushConsumer::new(cfg.consumer_config().unwrap()).unwrap();
    d.subscribe(&format!("%DLQ%{group}"), "*").unwrap();
    let dead: Arc<Mutex<HashSet<String>>> = Arc::default();
    let dd = Arc::clone(&dead);
    d.set_listener(move |msgs| {
        dd.lock().unwrap().extend(msgs.iter().map(|m| body(m)));
        ConsumeResult::Success
    })
    .unwrap();
    d.start().unwrap();
    let found = eventually(WITHIN, || {
        dead.lock().unwrap().contains("k:1").then_some(())
    });
    d.shutdown().unwrap();
    c.shutdown().unwrap();
    assert!(found.is_some(), "DLQ holds {:?}", dead.lock().unwrap());
}
