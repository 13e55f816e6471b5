//! Message trace and metrics against a real broker: with client.trace-enabled, sends and
//! listener calls leave Pub, SubBefore and SubAfter records (the Java client's format) in the
//! trace topic, keyed by message id, which mqadmin queryMsgTraceById reads; the metrics of a run
//! equal its own counts.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(60);

fn config(extra: &[(&str, &str)]) -> Config {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

fn traced_producer(group: &str, trace_topic: Option<&str>) -> Producer {
    let mut c = config(&[("producer.group", group), ("client.trace-enabled", "true")]);
    if let Some(t) = trace_topic {
        c.set("client.trace-topic", t).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// A consumer of `topic` from the first message that counts what it is given.
fn counting_consumer(
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> (PushConsumer, Arc<AtomicUsize>) {
    let mut c = config(&[
        ("consumer.group", group),
        ("consumer.consume-from-where", "first"),
    ]);
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    consumer
        .set_listener(move |msgs| {
            s.fetch_add(msgs.len(), Ordering::SeqCst);
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    (consumer, seen)
}

/// The trace records (fields) of `trace_topic` whose message carries `msg_id` as a key.
fn trace_records(reader: &Producer, trace_topic: &str, msg_id: &str) -> Vec<Vec<String>> {
    let found = reader
        .query_message_blocking(trace_topic, msg_id, 64, 0, i64::MAX / 2)
        .unwrap_or_default();
    let mut records = Vec::new();
    for m in found {
        let body = String::from_utf8(m.message.body().to_vec()).unwrap();
        for record in body.split_terminator('\u{2}') {
            let fields: Vec<String> = record.split('\u{1}').map(str::to_string).collect();
            if fields.iter().any(|f| f == msg_id) {
                records.push(fields);
            }
        }
    }
    records
}

/// Waits until the Pub, SubBefore and SubAfter records of `msg_id` are all in the trace topic.
fn wait_for_records(reader: &Producer, trace_topic: &str, msg_id: &str) -> Vec<Vec<String>> {
    eventually(WITHIN, || {
        let r = trace_records(reader, trace_topic, msg_id);
        let has = |t: &str| r.iter().any(|f| f[0] == t);
        (has("Pub") && has("SubBefore") && has("SubAfter")).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "no Pub + SubBefore + SubAfter records of {msg_id} in {trace_topic}; found {:?}",
            trace_records(reader, trace_topic, msg_id)
        )
    })
}

fn send_and_consume_traced(trace_topic: Option<&str>) -> (String, String, Vec<String>) {
    let topic = unique("RustTrace");
    let pgroup = unique("RustTraceP");
    let cgroup = unique("RustTraceC");
    let producer = traced_producer(&pgroup, trace_topic);
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut m = Message::new(topic.as_str(), format!("traced-{i}").into_bytes());
        m.set_tags("TagT").unwrap();
        m.set_keys(&format!("order-{i}")).unwrap();
        ids.push(producer.send_blocking(&m).unwrap().msg_id);
    }
    let traced = [("client.trace-enabled", "true")];
    let mut extra = traced.to_vec();
    if let Some(t) = trace_topic {
        extra.push(("client.trace-topic", t));
    }
    let (consumer, seen) = counting_consumer(&cgroup, &topic, &extra);
    eventually(WITHIN, || (seen.load(Ordering::SeqCst) >= 3).then_some(()))
        .expect("the three messages are consumed");
    // Shutdown sends what is still queued.
    consumer.shutdown().unwrap();
    producer.shutdown();
    (topic, format!("{pgroup}\u{0}{cgroup}"), ids)
}

#[test]
fn sends_and_listener_calls_leave_java_format_records_in_the_trace_topic() {
    let (topic, groups, ids) = send_and_consume_traced(None);
    let (pgroup, cgroup) = groups.split_once('\u{0}').unwrap();
    let reader =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustTraceR")).unwrap()).unwrap();
    reader.start().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let records = wait_for_records(&reader, "RMQ_SYS_TRACE_TOPIC", id);
        let pubr = records.iter().find(|f| f[0] == "Pub").unwrap();
        // Pub: type, time, region, group, topic, msgId, tags, keys, storeHost, bodyLength,
        // costTime, msgType, offsetMsgId, success.
        assert_eq!(pubr.len(), 14, "{pubr:?}");
        assert_eq!(pubr[3], pgroup);
        assert_eq!(pubr[4], topic);
        assert_eq!(pubr[5], *id);
        assert_eq!(pubr[6], "TagT");
        assert_eq!(pubr[7], format!("order-{i}"));
        assert_eq!(pubr[9], format!("traced-{i}").len().to_string());
        assert_eq!(pubr[11], "0");
        assert_eq!(pubr[13], "true");
        let before = records.iter().find(|f| f[0] == "SubBefore").unwrap();
        // SubBefore: type, time, region, group, requestId, msgId, retryTimes, keys.
        assert_eq!(before.len(), 8, "{before:?}");
        assert_eq!(
            (&*before[3], &*before[5], &*before[6]),
            (cgroup, &**id, "0")
        );
        assert_eq!(before[7], format!("order-{i}"));
        let after = records.iter().find(|f| f[0] == "SubAfter").unwrap();
        // SubAfter: type, requestId, msgId, costTime, success, keys, contextCode, time, group.
        assert_eq!(after.len(), 9, "{after:?}");
        assert_eq!(
            after[1], before[4],
            "SubAfter has its SubBefore's request id"
        );
        assert_eq!((&*after[2], &*after[4], &*after[6]), (&**id, "true", "0"));
        assert_eq!(after[8], cgroup);
    }
    reader.shutdown();
    // The Java tool reads them as it reads the Java client's.
    let out = mqadmin(&["queryMsgTraceById", "-n", &namesrv(), "-i", &ids[0]]);
    let line_of = |kind: &str, group: &str| {
        out.lines()
            .find(|l| l.starts_with(kind) && l.contains(group))
            .unwrap_or_else(|| panic!("no {kind} line of {group} in:\n{out}"))
            .to_string()
    };
    assert!(line_of("Pub ", pgroup).contains("success"), "{out}");
    assert!(line_of("Sub ", cgroup).contains("success"), "{out}");
}

/// The cluster script's mqadmin (the Java admin tool of the broker's version); its output.
fn mqadmin(args: &[&str]) -> String {
    let out = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/rocketmq-local.sh"
    ))
    .arg("mqadmin")
    .args(args)
    .output()
    .expect("scripts/rocketmq-local.sh runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mqadmin {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_custom_trace_topic_gets_the_records() {
    let trace_topic = unique("RustTraceTopic");
    let (_, _, ids) = send_and_consume_traced(Some(&trace_topic));
    let reader =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustTraceR")).unwrap()).unwrap();
    reader.start().unwrap();
    wait_for_records(&reader, &trace_topic, &ids[0]);
    assert!(
        trace_records(&reader, "RMQ_SYS_TRACE_TOPIC", &ids[0]).is_empty(),
        "nothing went to the default trace topic"
    );
    reader.shutdown();
}

#[test]
fn bad_trace_settings_are_refused_where_they_are_set() {
    let mut c = Config::new();
    let e = c
        .set("client.trace-enabled", "yes")
        .unwrap_err()
        .to_string();
    assert!(e.contains("client.trace-enabled"), "{e}");
    let e = c
        .set("client.trace-topic", "bad topic")
        .unwrap_err()
        .to_string();
    assert!(e.contains("client.trace-topic"), "{e}");
}

#[test]
fn metrics_of_a_run_equal_its_counts() {
    const N: u64 = 20;
    let topic = unique("RustMetrics");
    let p =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustMetricsP")).unwrap()).unwrap();
    p.start().unwrap();
    let mut bytes = 0;
    for i in 0..N {
        let body = format!("metrics-{i}");
        bytes += body.len() as u64;
        p.send_blocking(&Message::new(topic.as_str(), body.into_bytes()))
            .unwrap();
    }
    let (consumer, seen) = counting_consumer(&unique("RustMetricsC"), &topic, &[]);
    eventually(WITHIN, || {
        (seen.load(Ordering::SeqCst) as u64 >= N).then_some(())
    })
    .expect("every message is consumed");
    let v = |name: &str| rmq::metrics::value(name, &topic, None).unwrap();
    assert_eq!(v("rmq_messages_sent_total"), N);
    assert_eq!(v("rmq_bytes_sent_total"), bytes);
    assert_eq!(v("rmq_send_latency_seconds_count"), N);
    assert_eq!(v("rmq_send_errors_total"), 0);
    assert_eq!(v("rmq_send_retries_total"), 0);
    assert_eq!(v("rmq_sends_in_flight"), 0);
    // The listener has returned for all of them; the result is recorded right after.
    eventually(WITHIN, || {
        (v("rmq_messages_consumed_total") == N).then_some(())
    })
    .unwrap_or_else(|| panic!("consumed {} of {N}", v("rmq_messages_consumed_total")));
    assert_eq!(v("rmq_bytes_consumed_total"), bytes);
    assert_eq!(v("rmq_consume_failures_total"), 0);
    assert_eq!(
        rmq::metrics::value("rmq_messages_sent_total", &topic, Some("no-such-broker")),
        Some(0)
    );
    assert_eq!(rmq::metrics::value("no_such_metric", &topic, None), None);
    // Every message consumed: the broker's max offsets were reached.
    eventually(WITHIN, || (v("rmq_consume_lag") == 0).then_some(()))
        .unwrap_or_else(|| panic!("consume lag {}", v("rmq_consume_lag")));
    let text = rmq::metrics::prometheus_text();
    let sent = text
        .lines()
        .filter(|l| l.starts_with(&format!("rmq_messages_sent_total{{topic=\"{topic}\",")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum::<u64>();
    assert_eq!(sent, N, "{text}");
    consumer.shutdown().unwrap();
    p.shutdown();
}

#[test]
fn poll_mode_traces_from_the_poll_to_the_acknowledgement() {
    let topic = unique("RustTracePoll");
    let producer = traced_producer(&unique("RustTracePollP"), None);
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let m = Message::new(topic.as_str(), format!("polled-{i}").into_bytes());
            producer.send_blocking(&m).unwrap().msg_id
        })
        .collect();
    let c = config(&[
        ("consumer.group", &unique("RustTracePollC")),
        ("consumer.consume-from-where", "first"),
        ("client.trace-enabled", "true"),
    ]);
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(&topic, "*").unwrap();
    consumer.set_poll_mode().unwrap();
    consumer.start().unwrap();
    let mut got = 0;
    eventually(WITHIN, || {
        if let Some(mut batch) = consumer.poll(32, Duration::from_millis(500)).unwrap() {
            got += batch.len();
            batch.ack().unwrap();
        }
        (got >= 2).then_some(())
    })
    .expect("both messages are polled");
    consumer.shutdown().unwrap();
    producer.shutdown();
    let reader =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustTraceR")).unwrap()).unwrap();
    reader.start().unwrap();
    for id in &ids {
        let records = wait_for_records(&reader, "RMQ_SYS_TRACE_TOPIC", id);
        let after = records.iter().find(|f| f[0] == "SubAfter").unwrap();
        assert_eq!((&*after[2], &*after[4]), (&**id, "true"), "{after:?}");
    }
    reader.shutdown();
}
