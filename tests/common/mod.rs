//! Shared helpers for tests against the real local cluster (started by `make test`).
#![allow(dead_code)]
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod keyed;
pub mod request_reply;

pub fn namesrv() -> String {
    std::env::var("RMQ_NAMESRV").unwrap_or_else(|_| {
        panic!(
            "RMQ_NAMESRV is not set. These tests need a real RocketMQ cluster: run them with \
             `make test`, or start one with `scripts/rocketmq-local.sh up` and set \
             RMQ_NAMESRV=127.0.0.1:9876"
        )
    })
}

/// The name server of a second, independent cluster (`make test` starts one beside the first).
pub fn second_namesrv() -> String {
    std::env::var("RMQ_NAMESRV_2").unwrap_or_else(|_| {
        panic!(
            "RMQ_NAMESRV_2 is not set. The two-cluster tests need a second real RocketMQ cluster \
             beside the first, with its own broker name: run them with `make test`, or start one \
             with `RMQ_NAMESRV_PORT=39876 RMQ_BROKER_PORT=40911 RMQ_CLUSTER=SecondCluster \
             RMQ_BROKER_NAME=broker-b scripts/rocketmq-local.sh up` and set \
             RMQ_NAMESRV_2=127.0.0.1:39876"
        )
    })
}

/// The major version of the broker under test, from RMQ_BROKER_VERSION (`make test-compat` sets
/// it, e.g. "4.9.7"); 5 when unset, the version `make test` runs. For the few places where
/// brokers of both versions work but answer differently.
pub fn broker_major() -> u32 {
    match std::env::var("RMQ_BROKER_VERSION") {
        Ok(v) => v
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("RMQ_BROKER_VERSION={v:?} is not a version like 4.9.7")),
        Err(_) => 5,
    }
}

/// A topic name no earlier run used, so queue offsets and contents are ours alone.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Retries `f` until it returns Some or `within` passes.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The third cluster `make test` starts: one name server and two brokers (broker-a, broker-b)
/// on the IPv6 loopback ::1. Returns its name server and its data directory (where the cluster
/// script finds the brokers' pids).
pub fn multi_broker_cluster() -> (String, String) {
    let hint = "The IPv6 / two-broker tests need a third cluster: run them with `make test`, or \
                start one with `RMQ_HOST=::1 RMQ_BROKERS=2 RMQ_NAMESRV_PORT=41876 \
                RMQ_BROKER_PORT=42911 RMQ_DATA=/tmp/rmq-v6 scripts/rocketmq-local.sh up` and \
                set RMQ_NAMESRV_V6=[::1]:41876 RMQ_DATA_V6=/tmp/rmq-v6";
    let ns = std::env::var("RMQ_NAMESRV_V6")
        .unwrap_or_else(|_| panic!("RMQ_NAMESRV_V6 is not set. {hint}"));
    let data =
        std::env::var("RMQ_DATA_V6").unwrap_or_else(|_| panic!("RMQ_DATA_V6 is not set. {hint}"));
    (ns, data)
}
