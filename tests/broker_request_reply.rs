//! Request-reply through the Rust API against the real broker: an rmq requester and an rmq
//! responder (a push consumer that answers with `reply_blocking`) round-trip in the blocking,
//! awaited and callback forms, concurrent requests each get their own reply, a request nobody
//! answers times out saying so, and shutdown cancels the requests still waiting, once each.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::request_reply::{producer, responder, PATIENT};
use common::{eventually, unique};
use rmq::producer::request::create_reply;
use rmq::{Error, Message, MessageExt};

fn assert_reply(reply: &MessageExt, body: &str) {
    assert_eq!(
        String::from_utf8_lossy(reply.message.body()),
        format!("re: {body}")
    );
    assert!(
        reply.message.topic().ends_with("_REPLY_TOPIC"),
        "{}",
        reply.message.topic()
    );
    assert_eq!(reply.message.property("MSG_TYPE"), Some("reply"));
    assert!(reply.message.property("CORRELATION_ID").is_some());
    assert!(reply.message.property("ARRIVE_TIME").is_some());
}

#[test]
fn requests_round_trip_blocking_awaited_and_with_callbacks() {
    let topic = unique("RustRequest");
    let (consumer, replier) = responder(&topic);
    let p = producer();
    let instance = p.instance().unwrap();

    let reply = p
        .request_blocking(&Message::new(&topic, "q-blocking"), PATIENT)
        .unwrap();
    assert_reply(&reply, "q-blocking");
    assert_eq!(
        reply.message.property("REPLY_TO_CLIENT"),
        p.client_id().as_deref()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt
        .block_on(p.request(&Message::new(&topic, "q-awaited"), PATIENT))
        .unwrap();
    assert_reply(&reply, "q-awaited");

    // several at once: each reply goes to its own request
    let (tx, rx) = mpsc::channel();
    let n = 8;
    for i in 0..n {
        let tx = tx.clone();
        let body = format!("q-async-{i}");
        let expected = body.clone();
        p.request_with_callback(&Message::new(&topic, body), PATIENT, move |r| {
            tx.send((expected, r)).unwrap();
        })
        .unwrap();
    }
    for _ in 0..n {
        let (expected, r) = rx.recv_timeout(PATIENT * 2).unwrap();
        assert_reply(&r.unwrap(), &expected);
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "one callback per request"
    );
    assert!(instance.pending_requests().is_empty());
    p.shutdown();
    consumer.shutdown().unwrap();
    replier.shutdown();
}

#[test]
fn a_request_nobody_answers_times_out_saying_no_reply_came() {
    let topic = unique("RustRequestNoOne");
    let p = producer();
    let instance = p.instance().unwrap();
    let timeout = Duration::from_millis(1500);
    match p.request_blocking(&Message::new(&topic, "anyone?"), timeout) {
        Err(Error::Timeout(m)) => assert!(m.contains("no reply came within 1500 ms"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let (tx, rx) = mpsc::channel();
    p.request_with_callback(&Message::new(&topic, "anyone?"), timeout, move |r| {
        tx.send(r).unwrap();
    })
    .unwrap();
    match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
        Err(Error::Timeout(m)) => assert!(m.contains("no reply came"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        instance.pending_requests().is_empty(),
        "timed out requests are removed"
    );
    p.shutdown();
}

#[test]
fn shutdown_cancels_waiting_requests_once_each() {
    let topic = unique("RustRequestCancel");
    let p = producer();
    let instance = p.instance().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let c = Arc::clone(&calls);
    p.request_with_callback(
        &Message::new(&topic, "wait"),
        Duration::from_secs(600),
        move |r| {
            c.fetch_add(1, Ordering::SeqCst);
            tx.send(r).unwrap();
        },
    )
    .unwrap();
    let blocking = {
        let p = p.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            p.request_blocking(&Message::new(&topic, "wait"), Duration::from_secs(600))
        })
    };
    // both sent and waiting for their replies
    assert!(eventually(Duration::from_secs(30), || (instance
        .pending_requests()
        .len()
        == 2)
        .then_some(()))
    .is_some());
    p.close().unwrap();
    assert!(matches!(rx.recv().unwrap(), Err(Error::Cancelled(_))));
    assert!(matches!(blocking.join().unwrap(), Err(Error::Cancelled(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(instance.pending_requests().is_empty());
}

#[test]
fn bad_requests_and_replies_are_refused_before_anything_is_sent() {
    let p = producer();
    let m = Message::new(unique("RustRequestBad"), "x");
    assert!(matches!(
        p.request_blocking(&m, Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        p.request_with_callback(&m, Duration::from_secs(u64::MAX), |_| panic!(
            "not accepted"
        )),
        Err(Error::InvalidArgument(_))
    ));
    // a message that is not a request has no reply
    let e = p.reply_blocking(&m, "answer").unwrap_err();
    assert!(e.to_string().contains("CLUSTER"), "{e}");
    assert!(create_reply(&m, "answer").is_err());
    p.shutdown();
    assert!(matches!(
        p.request_blocking(&m, Duration::from_secs(1)),
        Err(Error::InvalidState(_))
    ));
}
