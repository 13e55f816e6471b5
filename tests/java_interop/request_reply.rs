//! Request-reply between rmq and the Java client 5.3.3, both ways: an rmq requester answered by
//! a Java responder (`MessageUtil.createReplyMessage` + `send`), and a Java requester
//! (`DefaultMQProducer.request`) answered by an rmq responder.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::common::request_reply::{producer, responder, PATIENT};
use super::common::{namesrv, unique};
use super::{decode_properties, hex_decode, java_bin, java_classpath, prop};
use rmq::Message;

const CLASS: &str = "rmq.interop.RequestReply";

#[test]
fn an_rmq_requester_gets_the_reply_of_a_java_responder() {
    let topic = unique("RustRequestsJava");
    let p = producer();
    // the topic exists before the Java consumer looks its route up
    p.send_blocking(&Message::new(&topic, "not a request"))
        .unwrap();
    let n = 3;
    let mut java = Command::new(java_bin())
        .arg("-cp")
        .arg(java_classpath())
        .args([
            CLASS,
            "respond",
            &namesrv(),
            &topic,
            &unique("JavaResponder"),
        ])
        .args([&n.to_string(), "90000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("java is required for the Java interop test");
    let mut lines = BufReader::new(java.stdout.take().unwrap()).lines();
    let first = lines.next().map(|l| l.unwrap());
    assert_eq!(
        first.as_deref(),
        Some("READY"),
        "Java responder did not start"
    );

    for i in 0..n {
        let body = format!("rust-q-{i}");
        let reply = p
            .request_blocking(&Message::new(&topic, body.clone()), PATIENT)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(reply.message.body()),
            format!("java: {body}")
        );
        assert_eq!(reply.message.property("MSG_TYPE"), Some("reply"));
        assert_eq!(
            reply.message.property("REPLY_TO_CLIENT"),
            p.client_id().as_deref()
        );
        assert_eq!(reply.message.property("TTL"), Some("30000"));
        let replied = lines.next().unwrap().unwrap();
        assert_eq!(
            replied,
            format!(
                "REPLIED\t{}",
                reply.message.property("CORRELATION_ID").unwrap()
            )
        );
    }
    assert!(java.wait().unwrap().success());
    p.shutdown();
}

#[test]
fn a_java_requester_gets_the_reply_of_an_rmq_responder() {
    let topic = unique("JavaRequestsRust");
    let (consumer, replier) = responder(&topic);
    let out = Command::new(java_bin())
        .arg("-cp")
        .arg(java_classpath())
        .args([
            CLASS,
            "request",
            &namesrv(),
            &topic,
            &unique("JavaRequester"),
        ])
        .args(["3", "30000"])
        .output()
        .expect("java is required for the Java interop test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Java requester failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut n = 0;
    for (i, line) in stdout.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            (f[0], f.len(), f[1]),
            ("REPLY", 4, &*i.to_string()),
            "{line}"
        );
        let body = String::from_utf8(hex_decode(f[2]).unwrap()).unwrap();
        assert_eq!(body, format!("re: java-q-{i}"));
        let props = decode_properties(&String::from_utf8(hex_decode(f[3]).unwrap()).unwrap());
        assert_eq!(prop(&props, "MSG_TYPE"), Some("reply"));
        assert_eq!(prop(&props, "TTL"), Some("30000"));
        assert!(prop(&props, "CORRELATION_ID").is_some());
        n += 1;
    }
    assert_eq!(n, 3, "{stdout}");
    consumer.shutdown().unwrap();
    replier.shutdown();
}
