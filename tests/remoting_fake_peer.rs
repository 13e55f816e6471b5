//! Connection-layer behaviour against a scripted peer on loopback: pipelining, timeouts,
//! abandoned requests, reconnects, broker-initiated requests, name server failover. A fake peer
//! is right for these error paths; features are proven against the real broker elsewhere.
mod fake_peer;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fake_peer::*;
use rmq::remoting::codec::decode_frame;
use rmq::remoting::command::{RemotingCommand, SerializeType, FLAG_ONEWAY};
use rmq::remoting::processor::UnsupportedProcessor;
use rmq::remoting::RemotingClient;
use rmq::{Error, Message, Producer, ProducerConfig};

#[test]
fn pipelined_responses_are_matched_by_opaque_in_any_order() {
    rt().block_on(async {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let a = read_cmd(&mut s, &mut buf).await.unwrap();
            let b = read_cmd(&mut s, &mut buf).await.unwrap();
            // answer the second first, and in the other serialization
            write_cmd(&mut s, &reply(&b, 0), SerializeType::RocketMq).await;
            write_cmd(&mut s, &reply(&a, 0), SerializeType::Json).await;
            let _ = read_cmd(&mut s, &mut buf).await;
        });
        let conn = connect(&addr).await;
        let req_a = RemotingCommand::request(101, vec![]);
        let req_b = RemotingCommand::request(202, vec![]);
        let (ra, rb) = tokio::join!(
            conn.invoke(&req_a, Instant::now() + Duration::from_secs(2)),
            conn.invoke(&req_b, Instant::now() + Duration::from_secs(2))
        );
        assert_eq!(ra.unwrap().remark.as_deref(), Some("echo 101"));
        assert_eq!(rb.unwrap().remark.as_deref(), Some("echo 202"));
        assert_eq!(conn.pending_count(), 0);
    });
}

#[test]
fn blocking_invoke_from_a_foreign_thread_times_out_and_forgets_the_request() {
    let (l, addr) = rt().block_on(listener());
    serve(l, |_| None); // reads requests, never answers
    let client = RemotingClient::new(
        rmq::runtime::shared().unwrap(),
        Duration::from_secs(1),
        Arc::new(UnsupportedProcessor),
    );
    let start = Instant::now();
    let err = client
        .invoke_blocking(
            &addr,
            &RemotingCommand::request(7, vec![]),
            Duration::from_millis(200),
        )
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Nothing came from the peer while the request waited: the connection is taken for dead
    // and closed (the request with it), so the next request dials again.
    assert!(client.existing(&addr).is_none());
}

#[test]
fn abandoned_async_requests_are_removed() {
    rt().block_on(async {
        let (l, addr) = listener().await;
        serve(l, |_| None); // reads requests, never answers
        let conn = connect(&addr).await;
        let req = RemotingCommand::request(9, vec![]);
        // the caller gives up (drops the future) long before the request's own timeout
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            conn.invoke(&req, Instant::now() + Duration::from_secs(60)),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(conn.pending_count(), 0);
        // and one that times out on its own
        assert!(matches!(
            conn.invoke(&req, Instant::now() + Duration::from_millis(30))
                .await,
            Err(Error::Timeout(_))
        ));
        assert_eq!(conn.pending_count(), 0);
    });
}

#[test]
fn dropped_connection_fails_waiters_and_the_client_reconnects() {
    let (l, addr) = rt().block_on(listener());
    rt().spawn(async move {
        // first connection: read one request, then hang up
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let _ = read_cmd(&mut s, &mut buf).await;
        drop(s);
        // second connection: answer everything
        let (mut s, _) = l.accept().await.unwrap();
        answer_each(&mut s, |req| Some(reply(&req, 0))).await;
    });
    let client = RemotingClient::new(
        rmq::runtime::shared().unwrap(),
        Duration::from_secs(1),
        Arc::new(UnsupportedProcessor),
    );
    let err = client
        .invoke_blocking(
            &addr,
            &RemotingCommand::request(1, vec![]),
            Duration::from_secs(5),
        )
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed { .. }), "{err}");
    let ok = client
        .invoke_blocking(
            &addr,
            &RemotingCommand::request(2, vec![]),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(ok.remark.as_deref(), Some("echo 2"));
}

/// A scripted broker that, before answering the client's first request, sends a oneway request
/// (must not be answered) and a two-way one (must get REQUEST_CODE_NOT_SUPPORTED). Returns the
/// address and the client's answer to the two-way request.
fn broker_that_calls_back() -> (String, tokio::sync::oneshot::Receiver<RemotingCommand>) {
    let (l, addr) = rt().block_on(listener());
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt().spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let first = read_cmd(&mut s, &mut buf).await.unwrap();
        // a oneway broker request (e.g. NOTIFY_CONSUMER_IDS_CHANGED) must not be answered...
        let mut oneway =
            RemotingCommand::request(40, vec![(Cow::Borrowed("consumerGroup"), "g".into())]);
        oneway.flag = FLAG_ONEWAY;
        oneway.opaque = 5000;
        write_cmd(&mut s, &oneway, SerializeType::Json).await;
        // ...a two-way one (GET_CONSUMER_RUNNING_INFO) must be answered
        let mut ask = RemotingCommand::request(307, vec![]);
        ask.opaque = 5001;
        write_cmd(&mut s, &ask, SerializeType::RocketMq).await;
        let answer = read_cmd(&mut s, &mut buf).await.unwrap();
        write_cmd(&mut s, &reply(&first, 0), SerializeType::Json).await;
        tx.send(answer).unwrap();
        while read_cmd(&mut s, &mut buf).await.is_some() {}
    });
    (addr, rx)
}

fn assert_not_supported(answer: RemotingCommand) {
    assert_eq!(
        answer.opaque, 5001,
        "the reply answers the two-way request, not the oneway"
    );
    assert!(answer.is_response());
    assert_eq!(answer.code, 3); // REQUEST_CODE_NOT_SUPPORTED
    assert_eq!(
        answer.remark.as_deref(),
        Some(" request type 307 not supported")
    );
}

#[test]
fn broker_initiated_requests_get_not_supported_and_oneways_get_nothing() {
    let (addr, rx) = broker_that_calls_back();
    rt().block_on(async {
        let conn = connect(&addr).await;
        conn.invoke(
            &RemotingCommand::request(1, vec![]),
            Instant::now() + Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_not_supported(rx.await.unwrap());
    });
}

/// Same, while a blocking caller holds the read role: it must serve the broker's requests too.
#[test]
fn broker_requests_are_served_by_a_blocking_caller_reading_its_reply() {
    let (addr, rx) = broker_that_calls_back();
    let client = RemotingClient::new(
        rmq::runtime::shared().unwrap(),
        Duration::from_secs(1),
        Arc::new(UnsupportedProcessor),
    );
    let r = client
        .invoke_blocking(
            &addr,
            &RemotingCommand::request(1, vec![]),
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(r.remark.as_deref(), Some("echo 1"));
    assert_not_supported(rt().block_on(rx).unwrap());
}

/// Blocking callers (one reads, the others wait for it or for the reactor) and async callers on
/// one connection, against a peer that answers in reversed batches: every request gets its own
/// answer, none is lost or crossed.
#[test]
fn blocking_and_async_callers_share_one_connection() {
    let (l, addr) = rt().block_on(listener());
    rt().spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let mut batch = Vec::new();
        loop {
            // gather what has arrived, then answer it newest first
            let Some(first) = read_cmd(&mut s, &mut buf).await else {
                return;
            };
            batch.push(first);
            while let Ok(Some(more)) = decode_frame(&mut buf) {
                batch.push(more);
            }
            for req in batch.drain(..).rev() {
                let mut r = reply(&req, 0);
                r.remark = Some(format!("{}", req.opaque));
                r.body = req.body.clone();
                write_cmd(&mut s, &r, SerializeType::Json).await;
            }
        }
    });
    let client = Arc::new(RemotingClient::new(
        rmq::runtime::shared().unwrap(),
        Duration::from_secs(1),
        Arc::new(UnsupportedProcessor),
    ));
    let async_side = {
        let client = Arc::clone(&client);
        let addr = addr.clone();
        std::thread::spawn(move || {
            rt().block_on(async {
                let mut tasks = Vec::new();
                for i in 0..300u32 {
                    let client = Arc::clone(&client);
                    let addr = addr.clone();
                    tasks.push(tokio::spawn(async move {
                        let cmd = RemotingCommand::request(2, vec![])
                            .with_body(i.to_be_bytes().to_vec().into());
                        let r = client
                            .invoke(&addr, &cmd, Instant::now() + Duration::from_secs(10))
                            .await
                            .unwrap();
                        assert_eq!(r.body, cmd.body);
                        assert_eq!(r.remark, Some(cmd.opaque.to_string()));
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    };
    let blocking: Vec<_> = (0..6)
        .map(|t| {
            let client = Arc::clone(&client);
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let tag = (t << 16 | i).to_be_bytes().to_vec();
                    let cmd = RemotingCommand::request(1, vec![]).with_body(tag.into());
                    let r = client
                        .invoke_blocking(&addr, &cmd, Duration::from_secs(10))
                        .unwrap();
                    assert_eq!(r.body, cmd.body, "thread {t} request {i}");
                    assert_eq!(r.remark, Some(cmd.opaque.to_string()));
                }
            })
        })
        .collect();
    for b in blocking {
        b.join().unwrap();
    }
    async_side.join().unwrap();
    assert_eq!(client.existing(&addr).unwrap().pending_count(), 0);
}

#[test]
fn large_frames_survive_a_full_socket_buffer() {
    // 8 MiB bodies do not fit the kernel buffer at once: the writer task must finish them, in
    // order, while other frames queue behind.
    rt().block_on(async {
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await; // let the client's buffer fill
            answer_each(&mut s, |req| {
                let mut r = reply(&req, 0);
                r.remark = Some(format!("{}", req.body.len()));
                Some(r)
            })
            .await;
        });
        let conn = connect(&addr).await;
        let big = RemotingCommand::request(1, vec![]).with_body(vec![7u8; 8 << 20].into());
        let small = RemotingCommand::request(2, vec![]).with_body(vec![1u8; 10].into());
        let (a, b) = tokio::join!(
            conn.invoke(&big, Instant::now() + Duration::from_secs(10)),
            conn.invoke(&small, Instant::now() + Duration::from_secs(10))
        );
        assert_eq!(a.unwrap().remark.as_deref(), Some("8388608"));
        assert_eq!(b.unwrap().remark.as_deref(), Some("10"));
    });
}

/// A fake name server that answers routes with fastjson's unquoted keys, pointing at a fake
/// broker that answers sends with SYSTEM_BUSY twice, then success.
#[test]
fn dead_name_server_fastjson_routes_and_send_retries() {
    let (ns_l, ns_addr) = rt().block_on(listener());
    let (br_l, br_addr) = rt().block_on(listener());
    let route = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{0:"{br_addr}"}},"brokerName":"fake-a","cluster":"c"}}],"filterServerTable":{{}},"queueDatas":[{{"brokerName":"fake-a","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}}]}}"#
    );
    serve(ns_l, move |req| {
        assert_eq!(req.code, 105);
        assert_eq!(req.ext("acceptStandardJsonOnly"), Some("true"));
        Some(reply(&req, 0).with_body(route.clone().into_bytes().into()))
    });
    let sends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&sends);
    serve(br_l, move |req| {
        if req.code != 310 {
            return Some(reply(&req, 0));
        }
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // SYSTEM_BUSY twice, then stored
        Some(send_reply(&req, if n < 2 { 2 } else { 0 }, 42))
    });
    // one name server address is dead (which is tried first is random, as in Java; the
    // deterministic failover test is in client::namesrv)
    let cfg = ProducerConfig::new(&format!("127.0.0.1:1;{ns_addr}"), "FakeGroup").unwrap();
    let producer = Producer::new(cfg).unwrap();
    producer.start().unwrap();
    let mut msg = Message::new("FakeTopic", "payload");
    msg.set_tags("t").unwrap();
    let r = producer.send_blocking(&msg).unwrap();
    assert_eq!(
        sends.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two SYSTEM_BUSY answers, then success"
    );
    assert_eq!(&*r.queue.broker_name, "fake-a");
    assert_eq!(r.queue_offset, 42);
    assert_eq!(r.offset_msg_id, "7F00000100002A9F0000000000000042");
    producer.shutdown();
}

#[test]
fn lifecycle_errors_are_clear() {
    let producer = Producer::new(ProducerConfig::new("127.0.0.1:1", "G").unwrap()).unwrap();
    let msg = Message::new("T", "x");
    assert!(matches!(
        producer.send_blocking(&msg),
        Err(Error::InvalidState(_))
    ));
    producer.start().unwrap();
    assert!(matches!(producer.start(), Err(Error::InvalidState(_))));
    producer.shutdown();
    producer.shutdown(); // idempotent
    assert!(matches!(
        producer.send_blocking(&msg),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(producer.start(), Err(Error::InvalidState(_))));
    assert!(Producer::new(ProducerConfig::new("127.0.0.1:1", "bad group!").unwrap()).is_err());
}

#[test]
fn dead_name_server_gives_a_connect_error_within_the_budget() {
    let mut cfg = ProducerConfig::new("127.0.0.1:1", "G").unwrap();
    cfg.send_timeout = Duration::from_millis(800);
    let producer = Producer::new(cfg).unwrap();
    producer.start().unwrap();
    let start = Instant::now();
    let err = producer.send_blocking(&Message::new("T", "x")).unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::Timeout(_)),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    producer.shutdown();
}

/// With short intervals, the background task polls the name server for routes in use and
/// heartbeats the broker periodically (30 s each by default).
#[test]
fn routes_are_refreshed_and_brokers_heartbeated_periodically() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let (ns_l, ns_addr) = rt().block_on(listener());
    let (br_l, br_addr) = rt().block_on(listener());
    let route_queries = Arc::new(AtomicUsize::new(0));
    let heartbeats = Arc::new(AtomicUsize::new(0));
    let route = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{br_addr}"}},"brokerName":"fake-b","cluster":"c"}}],"queueDatas":[{{"brokerName":"fake-b","perm":6,"readQueueNums":1,"writeQueueNums":1}}]}}"#
    );
    let counter = Arc::clone(&route_queries);
    serve(ns_l, move |req| {
        counter.fetch_add(1, SeqCst);
        Some(reply(&req, 0).with_body(route.clone().into_bytes().into()))
    });
    let counter = Arc::clone(&heartbeats);
    serve(br_l, move |req| {
        if req.code != 34 {
            return Some(send_reply(&req, 0, 1));
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["producerDataSet"][0]["groupName"], "TimerGroup");
        counter.fetch_add(1, SeqCst);
        Some(reply(&req, 0))
    });
    let mut cfg = ProducerConfig::new(&ns_addr, "TimerGroup").unwrap();
    cfg.client.poll_name_server_interval = Duration::from_millis(150);
    cfg.client.heartbeat_interval = Duration::from_millis(150);
    let producer = Producer::new(cfg).unwrap();
    producer.start().unwrap();
    producer
        .send_blocking(&Message::new("TimerTopic", "x"))
        .unwrap();
    // Four more of each, without a send: they come from the timers. The bound only stops a
    // hang; a busy machine may take longer than 4 x 150 ms.
    let (r0, h0) = (route_queries.load(SeqCst), heartbeats.load(SeqCst));
    let deadline = Instant::now() + Duration::from_secs(20);
    while (route_queries.load(SeqCst) - r0 < 4 || heartbeats.load(SeqCst) - h0 < 4)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r1, h1) = (route_queries.load(SeqCst), heartbeats.load(SeqCst));
    assert!(r1 - r0 >= 4, "route refreshes at 150 ms: {}", r1 - r0);
    assert!(h1 - h0 >= 4, "heartbeats at 150 ms: {}", h1 - h0);
    producer.shutdown();
    // after shutdown the timers stop
    let (r2, h2) = (route_queries.load(SeqCst), heartbeats.load(SeqCst));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        (route_queries.load(SeqCst), heartbeats.load(SeqCst)),
        (r2, h2)
    );
}
