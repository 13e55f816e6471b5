//! The consumer's fallback when CONSUMER_SEND_MSG_BACK fails, against the real broker: the
//! consumer reaches the broker through a proxy that refuses every send-back (and a name-server
//! proxy that points the routes at it), so each failed message is resent as a new message to
//! `%RETRY%<group>`. That resend must carry the reconsume count in the send header, or the broker
//! stores it as a first delivery again and never moves it to `%DLQ%<group>`.
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::{eventually, namesrv, unique};
use rmq::protocol::code::{request, response};
use rmq::remoting::codec::{decode_frame, encode_frame};
use rmq::remoting::command::{RemotingCommand, SerializeType};
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WITHIN: Duration = Duration::from_secs(120);

async fn read_frame(r: &mut OwnedReadHalf, buf: &mut BytesMut) -> Option<RemotingCommand> {
    loop {
        if let Some(cmd) = decode_frame(buf).ok()? {
            return Some(cmd);
        }
        if r.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Writes every command it is given, in order, until the senders are gone.
fn writer(mut w: OwnedWriteHalf) -> mpsc::UnboundedSender<RemotingCommand> {
    let (tx, mut rx) = mpsc::unbounded_channel::<RemotingCommand>();
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            let frame = encode_frame(&cmd, SerializeType::Json).unwrap();
            if w.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    tx
}

fn listen() -> TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    TcpListener::from_std(l).unwrap()
}

/// A broker proxy: every frame passes both ways, except CONSUMER_SEND_MSG_BACK, which it answers
/// itself with SYSTEM_ERROR (counted in `refused`).
fn broker_proxy(real: String, refused: Arc<AtomicUsize>) -> String {
    let l = listen();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let (real, refused) = (real.clone(), Arc::clone(&refused));
            tokio::spawn(async move {
                let Ok(broker) = TcpStream::connect(&real).await else {
                    return;
                };
                let (mut crd, cwr) = client.into_split();
                let (mut brd, bwr) = broker.into_split();
                let (to_client, to_broker) = (writer(cwr), writer(bwr));
                let back = to_client.clone();
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    while let Some(cmd) = read_frame(&mut brd, &mut buf).await {
                        if back.send(cmd).is_err() {
                            return;
                        }
                    }
                });
                let mut buf = BytesMut::new();
                while let Some(cmd) = read_frame(&mut crd, &mut buf).await {
                    let sent = if !cmd.is_response() && cmd.code == request::CONSUMER_SEND_MSG_BACK
                    {
                        refused.fetch_add(1, Ordering::SeqCst);
                        to_client.send(RemotingCommand::response_to(
                            &cmd,
                            response::SYSTEM_ERROR,
                            Some("send-back refused by the test proxy".into()),
                        ))
                    } else {
                        to_broker.send(cmd)
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A name-server proxy: forwards each request to the real name server and rewrites the broker
/// addresses of route answers to broker proxies (one per real broker address).
fn name_server_proxy(real: String, refused: Arc<AtomicUsize>) -> String {
    let _rt = rmq::runtime::handle().enter();
    let l = listen();
    let addr = l.local_addr().unwrap().to_string();
    let proxies: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let (real, refused, proxies) =
                (real.clone(), Arc::clone(&refused), Arc::clone(&proxies));
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(&real).await else {
                    return;
                };
                let (mut crd, cwr) = client.into_split();
                let (mut urd, uwr) = upstream.into_split();
                let (to_client, to_ns) = (writer(cwr), writer(uwr));
                let (mut cbuf, mut ubuf) = (BytesMut::new(), BytesMut::new());
                while let Some(req) = read_frame(&mut crd, &mut cbuf).await {
                    let oneway = req.is_oneway();
                    let code = req.code;
                    if to_ns.send(req).is_err() {
                        return;
                    }
                    if oneway {
                        continue;
                    }
                    let Some(mut resp) = read_frame(&mut urd, &mut ubuf).await else {
                        return;
                    };
                    if code == request::GET_ROUTEINFO_BY_TOPIC
                        && resp.code == response::SUCCESS
                        && !resp.body.is_empty()
                    {
                        let mut route: serde_json::Value =
                            serde_json::from_slice(&resp.body).unwrap();
                        for bd in route["brokerDatas"].as_array_mut().unwrap() {
                            for a in bd["brokerAddrs"].as_object_mut().unwrap().values_mut() {
                                let real = a.as_str().unwrap().to_string();
                                let proxy = proxies
                                    .lock()
                                    .unwrap()
                                    .entry(real.clone())
                                    .or_insert_with(|| {
                                        broker_proxy(real.clone(), Arc::clone(&refused))
                                    })
                                    .clone();
                                *a = serde_json::Value::String(proxy);
                            }
                        }
                        resp.body = serde_json::to_vec(&route).unwrap().into();
                    }
                    if to_client.send(resp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn consumer(ns: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> PushConsumer {
    let mut c = Config::new();
    c.set("name-server", ns).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("fallback")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let c = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    c.subscribe(topic, "*").unwrap();
    c
}

type Attempts = Arc<Mutex<HashMap<String, Vec<i32>>>>;

fn record(a: &Attempts, m: &rmq::MessageExt) {
    a.lock()
        .unwrap()
        .entry(String::from_utf8_lossy(m.message.body()).into_owned())
        .or_default()
        .push(m.reconsume_times);
}

#[test]
fn a_refused_send_back_is_resent_with_its_count_and_reaches_the_dlq() {
    let refused = Arc::new(AtomicUsize::new(0));
    let ns = name_server_proxy(namesrv(), Arc::clone(&refused));
    let topic = unique("RustFallback");
    let group = unique("RustFallbackGroup");
    let p =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustFallbackP")).unwrap()).unwrap();
    p.start().unwrap();
    let sent: HashSet<String> = (0..3)
        .map(|i| {
            let body = format!("f-{i}");
            p.send_blocking(&Message::new(&topic, body.clone().into_bytes()))
                .unwrap();
            body
        })
        .collect();

    // Max 2 reconsumes: deliveries 0, 1 and 2 fail, then the broker must route the third resend
    // (reconsume count 3 > 2) to the DLQ. 4.x brokers already route a resend whose count
    // reaches the max (2 >= 2) to the DLQ, so there the last delivery is 1.
    let max = 2;
    let last = if common::broker_major() == 4 {
        max - 1
    } else {
        max
    };
    let c = consumer(
        &ns,
        &group,
        &topic,
        &[("consumer.max-reconsume-times", "2")],
    );
    let attempts: Attempts = Arc::default();
    let a = Arc::clone(&attempts);
    c.set_listener(move |msgs| {
        for m in msgs {
            record(&a, m);
        }
        // Level 1 is the broker's 1 s delay, so the retries come back quickly.
        ConsumeResult::ReconsumeLater { delay_level: 1 }
    })
    .unwrap();
    c.start().unwrap();
    let want: Vec<i32> = (0..=last).collect();
    eventually(WITHIN, || {
        let a = attempts.lock().unwrap();
        (a.len() == sent.len() && a.values().all(|v| want.iter().all(|t| v.contains(t))))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "each message delivered with reconsume counts 0..={last}: {:?}",
            attempts.lock().unwrap()
        )
    });

    // The DLQ, read through the real name server by another group, holds every message with the
    // count of the resend that put it there.
    let dlq = format!("%DLQ%{group}");
    let d = consumer(&namesrv(), &unique("RustFallbackDlqReader"), &dlq, &[]);
    let dead: Attempts = Arc::default();
    let dd = Arc::clone(&dead);
    d.set_listener(move |msgs| {
        for m in msgs {
            record(&dd, m);
        }
        ConsumeResult::Success
    })
    .unwrap();
    d.start().unwrap();
    eventually(WITHIN, || {
        let keys: HashSet<String> = dead.lock().unwrap().keys().cloned().collect();
        (keys == sent).then_some(())
    })
    .unwrap_or_else(|| panic!("DLQ holds {:?}", dead.lock().unwrap()));
    d.shutdown().unwrap();
    c.shutdown().unwrap();

    let dead = dead.lock().unwrap();
    assert!(
        dead.values().flatten().all(|t| *t == last + 1),
        "DLQ copies carry the count of the resend that exceeded the max: {dead:?}"
    );
    let a = attempts.lock().unwrap();
    assert!(
        a.values().flatten().all(|t| *t <= last),
        "no delivery after the DLQ: {a:?}"
    );
    // Every failed delivery went through the fallback: the proxy refused each send-back.
    let n = refused.load(Ordering::SeqCst);
    assert!(
        n >= sent.len() * (last as usize + 1),
        "send-backs refused: {n}"
    );
}
