//! The broker's requests to clients, caused the way operators cause them: `mqadmin` (through the
//! cluster script) against a real broker with rmq consumers in the group.
//! - consumerStatus: GET_CONSUMER_RUNNING_INFO; consumerProgress alongside;
//! - resetOffsetByTime: on a 5.x broker's default (server-side reset, seen by the consumer as
//!   PULL_OFFSET_MOVED) and, with `useServerSideResetOffset=false`, as RESET_CONSUMER_CLIENT_OFFSET;
//! - queryMsgById with a client id: CONSUME_MESSAGE_DIRECTLY;
//! - INVOKE_BROKER_TO_GET_CONSUMER_STATUS sent from here: GET_CONSUMER_STATUS_FROM_CLIENT.
mod common;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, second_namesrv, unique};
use rmq::protocol::ids::now_ms;
use rmq::remoting::RemotingCommand;
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(90);

/// `scripts/rocketmq-local.sh mqadmin ARGS -n NS`: stdout and stderr together (mqadmin reports
/// failures as stack traces on stderr and exits 0).
fn mqadmin(ns: &str, args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = ns.rsplit(':').next().unwrap();
    let out = Command::new(root.join("scripts/rocketmq-local.sh"))
        .env("RMQ_NAMESRV_PORT", port)
        .arg("mqadmin")
        .args(args)
        .args(["-n", ns])
        .output()
        .expect("the cluster script runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn producer(ns: &str) -> Producer {
    let p = Producer::new(ProducerConfig::new(ns, &unique("RustAdminProducer")).unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// Sends `n` messages "<prefix>-<i>"; returns (body, msg id) pairs.
fn send(p: &Producer, topic: &str, prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let body = format!("{prefix}-{i}");
            let r = p
                .send_blocking(&Message::new(topic, body.clone().into_bytes()))
                .unwrap();
            (body, r.msg_id)
        })
        .collect()
}

type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// A started consumer of `topic` counting the deliveries of each body.
fn counting_consumer(ns: &str, group: &str, topic: &str) -> (PushConsumer, Counts) {
    let mut c = Config::new();
    c.set("name-server", ns).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("admin")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    // Committed soon, so the broker's view (consumerProgress, resets) is current.
    c.set("consumer.persist-consumer-offset-interval", "500")
        .unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    let counts: Counts = Arc::default();
    let seen = Arc::clone(&counts);
    consumer
        .set_listener(move |msgs| {
            let mut s = seen.lock().unwrap();
            for m in msgs {
                *s.entry(String::from_utf8_lossy(m.message.body()).into_owned())
                    .or_default() += 1;
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    (consumer, counts)
}

/// Waits until every body was delivered at least `times` times.
fn delivered(counts: &Counts, sent: &[(String, String)], times: usize) -> bool {
    eventually(WITHIN, || {
        let c = counts.lock().unwrap();
        sent.iter()
            .all(|(b, _)| c.get(b).copied().unwrap_or(0) >= times)
            .then_some(())
    })
    .is_some()
}

#[test]
fn consumer_status_and_progress_show_an_rmq_consumer() {
    let ns = namesrv();
    let topic = unique("RustAdminStatus");
    let group = unique("RustAdminStatusGroup");
    let p = producer(&ns);
    let sent = send(&p, &topic, "s", 8);
    let (c, counts) = counting_consumer(&ns, &group, &topic);
    assert!(delivered(&counts, &sent, 1), "consumed");
    let id = c.client_id().unwrap();
    let out = mqadmin(&ns, &["consumerStatus", "-g", &group, "-i", &id]);
    for want in [
        "#Consumer Properties#",
        "PROP_CONSUME_TYPE",
        "CONSUME_PASSIVELY",
        "PROP_CONSUMEORDERLY",
        "PROP_THREADPOOL_CORE_SIZE",
        "PROP_CONSUMER_START_TIMESTAMP",
        "PROP_CLIENT_VERSION",
        "#Consumer Subscription#",
        &format!("Topic: {topic}"),
        &format!("Topic: %RETRY%{group}"),
        "#Consumer MQ Detail#",
        "#Consumer RT&TPS#",
    ] {
        assert!(
            out.contains(want),
            "'{want}' missing from consumerStatus:\n{out}"
        );
    }
    // One offset row per queue of the topic: topic, broker, queue id, offset.
    let rows = out
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(topic.as_str()))
        .filter(|l| l.contains("broker-a") && !l.contains("ProcessQueueInfo"))
        .count();
    assert!(rows >= 4, "queue rows of {topic}:\n{out}");
    // The whole group, as the tool lists it (no client id given).
    let out = mqadmin(&ns, &["consumerProgress", "-g", &group]);
    assert!(
        out.contains(&topic),
        "consumerProgress lists the topic:\n{out}"
    );
    assert!(out.contains("Diff Total: 0"), "everything consumed:\n{out}");
    c.shutdown().unwrap();
}

#[test]
fn reset_offset_by_time_delivers_again() {
    let ns = namesrv();
    let topic = unique("RustAdminReset");
    let group = unique("RustAdminResetGroup");
    let p = producer(&ns);
    let (c, counts) = counting_consumer(&ns, &group, &topic);
    let before = now_ms() - 1000;
    let sent = send(&p, &topic, "r", 10);
    assert!(delivered(&counts, &sent, 1), "consumed once");
    let out = mqadmin(
        &ns,
        &[
            "resetOffsetByTime",
            "-g",
            &group,
            "-t",
            &topic,
            "-s",
            &before.to_string(),
        ],
    );
    assert!(
        !out.contains("Exception"),
        "resetOffsetByTime failed:\n{out}"
    );
    assert!(
        delivered(&counts, &sent, 2),
        "every message again after the reset: {:?}\n{out}",
        counts.lock().unwrap()
    );
    c.shutdown().unwrap();
}

/// With `useServerSideResetOffset=false` the broker tells each consumer the new offsets itself
/// (RESET_CONSUMER_CLIENT_OFFSET). The test switches the second cluster's broker to it (a runtime
/// broker setting, which no other test depends on); the first cluster keeps the 5.x default.
#[test]
fn reset_request_from_the_broker_moves_the_consumer() {
    let ns = second_namesrv();
    let topic = unique("RustAdminClientReset");
    let group = unique("RustAdminClientResetGroup");
    let p = producer(&ns);
    send(&p, &topic, "warm-up", 1);
    let broker = p
        .instance()
        .unwrap()
        .master_addr("broker-b")
        .expect("broker-b");
    let out = mqadmin(
        &ns,
        &[
            "updateBrokerConfig",
            "-b",
            &broker,
            "-k",
            "useServerSideResetOffset",
            "-v",
            "false",
        ],
    );
    assert!(
        !out.contains("Exception"),
        "updateBrokerConfig failed:\n{out}"
    );
    let (c, counts) = counting_consumer(&ns, &group, &topic);
    let before = now_ms() - 1000;
    let sent = send(&p, &topic, "r", 10);
    assert!(delivered(&counts, &sent, 1), "consumed once");
    // The broker computes the offsets from what the group committed: wait for the commit.
    let committed = eventually(WITHIN, || {
        let out = mqadmin(&ns, &["consumerProgress", "-g", &group]);
        out.contains("Diff Total: 0").then_some(())
    });
    assert!(committed.is_some(), "offsets committed");
    let out = mqadmin(
        &ns,
        &[
            "resetOffsetByTime",
            "-g",
            &group,
            "-t",
            &topic,
            "-s",
            &before.to_string(),
        ],
    );
    assert!(
        !out.contains("Exception"),
        "resetOffsetByTime failed:\n{out}"
    );
    assert!(
        delivered(&counts, &sent, 2),
        "every message again after the reset: {:?}\n{out}",
        counts.lock().unwrap()
    );
    c.shutdown().unwrap();
}

#[test]
fn query_msg_by_id_with_a_client_consumes_it_directly() {
    let ns = namesrv();
    let topic = unique("RustAdminDirect");
    let group = unique("RustAdminDirectGroup");
    let p = producer(&ns);
    let (c, counts) = counting_consumer(&ns, &group, &topic);
    let sent = send(&p, &topic, "d", 1);
    assert!(delivered(&counts, &sent, 1), "consumed");
    let id = c.client_id().unwrap();
    let out = mqadmin(
        &ns,
        &[
            "queryMsgById",
            "-t",
            &topic,
            "-i",
            &sent[0].1,
            "-g",
            &group,
            "-d",
            &id,
        ],
    );
    assert!(
        out.contains("CR_SUCCESS"),
        "consumeMessageDirectly result:\n{out}"
    );
    assert_eq!(
        counts.lock().unwrap().get(&sent[0].0),
        Some(&2),
        "the listener ran once more, for the tool"
    );
    c.shutdown().unwrap();
}

#[test]
fn the_broker_collects_consumer_offsets_from_the_client() {
    let ns = namesrv();
    let topic = unique("RustAdminOffsets");
    let group = unique("RustAdminOffsetsGroup");
    let p = producer(&ns);
    let sent = send(&p, &topic, "o", 8);
    let (c, counts) = counting_consumer(&ns, &group, &topic);
    assert!(delivered(&counts, &sent, 1), "consumed");
    let instance = p.instance().unwrap();
    let broker = instance.master_addr("broker-a").expect("broker-a");
    // INVOKE_BROKER_TO_GET_CONSUMER_STATUS (223): the broker asks every consumer of the group.
    let cmd = RemotingCommand::request(
        223,
        vec![
            (Cow::Borrowed("topic"), topic.clone()),
            (Cow::Borrowed("group"), group.clone()),
        ],
    );
    let resp = instance
        .remoting()
        .invoke_blocking(&broker, &cmd, Duration::from_secs(10))
        .unwrap();
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    let id = c.client_id().unwrap();
    assert!(body.contains(&format!("\"{id}\"")), "{body}");
    for q in 0..4 {
        let key = format!("{{\"brokerName\":\"broker-a\",\"queueId\":{q},\"topic\":\"{topic}\"}}");
        assert!(body.contains(&key), "queue {q} in {body}");
    }
    c.shutdown().unwrap();
}
