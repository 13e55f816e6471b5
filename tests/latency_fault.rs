//! Latency fault tolerance against a real cluster of two brokers (broker-a, broker-b) under one
//! name server: one broker is paused (SIGSTOP, so it keeps its connections and its place in the
//! route but answers nothing) and resumed. With fault tolerance on, the producer moves to the
//! other broker and stays there after the paused one is back (a failed broker is left alone for
//! 10 minutes); with it off, round robin keeps using both. The only test in this binary, so no
//! other test sees the paused broker.
mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use common::{multi_broker_cluster, unique};
use rmq::{Config, Message, Producer};

/// NAME -> pid of the cluster's processes, from the cluster script.
fn cluster_pids(data: &str) -> HashMap<String, i32> {
    let out = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/rocketmq-local.sh"
    ))
    .arg("pids")
    .env("RMQ_DATA", data)
    .output()
    .expect("run the cluster script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, pid)| (name.to_string(), pid.trim().parse().unwrap()))
        .collect()
}

/// A broker JVM stopped with SIGSTOP until this is dropped (also when the test fails).
struct Paused(i32);

impl Paused {
    fn new(pid: i32) -> Paused {
        // SAFETY: plain kill(2) on the broker the cluster script started for this test run.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

fn producer(namesrv: &str, group: &str, fault: bool) -> Producer {
    let mut c = Config::new();
    c.set("name-server", namesrv).unwrap();
    c.set("producer.group", group).unwrap();
    c.set("producer.send-message-timeout", "1000").unwrap();
    c.set(
        "producer.send-latency-fault-enable",
        if fault { "true" } else { "false" },
    )
    .unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// Brokers that stored `n` sends of `p`, and how many of the sends failed.
fn send_n(p: &Producer, topic: &str, n: usize) -> (BTreeSet<String>, usize) {
    let mut brokers = BTreeSet::new();
    let mut failed = 0;
    for i in 0..n {
        match p.send_blocking(&Message::new(topic, format!("m{i}"))) {
            Ok(r) => {
                brokers.insert(r.queue.broker_name.to_string());
            }
            Err(_) => failed += 1,
        }
    }
    (brokers, failed)
}

#[test]
fn a_failed_broker_is_left_alone_only_with_fault_tolerance_on() {
    let (namesrv, data) = multi_broker_cluster();
    let pids = cluster_pids(&data);
    let broker_b = *pids.get("broker-b").expect("the cluster has broker-b");
    let topic = unique("LatencyFault");
    let both: BTreeSet<String> = ["broker-a".to_string(), "broker-b".to_string()].into();

    let plain = producer(&namesrv, &unique("FaultOffGroup"), false);
    let tolerant = producer(&namesrv, &unique("FaultOnGroup"), true);
    // Round robin over the 8 queues of the two brokers reaches both.
    assert_eq!(send_n(&plain, &topic, 8), (both.clone(), 0));

    {
        let _paused = Paused::new(broker_b);
        // The first send that picks broker-b times out (1 s budget, broker silent); from then on
        // broker-b is not available and every send goes to broker-a. Round robin reaches
        // broker-b within 5 sends.
        let (brokers, failed) = send_n(&tolerant, &topic, 5);
        assert_eq!(failed, 1, "exactly the send on broker-b fails");
        assert_eq!(brokers, ["broker-a".to_string()].into());
        assert_eq!(
            send_n(&tolerant, &topic, 10),
            (["broker-a".to_string()].into(), 0),
            "with fault tolerance every send avoids the paused broker"
        );
        // Without it, round robin keeps picking broker-b, and those sends time out.
        let (brokers, failed) = send_n(&plain, &topic, 8);
        assert_eq!(brokers, ["broker-a".to_string()].into());
        assert!(failed >= 1, "round robin continues onto the paused broker");
    }

    // broker-b answers again. The tolerant producer leaves it alone for its not-available
    // duration (10 minutes after a failure); the plain one uses both brokers again.
    assert_eq!(
        send_n(&tolerant, &topic, 16),
        (["broker-a".to_string()].into(), 0)
    );
    let (brokers, _) = send_n(&plain, &topic, 16);
    assert_eq!(brokers, both, "round robin uses the resumed broker again");
    plain.shutdown();
    tolerant.shutdown();
}
