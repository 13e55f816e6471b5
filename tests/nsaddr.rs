//! The name server list from an HTTP endpoint (`client.name-server-url`), served by a small HTTP
//! server in the test, pointing at the real cluster: looked up before the first send, then
//! periodically.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, namesrv, unique};
use rmq::{Config, Error, Message, Producer, SendStatus};

/// Serves GET /rocketmq/nsaddr with the current `body` (404 for other paths), counting lookups.
fn lookup_server(body: Arc<Mutex<String>>) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rocketmq/nsaddr", l.local_addr().unwrap());
    let lookups = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&lookups);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let response = if request_line.starts_with("GET /rocketmq/nsaddr HTTP/1.1") {
                count.fetch_add(1, SeqCst);
                let body = body.lock().unwrap().clone();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = s.write_all(response.as_bytes());
        }
    });
    (url, lookups)
}

fn producer(url: &str, group: &str) -> Producer {
    let mut c = Config::new();
    c.set("client.name-server-url", url).unwrap();
    c.set("client.name-server-url-poll-interval", "100")
        .unwrap();
    c.set("instance-name", group).unwrap();
    c.set("producer.group", group).unwrap();
    c.set("producer.send-message-timeout", "2000").unwrap();
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

#[test]
fn the_name_servers_come_from_the_lookup_url_and_follow_it() {
    let body = Arc::new(Mutex::new(format!("{}\n", namesrv())));
    let (url, lookups) = lookup_server(Arc::clone(&body));
    let p = producer(&url, &unique("NsLookupGroup"));
    let topic = unique("NsLookup");
    let r = p
        .send_blocking(&Message::new(&topic, "via lookup"))
        .unwrap();
    assert_eq!(r.status, SendStatus::SendOk);
    assert!(lookups.load(SeqCst) >= 1);
    let instance = p.instance().unwrap();
    assert_eq!(*instance.name_server_addrs(), vec![namesrv()]);

    // The endpoint now lists a dead name server first: the periodic lookup picks it up, and
    // route queries fail over to the live one.
    let changed = format!("127.0.0.1:1;{}", namesrv());
    *body.lock().unwrap() = changed.clone();
    let expected: Vec<String> = changed.split(';').map(str::to_string).collect();
    eventually(Duration::from_secs(10), || {
        (*instance.name_server_addrs() == expected).then_some(())
    })
    .expect("the periodic lookup replaces the list");
    let r = p.send_blocking(&Message::new(&topic, "after")).unwrap();
    assert_eq!(r.status, SendStatus::SendOk);

    // An empty answer keeps the list in use.
    let seen = lookups.load(SeqCst);
    body.lock().unwrap().clear();
    eventually(Duration::from_secs(10), || {
        (lookups.load(SeqCst) > seen + 1).then_some(())
    })
    .expect("lookups go on");
    assert_eq!(*instance.name_server_addrs(), expected);
    p.shutdown();
}

#[test]
fn a_failing_lookup_without_name_servers_fails_the_send_clearly() {
    let (url, _) = lookup_server(Arc::new(Mutex::new(String::new())));
    let missing = url.replace("/rocketmq/nsaddr", "/nothing/here");
    let p = producer(&missing, &unique("NsLookupMissingGroup"));
    let err = p
        .send_blocking(&Message::new(unique("NsLookupMissing"), "x"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ref m) if m.contains("404")),
        "{err}"
    );
    p.shutdown();

    let mut c = Config::new();
    assert!(c.set("client.name-server-url", "https://h/x").is_err());
    c.set("producer.group", "G").unwrap();
    assert!(
        c.producer_config().is_err(),
        "neither name-server nor a lookup URL"
    );
}
