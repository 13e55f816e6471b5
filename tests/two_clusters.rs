//! Two producers in ONE process, pointed at two different real clusters (name server 1 with its
//! broker, name server 2 with another broker under another broker name), with the same producer
//! group and the same `instance-name` on purpose: they have the same client id, so only their
//! name servers tell them apart. Every message must land on the broker of its own producer's
//! cluster, whatever client instances the library shares behind the producers.
//!
//! Needs RMQ_NAMESRV and RMQ_NAMESRV_2 (`make test` starts both clusters).
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, namesrv, second_namesrv, unique};
use rmq::{Config, Error, Message, Producer, SendResult, SendStatus};

/// What a cluster's name server itself says about its broker: the expectation every send result
/// is checked against.
#[derive(Debug, Clone, PartialEq)]
struct Cluster {
    namesrv: String,
    broker_name: String,
    broker_addr: SocketAddr,
}

/// Asks a name server which brokers it knows (GET_BROKER_CLUSTER_INFO, request code 106) on a
/// plain TCP connection, so the expectation does not come from the client under test.
fn registered_brokers(namesrv: &str) -> Vec<(String, SocketAddr)> {
    let mut conn = TcpStream::connect(namesrv)
        .unwrap_or_else(|e| panic!("no name server accepts connections at {namesrv}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header =
        br#"{"code":106,"flag":0,"language":"OTHER","opaque":1,"serializeTypeCurrentRPC":"JSON","version":0}"#;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(4 + header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes()); // top byte 0: JSON header
    frame.extend_from_slice(header);
    conn.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut reply).unwrap();
    let header_len = (u32::from_be_bytes(reply[..4].try_into().unwrap()) & 0xFF_FFFF) as usize;
    let header = String::from_utf8_lossy(&reply[4..4 + header_len]);
    assert!(
        header.contains(r#""code":0"#),
        "{namesrv} answered the cluster-info request with {header}"
    );
    // fastjson body, not strict JSON:
    // {"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a",...
    let body = String::from_utf8_lossy(&reply[4 + header_len..]);
    let quoted_after = |s: &str, marker: &str| -> String {
        let from = s.find(marker).expect(marker) + marker.len();
        s[from..from + s[from..].find('"').unwrap()].to_string()
    };
    body.split(r#""brokerAddrs":{"#)
        .skip(1)
        .map(|entry| {
            let master = quoted_after(entry, r#"0:""#);
            let name = quoted_after(entry, r#""brokerName":""#);
            (name, master.parse().expect("broker address is ip:port"))
        })
        .collect()
}

fn cluster(namesrv: String) -> Cluster {
    let brokers = eventually(Duration::from_secs(30), || {
        let b = registered_brokers(&namesrv);
        (!b.is_empty()).then_some(b)
    })
    .unwrap_or_else(|| panic!("no broker is registered at the name server {namesrv}"));
    assert_eq!(
        brokers.len(),
        1,
        "the cluster of {namesrv} should have exactly one broker: {brokers:?}"
    );
    let (broker_name, broker_addr) = brokers.into_iter().next().unwrap();
    Cluster {
        namesrv,
        broker_name,
        broker_addr,
    }
}

/// Both clusters, checked to be told apart by broker name and by broker address.
fn both_clusters() -> (Cluster, Cluster) {
    let (first, second) = (cluster(namesrv()), cluster(second_namesrv()));
    assert_ne!(
        first.namesrv, second.namesrv,
        "RMQ_NAMESRV and RMQ_NAMESRV_2 must be two different clusters"
    );
    assert_ne!(
        first.broker_name, second.broker_name,
        "the two clusters must have different broker names (start the second one with \
         RMQ_BROKER_NAME=broker-b) or this test cannot tell where a message went"
    );
    assert_ne!(first.broker_addr, second.broker_addr);
    (first, second)
}

/// A started producer for `cluster`, built from configuration keys like the C, Python and Go
/// callers do. Twin producers get the same `group` and `instance_name`.
fn producer_for(cluster: &Cluster, group: &str, instance_name: &str) -> Producer {
    let mut config = Config::new();
    config.set("name-server", &cluster.namesrv).unwrap();
    config.set("producer.group", group).unwrap();
    config.set("instance-name", instance_name).unwrap();
    let p = Producer::new(config.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// P1 on the first cluster and P2 on the second: same group, same instance name, so the same
/// client id.
fn same_named_producers(label: &str) -> (Producer, Producer, Cluster, Cluster) {
    let (first, second) = both_clusters();
    let group = unique(&format!("TwoClusters{label}Group"));
    let instance_name = unique(&format!("TwoClusters{label}Instance"));
    let p1 = producer_for(&first, &group, &instance_name);
    let p2 = producer_for(&second, &group, &instance_name);
    eprintln!(
        "P1 {:?} -> {}, P2 {:?} -> {}",
        p1.client_id(),
        first.namesrv,
        p2.client_id(),
        second.namesrv
    );
    (p1, p2, first, second)
}

/// The store address named by an offset message id: 32 hex digits, IPv4 (4 bytes), port
/// (int32) and commit log offset (int64), big-endian.
fn store_addr_of(offset_msg_id: &str) -> SocketAddr {
    assert_eq!(
        offset_msg_id.len(),
        32,
        "'{offset_msg_id}' is not an IPv4 offset message id"
    );
    let byte = |i: usize| u8::from_str_radix(&offset_msg_id[2 * i..2 * i + 2], 16).unwrap();
    let ip = Ipv4Addr::new(byte(0), byte(1), byte(2), byte(3));
    let port = u32::from_be_bytes([byte(4), byte(5), byte(6), byte(7)]);
    SocketAddrV4::new(ip, u16::try_from(port).expect("port fits 16 bits")).into()
}

fn message(topic: &str, body: String, key: &str) -> Message {
    let mut m = Message::new(topic, body);
    m.set_keys(key).unwrap();
    m
}

/// The send went to `cluster`'s broker, and reading it back there gives what was sent.
fn assert_stored_in(
    cluster: &Cluster,
    producer: &Producer,
    sent: &Message,
    result: &SendResult,
    who: &str,
) {
    assert_eq!(result.status, SendStatus::SendOk);
    assert_eq!(
        &*result.queue.broker_name,
        cluster.broker_name.as_str(),
        "{who}'s send went to broker {} instead of its own cluster's {} ({})",
        result.queue.broker_name,
        cluster.broker_name,
        cluster.namesrv
    );
    assert_eq!(
        store_addr_of(&result.offset_msg_id),
        cluster.broker_addr,
        "{who}'s message {} is stored outside its own cluster's broker",
        result.offset_msg_id
    );
    let stored = producer
        .view_message_blocking(&result.offset_msg_id)
        .unwrap();
    assert_eq!(stored.message.body(), sent.body(), "{who}: body read back");
    assert_eq!(stored.message.topic(), sent.topic());
    assert_eq!(stored.store_host, cluster.broker_addr);
    assert_eq!(stored.msg_id(), result.msg_id);
}

/// Messages with `key` that `producer` finds through its own name server's route.
fn found_by_key(producer: &Producer, topic: &str, key: &str) -> Vec<String> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let begin = now_ms - 60_000;
    producer
        .query_message_blocking(topic, key, 32, begin, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|m| m.offset_msg_id)
        .collect()
}

#[test]
fn same_named_producers_on_two_clusters_each_send_to_their_own_broker() {
    let (p1, p2, first, second) = same_named_producers("Sync");
    let topic = unique("TwoClustersSync"); // the same topic name on both clusters
    let mut last = Vec::new();
    for i in 0..5 {
        for (who, p, cluster) in [("P1", &p1, &first), ("P2", &p2, &second)] {
            let key = unique(&format!("{who}-key-{i}"));
            let msg = message(&topic, format!("{who} sync {i}"), &key);
            let r = p.send_blocking(&msg).unwrap();
            assert_stored_in(cluster, p, &msg, &r, who);
            if i == 4 {
                last.push((who, key, r.offset_msg_id));
            }
        }
    }
    // Reading by offset message id would NOT show separation: the id carries the broker's
    // address and is read from that broker directly, whatever the producer's name server. A key
    // query goes through the producer's own name server's route, so it shows which brokers a
    // producer reaches: its own cluster's, and only those.
    let (p1_key, p1_id) = (&last[0].1, &last[0].2);
    let (p2_key, p2_id) = (&last[1].1, &last[1].2);
    let within = Duration::from_secs(10);
    let found = eventually(within, || {
        Some(found_by_key(&p1, &topic, p1_key)).filter(|v| !v.is_empty())
    });
    assert_eq!(found, Some(vec![p1_id.clone()]), "P1 finds its own message");
    let found = eventually(within, || {
        Some(found_by_key(&p2, &topic, p2_key)).filter(|v| !v.is_empty())
    });
    assert_eq!(found, Some(vec![p2_id.clone()]), "P2 finds its own message");
    // both keys are indexed by now, each on its own broker only
    assert!(
        found_by_key(&p2, &topic, p1_key).is_empty(),
        "P2 must not reach P1's cluster"
    );
    assert!(
        found_by_key(&p1, &topic, p2_key).is_empty(),
        "P1 must not reach P2's cluster"
    );
    p1.shutdown();
    p2.shutdown();
}

#[test]
fn interleaved_async_sends_of_same_named_producers_stay_in_their_clusters() {
    let (p1, p2, first, second) = same_named_producers("Async");
    let topic = unique("TwoClustersAsync");
    let producers = [(&p1, &first), (&p2, &second)];
    let (tx, rx) = mpsc::channel();
    let n = 20;
    let mut sent = Vec::new();
    for i in 0..n {
        let (p, _) = producers[i % 2];
        let msg = message(&topic, format!("P{} async {i}", i % 2 + 1), "async");
        let tx = tx.clone();
        p.send_with_callback(&msg, move |r| tx.send((i, r)).unwrap())
            .unwrap();
        sent.push(msg);
    }
    for _ in 0..n {
        let (i, r) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("every callback runs");
        let (p, cluster) = producers[i % 2];
        let who = format!("P{}", i % 2 + 1);
        assert_stored_in(cluster, p, &sent[i], &r.unwrap(), &who);
    }
    p1.shutdown();
    p2.shutdown();
}

#[test]
fn shutting_down_one_same_named_producer_leaves_the_other_sending() {
    let (p1, p2, first, second) = same_named_producers("Shutdown");
    let topic = unique("TwoClustersShutdown");
    for (who, p, cluster) in [("P1", &p1, &first), ("P2", &p2, &second)] {
        let msg = message(&topic, format!("{who} before"), "before");
        assert_stored_in(cluster, p, &msg, &p.send_blocking(&msg).unwrap(), who);
    }
    p1.shutdown();
    let after = message(&topic, "after P1 shut down".into(), "after");
    assert!(matches!(
        p1.send_blocking(&after),
        Err(Error::InvalidState(_))
    ));
    for i in 0..3 {
        let msg = message(&topic, format!("P2 after P1 shut down {i}"), "after");
        let r = p2.send_blocking(&msg).unwrap();
        assert_stored_in(&second, &p2, &msg, &r, "P2");
    }
    let (tx, rx) = mpsc::channel();
    p2.send_with_callback(&after, move |r| tx.send(r).unwrap())
        .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
    assert_stored_in(&second, &p2, &after, &r, "P2 (async)");
    p2.shutdown();
}
