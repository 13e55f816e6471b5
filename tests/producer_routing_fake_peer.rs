//! Producer routing against scripted brokers: `producer.retry-next-server` (a real broker cannot
//! be made to answer FLUSH_DISK_TIMEOUT on demand).
mod fake_peer;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use fake_peer::*;
use rmq::{Config, Message, Producer, SendStatus};

/// A broker whose sends are answered with `code`, counting them.
fn broker(code: i32) -> (String, Arc<AtomicUsize>) {
    let (l, addr) = rt().block_on(listener());
    let sends = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&sends);
    serve(l, move |req| match req.code {
        310 => {
            seen.fetch_add(1, SeqCst);
            Some(send_reply(&req, code, 1))
        }
        _ => Some(reply(&req, 0)),
    });
    (addr, sends)
}

/// A name server that routes every topic to `slow` (broker-a) and `ok` (broker-b), 4 queues each.
fn name_server(slow: &str, ok: &str) -> String {
    let (l, addr) = rt().block_on(listener());
    let route = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{slow}"}},"brokerName":"broker-a"}},{{"brokerAddrs":{{"0":"{ok}"}},"brokerName":"broker-b"}}],"queueDatas":[{{"brokerName":"broker-a","perm":6,"readQueueNums":4,"writeQueueNums":4}},{{"brokerName":"broker-b","perm":6,"readQueueNums":4,"writeQueueNums":4}}]}}"#
    );
    serve(l, move |req| {
        Some(reply(&req, 0).with_body(route.clone().into_bytes().into()))
    });
    addr
}

fn producer(namesrv: &str, group: &str, retry_next_server: bool) -> Producer {
    let mut c = Config::new();
    c.set("name-server", namesrv).unwrap();
    c.set("producer.group", group).unwrap();
    c.set(
        "producer.retry-next-server",
        if retry_next_server { "true" } else { "false" },
    )
    .unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn retry_next_server_resends_what_was_not_stored_on_another_broker() {
    // 10 FLUSH_DISK_TIMEOUT: stored, not flushed in time
    let (slow, slow_sends) = broker(10);
    let (ok, ok_sends) = broker(0);
    let namesrv = name_server(&slow, &ok);

    // Off (the default): the status goes to the caller. 8 sends over 8 queues reach broker-a.
    let p = producer(&namesrv, "RetryNextServerOff", false);
    let statuses: Vec<SendStatus> = (0..8)
        .map(|_| p.send_blocking(&Message::new("T", "x")).unwrap().status)
        .collect();
    assert_eq!(slow_sends.load(SeqCst), 4);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == SendStatus::FlushDiskTimeout)
            .count(),
        4
    );
    p.shutdown();

    // On: each send that broker-a did not store properly is sent again, on broker-b.
    slow_sends.store(0, SeqCst);
    ok_sends.store(0, SeqCst);
    let p = producer(&namesrv, "RetryNextServerOn", true);
    for _ in 0..8 {
        let r = p.send_blocking(&Message::new("T", "x")).unwrap();
        assert_eq!(r.status, SendStatus::SendOk);
        assert_eq!(&*r.queue.broker_name, "broker-b");
    }
    // every send ends on broker-b once; those that started on broker-a were sent again
    assert!(slow_sends.load(SeqCst) >= 1);
    assert_eq!(ok_sends.load(SeqCst), 8);
    p.shutdown();
}
