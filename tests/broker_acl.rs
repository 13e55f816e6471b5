//! ACL against real brokers that enforce it: one cluster with ACL 1.0 accounts (plain_acl.yml)
//! and one with ACL 2.0 users and ACLs made through the admin API (see scripts/rocketmq-local.sh,
//! RMQ_ACL). A signed client sends and consumes; a wrong secret, a missing permission and an
//! unsigned client each fail with an error that names the cause.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, unique};
use rmq::{Config, ConsumeResult, Message, Producer, PushConsumer};

const WITHIN: Duration = Duration::from_secs(60);
const APP: (&str, &str) = ("rmq-app", "rmq-app-secret");

fn acl_namesrvs() -> Vec<(String, String)> {
    let hint = "The ACL tests need two clusters that enforce ACL: run them with `make test`, or \
                start them with `RMQ_VERSION=4.9.7 RMQ_ACL=1 RMQ_NAMESRV_PORT=41876 RMQ_BROKER_PORT=41911 \
                RMQ_DATA=/tmp/rmq-acl1 scripts/rocketmq-local.sh up` and the same with RMQ_ACL=2 \
                on 42876/42911, and set RMQ_NAMESRV_ACL1=127.0.0.1:41876 \
                RMQ_NAMESRV_ACL2=127.0.0.1:42876";
    ["RMQ_NAMESRV_ACL1", "RMQ_NAMESRV_ACL2"]
        .iter()
        .map(|v| {
            let ns = std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set. {hint}"));
            (v.to_string(), ns)
        })
        .collect()
}

fn config(ns: &str, credentials: Option<(&str, &str)>) -> Config {
    let mut c = Config::new();
    c.set("name-server", ns).unwrap();
    c.set("client.api-timeout", "10000").unwrap();
    c.set("producer.send-message-timeout", "10000").unwrap();
    if let Some((ak, sk)) = credentials {
        c.set("client.access-key", ak).unwrap();
        c.set("client.secret-key", sk).unwrap();
    }
    c
}

fn producer(ns: &str, credentials: Option<(&str, &str)>) -> Producer {
    let mut c = config(ns, credentials);
    c.set("producer.group", &unique("RmqAclProducer")).unwrap();
    // Clients of one process with the same access key share an instance only with the same
    // secret: these use other secrets.
    c.set("instance-name", &unique("acl")).unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn a_signed_client_sends_and_consumes() {
    for (which, ns) in acl_namesrvs() {
        let topic = unique("RmqAclTopic");
        let p = producer(&ns, Some(APP));
        let mut sent = Vec::new();
        for i in 0..5 {
            let body = format!("acl-{i}");
            let r = p
                .send_blocking(&Message::new(&topic, body.clone().into_bytes()))
                .unwrap_or_else(|e| panic!("{which}: signed send failed: {e}"));
            assert!(!r.msg_id.is_empty());
            sent.push(body);
        }
        let mut c = config(&ns, Some(APP));
        c.set("consumer.group", &unique("RmqAclConsumer")).unwrap();
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
        assert!(
            done.is_some(),
            "{which}: consumed {:?}, sent {sent:?}",
            seen.lock().unwrap()
        );
        consumer.shutdown().unwrap();
        p.shutdown();
    }
}

#[test]
fn a_wrong_secret_is_refused_as_such() {
    for (which, ns) in acl_namesrvs() {
        let p = producer(&ns, Some((APP.0, "not-the-secret")));
        let err = p
            .send_blocking(&Message::new(unique("RmqAclTopic"), b"x".to_vec()))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("signature") && text.contains("client.secret-key"),
            "{which}: {text}"
        );
        p.shutdown();
    }
}

#[test]
fn an_unknown_user_and_an_unsigned_client_are_refused_as_such() {
    for (which, ns) in acl_namesrvs() {
        let p = producer(&ns, Some(("rmq-nobody", "whatever")));
        let err = p
            .send_blocking(&Message::new(unique("RmqAclTopic"), b"x".to_vec()))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("rmq-nobody") || text.contains("user not found"),
            "{which}: {text}"
        );
        p.shutdown();
        let p = producer(&ns, None);
        let err = p
            .send_blocking(&Message::new(unique("RmqAclTopic"), b"x".to_vec()))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("client.access-key"), "{which}: {text}");
        p.shutdown();
    }
}

#[test]
fn a_missing_permission_is_refused_as_such() {
    for (which, ns) in acl_namesrvs() {
        let p = producer(&ns, Some(APP));
        let err = p
            .send_blocking(&Message::new("RmqNoPermTopic", b"x".to_vec()))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("RmqNoPermTopic") && text.contains("lacks this right"),
            "{which}: {text}"
        );
        p.shutdown();
    }
}
