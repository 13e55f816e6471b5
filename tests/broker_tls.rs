//! TLS against a real cluster that enforces it (scripts/rocketmq-local.sh with
//! RMQ_TLS_MODE=enforcing: a test CA, a server certificate for 127.0.0.1 and localhost, client
//! certificates required). A verified client with its certificate sends and consumes; a server
//! certificate from another CA, one for another name, and a missing client certificate are each
//! refused with an error that names the cause; the test-only opt-out connects to anything.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, unique};
use rmq::{Config, ConsumeResult, Message, Producer, PushConsumer};

const WITHIN: Duration = Duration::from_secs(60);

/// The TLS cluster's name server and the directory of its certificates.
fn tls_cluster() -> (String, String) {
    let hint = "The TLS tests need a cluster that enforces TLS: run them with `make test`, or \
                start one with `RMQ_TLS_MODE=enforcing RMQ_NAMESRV_PORT=43876 \
                RMQ_BROKER_PORT=43911 RMQ_DATA=/tmp/rmq-tls scripts/rocketmq-local.sh up` and \
                set RMQ_NAMESRV_TLS=127.0.0.1:43876 RMQ_TLS_DIR=/tmp/rmq-tls/tls";
    let ns = std::env::var("RMQ_NAMESRV_TLS")
        .unwrap_or_else(|_| panic!("RMQ_NAMESRV_TLS is not set. {hint}"));
    let dir =
        std::env::var("RMQ_TLS_DIR").unwrap_or_else(|_| panic!("RMQ_TLS_DIR is not set. {hint}"));
    (ns, dir)
}

/// TLS on with the test CA and client certificate, without the keys in `without`, plus `extra`.
fn config(extra: &[(&str, &str)], without: &[&str]) -> Config {
    let (ns, dir) = tls_cluster();
    let base = [
        ("name-server", ns),
        ("instance-name", unique("tls")),
        ("client.api-timeout", "10000".to_string()),
        ("producer.send-message-timeout", "10000".to_string()),
        ("client.tls.enable", "true".to_string()),
        ("client.tls.ca-file", format!("{dir}/ca.pem")),
        ("client.tls.cert-file", format!("{dir}/client.pem")),
        ("client.tls.key-file", format!("{dir}/client.key")),
    ];
    let mut c = Config::new();
    for (k, v) in base.iter().filter(|(k, _)| !without.contains(k)) {
        c.set(k, v).unwrap();
    }
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

fn producer(extra: &[(&str, &str)], without: &[&str]) -> Producer {
    let mut c = config(extra, without);
    c.set("producer.group", &unique("RmqTlsProducer")).unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn send_error(extra: &[(&str, &str)], without: &[&str]) -> String {
    let p = producer(extra, without);
    let err = p
        .send_blocking(&Message::new(unique("RmqTlsTopic"), b"x".to_vec()))
        .unwrap_err();
    p.shutdown();
    err.to_string()
}

#[test]
fn a_verified_client_sends_and_consumes() {
    let topic = unique("RmqTlsTopic");
    let p = producer(&[], &[]);
    let mut sent = Vec::new();
    for i in 0..5 {
        let body = format!("tls-{i}");
        p.send_blocking(&Message::new(&topic, body.clone().into_bytes()))
            .unwrap();
        sent.push(body);
    }
    // the consumer checks the certificates against the name they carry instead of the IP
    let mut c = config(&[("client.tls.server-name", "localhost")], &[]);
    c.set("consumer.group", &unique("RmqTlsConsumer")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(&topic, "*").unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = Arc::clone(&seen);
    consumer
        .set_listener(move |msgs| {
            let mut s = s.lock().unwrap();
            for m in msgs {
                s.push(String::from_utf8_lossy(m.message.body()).into_owned());
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    let done = eventually(WITHIN, || {
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        got.dedup();
        (got == sent).then_some(())
    });
    assert!(done.is_some(), "consumed {:?}", seen.lock().unwrap());
    consumer.shutdown().unwrap();
    p.shutdown();
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let (_, dir) = tls_cluster();
    let text = send_error(
        &[("client.tls.ca-file", &format!("{dir}/other-ca.pem"))],
        &[],
    );
    assert!(
        text.contains("TLS handshake failed") && text.contains("client.tls.ca-file"),
        "{text}"
    );
}

#[test]
fn a_server_certificate_for_another_name_is_refused() {
    let text = send_error(&[("client.tls.server-name", "mq.example.com")], &[]);
    assert!(
        text.contains("TLS handshake failed") && text.contains("does not carry the name checked"),
        "{text}"
    );
}

#[test]
fn a_client_without_the_required_certificate_is_refused() {
    let text = send_error(&[], &["client.tls.cert-file", "client.tls.key-file"]);
    assert!(text.contains("client.tls.cert-file"), "{text}");
}

#[test]
fn the_test_only_opt_out_accepts_any_certificate() {
    let (_, dir) = tls_cluster();
    let p = producer(
        &[
            ("client.tls.ca-file", &format!("{dir}/other-ca.pem")),
            ("client.tls.insecure-skip-verify", "true"),
        ],
        &[],
    );
    p.send_blocking(&Message::new(unique("RmqTlsTopic"), b"x".to_vec()))
        .unwrap();
    p.shutdown();
}
