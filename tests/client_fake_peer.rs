//! Client-instance behaviour against scripted peers on loopback: where broker requests run,
//! single-flight route lookups, and a shutdown that stops work. These are error paths and
//! orderings a real broker cannot be made to show on demand; features are proven against the
//! real broker in the other suites.
mod fake_peer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fake_peer::*;
use rmq::executor::Executor;
use rmq::remoting::command::{RemotingCommand, SerializeType};
use rmq::remoting::processor::{ProcessorRegistry, RequestProcessor};
use rmq::remoting::RemotingClient;
use rmq::{Error, Message, Producer, ProducerConfig};

/// Answers CHECK_TRANSACTION_STATE after the test lets it, noting the thread it ran on.
struct HeldProcessor {
    release: Mutex<mpsc::Receiver<()>>,
    ran_on: Mutex<Option<String>>,
}

impl RequestProcessor for HeldProcessor {
    fn process(&self, _remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        *self.ran_on.lock().unwrap() = std::thread::current().name().map(str::to_string);
        let _ = self
            .release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20));
        Some(RemotingCommand::response_to(
            &request,
            0,
            Some("checked".into()),
        ))
    }
}

/// The broker sends a request of its own just before the reply a blocking caller waits for, on
/// the same socket that caller is reading. The processor must not run on that caller's thread:
/// it is held until the caller has its reply, so running it inline would hang the caller.
#[test]
fn broker_requests_run_on_their_executor_never_on_the_thread_that_reads() {
    let (l, addr) = rt().block_on(listener());
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    rt().spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let first = read_cmd(&mut s, &mut buf).await.unwrap();
        let mut check = RemotingCommand::request(39, vec![]);
        check.opaque = 7001;
        write_cmd(&mut s, &check, SerializeType::Json).await;
        write_cmd(&mut s, &reply(&first, 0), SerializeType::Json).await;
        let answer = read_cmd(&mut s, &mut buf).await.unwrap();
        answer_tx.send(answer).unwrap();
        while read_cmd(&mut s, &mut buf).await.is_some() {}
    });
    let (release, held) = mpsc::channel();
    let processor = Arc::new(HeldProcessor {
        release: Mutex::new(held),
        ran_on: Mutex::new(None),
    });
    let registry = Arc::new(ProcessorRegistry::new(Executor::new("rmq-broker-req", 1)));
    registry.register(39, processor.clone());
    let client = RemotingClient::new(
        rmq::runtime::shared().unwrap(),
        Duration::from_secs(1),
        registry,
    );
    let r = client
        .invoke_blocking(
            &addr,
            &RemotingCommand::request(1, vec![]),
            Duration::from_secs(10),
        )
        .expect("the caller gets its reply while the broker's request waits on the executor");
    assert_eq!(r.code, 0);
    release.send(()).unwrap();
    let answer = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), answer_rx).await })
        .expect("the processor's answer reaches the broker")
        .unwrap();
    assert_eq!(answer.opaque, 7001);
    assert!(answer.is_response());
    assert_eq!(answer.remark.as_deref(), Some("checked"));
    let ran_on = processor.ran_on.lock().unwrap().clone().unwrap_or_default();
    assert!(ran_on.starts_with("rmq-broker-req"), "ran on {ran_on}");
}

/// A name server that answers every topic with one broker (`broker_addr`, 4 queues) and counts
/// the route queries per topic.
fn counting_name_server(broker_addr: String) -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let (l, addr) = rt().block_on(listener());
    let queries = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::clone(&queries);
    serve(l, move |req| {
        assert_eq!(req.code, 105);
        let topic = req.ext("topic").unwrap().to_string();
        *seen.lock().unwrap().entry(topic).or_insert(0) += 1;
        let route = format!(
            r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{broker_addr}"}},"brokerName":"fake-a","cluster":"c"}}],"queueDatas":[{{"brokerName":"fake-a","perm":6,"readQueueNums":4,"writeQueueNums":4}}]}}"#
        );
        Some(reply(&req, 0).with_body(route.into_bytes().into()))
    });
    (addr, queries)
}

/// Concurrent first sends to a new topic, blocking and async, ask the name server once.
#[test]
fn route_lookups_of_a_new_topic_are_single_flight() {
    let (br_l, br_addr) = rt().block_on(listener());
    serve(br_l, |req| match req.code {
        310 => Some(send_reply(&req, 0, 1)),
        _ => Some(reply(&req, 0)),
    });
    let (ns_addr, queries) = counting_name_server(br_addr);
    let producer =
        Producer::new(ProducerConfig::new(&ns_addr, "SingleFlightGroup").unwrap()).unwrap();
    producer.start().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let async_sends = 300;
    for _ in 0..async_sends {
        let done = done_tx.clone();
        producer
            .send_with_callback(&Message::new("NewTopic", "x"), move |r| {
                done.send(r.map(|_| ())).unwrap();
            })
            .unwrap();
    }
    let blocking: Vec<_> = (0..8)
        .map(|_| {
            let p = producer.clone();
            std::thread::spawn(move || p.send_blocking(&Message::new("NewTopic", "y")))
        })
        .collect();
    for t in blocking {
        t.join().unwrap().unwrap();
    }
    for _ in 0..async_sends {
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        queries.lock().unwrap().get("NewTopic").copied(),
        Some(1),
        "{} sends, one route query",
        async_sends + 8
    );
    producer.shutdown();
}

/// Sends the broker never answers are in flight when the producer shuts down: every callback
/// runs once, at once, with Cancelled (not after the 20 s send timeout), and nothing is dialled
/// or sent afterwards.
#[test]
fn shutdown_cancels_sends_in_flight_and_dials_nothing_after() {
    let (br_l, br_addr) = rt().block_on(listener());
    let accepted = Arc::new(AtomicUsize::new(0));
    let sends_seen = Arc::new(AtomicUsize::new(0));
    let requests_after = Arc::new(AtomicUsize::new(0));
    let shut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (accepted, sends_seen, requests_after, shut) = (
            Arc::clone(&accepted),
            Arc::clone(&sends_seen),
            Arc::clone(&requests_after),
            Arc::clone(&shut),
        );
        rt().spawn(async move {
            loop {
                let (mut s, _) = br_l.accept().await.unwrap();
                accepted.fetch_add(1, SeqCst);
                let (sends_seen, requests_after, shut) = (
                    Arc::clone(&sends_seen),
                    Arc::clone(&requests_after),
                    Arc::clone(&shut),
                );
                tokio::spawn(async move {
                    answer_each(&mut s, |req| {
                        if shut.load(SeqCst) {
                            requests_after.fetch_add(1, SeqCst);
                        }
                        match req.code {
                            310 => {
                                sends_seen.fetch_add(1, SeqCst);
                                None // never answered
                            }
                            _ => Some(reply(&req, 0)),
                        }
                    })
                    .await
                });
            }
        });
    }
    let (ns_addr, _) = counting_name_server(br_addr);
    let mut config = ProducerConfig::new(&ns_addr, "ShutdownGroup").unwrap();
    config.send_timeout = Duration::from_secs(20);
    let producer = Producer::new(config).unwrap();
    producer.start().unwrap();
    let sends = 200;
    let (done_tx, done_rx) = mpsc::channel();
    for i in 0..sends {
        let done = done_tx.clone();
        producer
            .send_with_callback(&Message::new("Stuck", "x"), move |r| {
                done.send((i, r)).unwrap();
            })
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sends_seen.load(SeqCst) < sends && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        sends_seen.load(SeqCst),
        sends,
        "all sends reached the broker"
    );
    let t0 = Instant::now();
    producer.shutdown();
    shut.store(true, SeqCst);
    let mut calls = vec![0; sends];
    for _ in 0..sends {
        let (i, r) = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        calls[i] += 1;
        assert!(matches!(r, Err(Error::Cancelled(_))), "send {i}: {r:?}");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "cancelled at shutdown, not timed out"
    );
    producer.close().unwrap();
    assert!(calls.iter().all(|&n| n == 1), "each callback exactly once");
    assert!(done_rx.try_recv().is_err(), "no callback twice");
    // nothing is re-dialled or sent once shutdown has returned
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(accepted.load(SeqCst), 1, "no connection after shutdown");
    assert_eq!(requests_after.load(SeqCst), 0, "no request after shutdown");
}
