//! Failure paths of async retries, ordered sends and the in-flight window against scripted
//! peers on loopback: a broker that drops the connection on a send, or never answers, cannot be
//! had from a real broker on demand. The features themselves are proven against the real broker
//! in broker_order.rs.
mod fake_peer;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use fake_peer::*;
use rmq::remoting::command::{LanguageCode, SerializeType};
use rmq::{Config, Error, Message, MessageQueue, Producer, ProducerConfig, QueueSelector};

/// What a fake broker does with a SEND_MESSAGE_V2.
#[derive(Clone)]
enum OnSend {
    Answer,
    /// Closes the connection without answering.
    Drop,
    /// Never answers.
    Ignore,
    /// Answers once the gate gives a permit.
    Gated(Arc<tokio::sync::Semaphore>),
}

/// A fake broker: answers every request but sends as `on_send(n)` says for the n-th send
/// (0-based), recording each send's queue id.
fn broker(
    on_send: impl Fn(usize) -> OnSend + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<i32>>>) {
    let (l, addr) = rt().block_on(listener());
    let sends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sends);
    let on_send = Arc::new(on_send);
    rt().spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let (seen, on_send) = (Arc::clone(&seen), Arc::clone(&on_send));
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                while let Some(req) = read_cmd(&mut s, &mut buf).await {
                    if req.code != 310 {
                        write_cmd(&mut s, &reply(&req, 0), SerializeType::Json).await;
                        continue;
                    }
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(req.ext("e").unwrap().parse().unwrap());
                        seen.len() - 1
                    };
                    match on_send(n) {
                        OnSend::Answer => {
                            write_cmd(&mut s, &send_reply(&req, 0, n as i64), SerializeType::Json)
                                .await
                        }
                        OnSend::Drop => return,
                        OnSend::Ignore => {}
                        OnSend::Gated(gate) => {
                            gate.acquire().await.unwrap().forget();
                            write_cmd(&mut s, &send_reply(&req, 0, n as i64), SerializeType::Json)
                                .await
                        }
                    }
                }
            });
        }
    });
    (addr, sends)
}

/// A name server that routes every topic to fake-a (`a`) and fake-b (`b`), 4 queues each, and
/// records the language code of each request.
fn name_server(a: &str, b: &str) -> (String, Arc<Mutex<Vec<LanguageCode>>>) {
    let (l, addr) = rt().block_on(listener());
    let route = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{a}"}},"brokerName":"fake-a","cluster":"c"}},{{"brokerAddrs":{{"0":"{b}"}},"brokerName":"fake-b","cluster":"c"}}],"queueDatas":[{{"brokerName":"fake-a","perm":6,"readQueueNums":4,"writeQueueNums":4}},{{"brokerName":"fake-b","perm":6,"readQueueNums":4,"writeQueueNums":4}}]}}"#
    );
    let languages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&languages);
    serve(l, move |req| {
        seen.lock().unwrap().push(req.language);
        Some(reply(&req, 0).with_body(route.clone().into_bytes().into()))
    });
    (addr, languages)
}

fn producer(ns: &str, group: &str, set: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set("name-server", ns).unwrap();
    c.set("producer.group", group).unwrap();
    for (k, v) in set {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

type Outcome = rmq::Result<rmq::SendResult>;

fn send_async(p: &Producer, msg: &Message) -> mpsc::Receiver<Outcome> {
    let (tx, rx) = mpsc::channel();
    p.send_with_callback(msg, move |r| tx.send(r).unwrap())
        .unwrap();
    rx
}

const WAIT: Duration = Duration::from_secs(10);

/// Broker fake-a drops the connection on every send; each async send still succeeds, on
/// fake-b, after one retry. Five sends one after another are enough for some to start on
/// fake-a: a send that starts on fake-b moves the round-robin counter by one, so at most four in
/// a row do.
#[test]
fn async_sends_retry_on_another_broker_after_a_transport_failure() {
    let (a, a_sends) = broker(|_| OnSend::Drop);
    let (b, b_sends) = broker(|_| OnSend::Answer);
    let (ns, _) = name_server(&a, &b);
    let p = producer(&ns, "AsyncRetryGroup", &[]);
    for _ in 0..8 {
        let r = send_async(&p, &Message::new("T", "x"))
            .recv_timeout(WAIT)
            .unwrap();
        let r = r.expect("retried on fake-b");
        assert_eq!(&*r.queue.broker_name, "fake-b");
    }
    let dropped = a_sends.lock().unwrap().len();
    assert!(dropped >= 1, "some sends started on fake-a");
    assert_eq!(
        b_sends.lock().unwrap().len(),
        8,
        "each send stored once, on fake-b"
    );
    p.shutdown();

    // Without retries the transport failure is the outcome.
    let (ns, _) = name_server(&a, &a);
    let p = producer(
        &ns,
        "AsyncNoRetryGroup",
        &[("producer.retry-times-when-send-async-failed", "0")],
    );
    let r = send_async(&p, &Message::new("T", "x"))
        .recv_timeout(WAIT)
        .unwrap();
    assert!(matches!(r, Err(ref e) if e.is_transport()), "{r:?}");
    p.shutdown();
}

/// An ordered send never moves: an async send to fake-a queue 2 whose first attempt is dropped
/// is retried on fake-a queue 2; a sync one is not retried at all. fake-b sees nothing.
#[test]
fn ordered_sends_never_move_to_another_queue() {
    let (a, a_sends) = broker(|n| if n == 0 { OnSend::Drop } else { OnSend::Answer });
    let (b, b_sends) = broker(|_| OnSend::Answer);
    let (ns, _) = name_server(&a, &b);
    let p = producer(&ns, "PinnedGroup", &[]);
    let q2 = MessageQueue {
        topic: "T".into(),
        broker_name: "fake-a".into(),
        queue_id: 2,
    };
    let (tx, rx) = mpsc::channel();
    p.send_to_queue_with_callback(&Message::new("T", "x"), &q2, move |r| tx.send(r).unwrap())
        .unwrap();
    let r = rx.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!((&*r.queue.broker_name, r.queue.queue_id), ("fake-a", 2));
    assert_eq!(
        *a_sends.lock().unwrap(),
        vec![2, 2],
        "retried on the same queue"
    );

    // Sync: a selector picks fake-a queue 3 (index 3); the dropped attempt is the outcome.
    let (a, a_sends) = broker(|_| OnSend::Drop);
    let (ns, _) = name_server(&a, &b);
    let p2 = producer(&ns, "PinnedSyncGroup", &[]);
    let third = |_: &[MessageQueue]| 3;
    let r = p2.send_select_blocking(&Message::new("T", "x"), &QueueSelector::Custom(&third));
    assert!(matches!(r, Err(ref e) if e.is_transport()), "{r:?}");
    assert_eq!(*a_sends.lock().unwrap(), vec![3], "one attempt");
    assert!(b_sends.lock().unwrap().is_empty(), "nothing went to fake-b");
    p.shutdown();
    p2.shutdown();
}

/// Selectors that fail give Error::QueueSelector and send nothing.
#[test]
fn failing_selectors_are_errors_and_send_nothing() {
    let (a, a_sends) = broker(|_| OnSend::Answer);
    let (ns, _) = name_server(&a, &a);
    let p = producer(&ns, "BadSelectorGroup", &[]);
    let msg = Message::new("T", "x");
    let out_of_range = |qs: &[MessageQueue]| qs.len();
    let panics = |_: &[MessageQueue]| -> usize { panic!("selector bug") };
    for sel in [
        QueueSelector::Custom(&out_of_range),
        QueueSelector::Custom(&panics),
    ] {
        let r = p.send_select_blocking(&msg, &sel);
        assert!(matches!(r, Err(Error::QueueSelector(_))), "{r:?}");
        let r = p.send_select_with_callback(&msg, &sel, |_| panic!("never called"));
        assert!(matches!(r, Err(Error::QueueSelector(_))), "{r:?}");
    }
    assert!(a_sends.lock().unwrap().is_empty());
    p.shutdown();
}

/// The window holds a slot from acceptance until the callback has returned. Fail-fast: the
/// fourth send with three in flight is refused at once. Shutdown still completes each of the
/// three exactly once.
#[test]
fn a_full_window_fails_fast_when_asked_and_shutdown_completes_each_once() {
    let (a, a_sends) = broker(|_| OnSend::Ignore);
    let (ns, _) = name_server(&a, &a);
    let p = producer(
        &ns,
        "WindowFailFastGroup",
        &[
            ("producer.max-in-flight-async-sends", "3"),
            ("producer.block-when-in-flight-full", "false"),
            ("producer.send-message-timeout", "60000"),
        ],
    );
    let (tx, rx) = mpsc::channel();
    for i in 0..3 {
        let tx = tx.clone();
        p.send_with_callback(&Message::new("T", "x"), move |r| tx.send((i, r)).unwrap())
            .unwrap();
    }
    let r = p.send_with_callback(&Message::new("T", "x"), |_| panic!("never called"));
    assert!(matches!(r, Err(Error::InFlightFull(_))), "{r:?}");
    while a_sends.lock().unwrap().len() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    p.close().unwrap();
    let mut calls = [0; 3];
    for _ in 0..3 {
        let (i, r) = rx.recv_timeout(WAIT).unwrap();
        assert!(matches!(r, Err(Error::Cancelled(_))), "{r:?}");
        calls[i] += 1;
    }
    assert_eq!(calls, [1, 1, 1]);
    assert!(rx.try_recv().is_err(), "no callback twice");
}

/// Blocking policy: a caller with the window full waits until a callback has returned, then
/// is admitted. From inside a callback, whose own slot is still held, a full window fails at
/// once instead of waiting for itself.
#[test]
fn a_full_window_blocks_callers_but_never_a_callback() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&gate);
    let (a, _) = broker(move |_| OnSend::Gated(Arc::clone(&held)));
    let (ns, _) = name_server(&a, &a);
    let p = producer(
        &ns,
        "WindowBlockGroup",
        &[
            ("producer.max-in-flight-async-sends", "2"),
            ("producer.send-message-timeout", "60000"),
        ],
    );
    let (tx, rx) = mpsc::channel();
    let inner_result = Arc::new(Mutex::new(None));
    {
        let (p2, inner_result, tx) = (p.clone(), Arc::clone(&inner_result), tx.clone());
        p.send_with_callback(&Message::new("T", "x"), move |r| {
            // Full: this callback holds one slot, the held second send the other.
            let again = p2.send_with_callback(&Message::new("T", "y"), |_| {});
            *inner_result.lock().unwrap() = Some(again);
            tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    }
    // Accepted, so in flight: the window counts from acceptance.
    p.send_with_callback(&Message::new("T", "x"), |_| {})
        .unwrap();
    let waiter = {
        let p = p.clone();
        std::thread::spawn(move || p.send_with_callback(&Message::new("T", "z"), |_| {}))
    };
    // The first send is answered; its callback returns; only then is the waiter admitted.
    gate.add_permits(1);
    waiter.join().unwrap().unwrap();
    assert!(
        rx.try_recv().unwrap(),
        "admitted only after the first callback had returned"
    );
    let inner = inner_result
        .lock()
        .unwrap()
        .take()
        .expect("the callback ran");
    match inner {
        Err(Error::InFlightFull(m)) => assert!(m.contains("does not wait"), "{m}"),
        other => panic!("a send from a callback with the window full: {other:?}"),
    }
    gate.add_permits(10);
    p.close().unwrap();
}

/// 300 async sends through a window of 16, blocking: every callback runs exactly once.
#[test]
fn every_callback_runs_once_through_a_small_window() {
    let (a, a_sends) = broker(|_| OnSend::Answer);
    let (ns, _) = name_server(&a, &a);
    let p = producer(
        &ns,
        "WindowCountGroup",
        &[("producer.max-in-flight-async-sends", "16")],
    );
    let calls = Arc::new((0..300).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let (tx, rx) = mpsc::channel();
    for i in 0..300 {
        let (calls, tx) = (Arc::clone(&calls), tx.clone());
        p.send_with_callback(&Message::new("T", "x"), move |r| {
            calls[i].fetch_add(1, SeqCst);
            tx.send(r.is_ok()).unwrap();
        })
        .unwrap();
    }
    for _ in 0..300 {
        assert!(rx.recv_timeout(WAIT).unwrap());
    }
    p.close().unwrap();
    assert!(calls.iter().all(|c| c.load(SeqCst) == 1));
    assert_eq!(a_sends.lock().unwrap().len(), 300);
}

/// A sender waiting for a slot gives up when the producer shuts down.
#[test]
fn shutdown_releases_a_sender_waiting_for_a_slot() {
    let (a, a_sends) = broker(|_| OnSend::Ignore);
    let (ns, _) = name_server(&a, &a);
    let p = producer(
        &ns,
        "WindowShutdownGroup",
        &[
            ("producer.max-in-flight-async-sends", "1"),
            ("producer.send-message-timeout", "60000"),
        ],
    );
    p.send_with_callback(&Message::new("T", "x"), |_| {})
        .unwrap();
    while a_sends.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiter = {
        let p = p.clone();
        std::thread::spawn(move || p.send_with_callback(&Message::new("T", "y"), |_| {}))
    };
    // Whether it is already waiting or not, it fails rather than wait the 60 s.
    p.shutdown();
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::InvalidState(_))), "{r:?}");
    p.close().unwrap();
}

/// client.language is the language code of every request.
#[test]
fn client_language_goes_out_in_every_request() {
    let (a, _) = broker(|_| OnSend::Answer);
    for (name, code) in [("JAVA", LanguageCode::JAVA), ("RUST", LanguageCode::RUST)] {
        let (ns, languages) = name_server(&a, &a);
        let p = producer(
            &ns,
            &format!("Lang{name}Group"),
            &[("client.language", name)],
        );
        p.send_blocking(&Message::new("T", "x")).unwrap();
        let seen = languages.lock().unwrap().clone();
        assert!(
            !seen.is_empty() && seen.iter().all(|l| *l == code),
            "{name}: {seen:?}"
        );
        p.shutdown();
    }
    let mut c = Config::new();
    assert!(matches!(
        c.set("client.language", "KLINGON"),
        Err(Error::InvalidConfigValue { .. })
    ));
    let _ = ProducerConfig::new("127.0.0.1:1", "G").unwrap();
}

/// A broker code outside 1..9999 is RMQ_ERR_BROKER_OTHER, and the code itself is kept: in the
/// last error for sync sends, in the callback params for async ones.
#[test]
fn broker_codes_outside_the_table_are_kept_through_the_c_abi() {
    use rmq::ffi::*;
    use std::ffi::c_void;
    let (l, b) = rt().block_on(listener());
    serve(l, |req| match req.code {
        310 => Some(reply(&req, 20001)),
        _ => Some(reply(&req, 0)),
    });
    let (ns, _) = name_server(&b, &b);
    unsafe {
        let config = rmq_config_create();
        let ns = std::ffi::CString::new(ns).unwrap();
        assert_eq!(
            rmq_config_set(config, c"name-server".as_ptr(), ns.as_ptr()),
            RMQ_OK
        );
        assert_eq!(
            rmq_config_set(
                config,
                c"producer.group".as_ptr(),
                c"OtherCodeGroup".as_ptr()
            ),
            RMQ_OK
        );
        let mut producer = std::ptr::null_mut();
        assert_eq!(rmq_producer_create(config, &mut producer), RMQ_OK);
        rmq_config_destroy(config);
        assert_eq!(rmq_producer_start(producer), RMQ_OK);
        let msg = rmq_message_create();
        assert_eq!(rmq_message_set_topic(msg, c"T".as_ptr()), RMQ_OK);
        assert_eq!(rmq_message_set_body(msg, b"x".as_ptr(), 1), RMQ_OK);
        let st = rmq_producer_send_sync(producer, msg, std::ptr::null_mut());
        assert_eq!(st, RMQ_ERR_BROKER_OTHER);
        assert_eq!(rmq_last_error_broker_code(), 20001);

        unsafe extern "C" fn on_done(p: *const rmq_send_callback_params_t, ud: *mut c_void) {
            let tx = &*(ud as *const mpsc::Sender<(i32, i32)>);
            tx.send(((*p).status, (*p).broker_code)).unwrap();
        }
        let (tx, rx) = mpsc::channel::<(i32, i32)>();
        let st =
            rmq_producer_send_async(producer, msg, Some(on_done), &tx as *const _ as *mut c_void);
        assert_eq!(st, RMQ_OK);
        assert_eq!(
            rmq_last_error_broker_code(),
            0,
            "cleared by a successful call"
        );
        assert_eq!(
            rx.recv_timeout(WAIT).unwrap(),
            (RMQ_ERR_BROKER_OTHER, 20001)
        );
        assert_eq!(rmq_producer_destroy(producer), RMQ_OK);
        rmq_message_destroy(msg);
    }
}
