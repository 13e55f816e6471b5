//! Captures the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from a real cluster:
//! the frames a client reads from the name server and the broker, byte for byte as they came
//! off the socket, and the parts of them each decoder sees (headers, route bodies, stored
//! records, requests the broker starts).
//!
//! `cargo run --release --example capture_fuzz_seeds -- NAMESRV OUTDIR` (e.g.
//! `127.0.0.1:9876 fuzz/seeds`). It sends a few messages (plain, zlib, lz4, zstd, a batch) with
//! the producer, then speaks the protocol over plain sockets: route queries in both header
//! encodings and in the older fastjson dialect, pulls of the stored messages, views by offset,
//! consumer lists, heartbeats, and a second consumer joining a group so the broker sends the
//! first one NOTIFY_CONSUMER_IDS_CHANGED. Records with IPv6 hosts are derived from captured
//! IPv4 records (same bytes, hosts widened and the sysFlag bits set), since the capture runs on
//! the IPv4 loopback; and brokers answer in JSON, so each reply is also kept re-encoded with the
//! binary (ROCKETMQ) header.
use std::borrow::Cow::Borrowed;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rmq::config::{self, Config};
use rmq::protocol::code::request;
use rmq::protocol::consumer::{self as req, PullRequest};
use rmq::protocol::header;
use rmq::protocol::route::TopicRouteData;
use rmq::remoting::codec::encode_frame;
use rmq::remoting::command::LanguageCode;
use rmq::remoting::{RemotingCommand, SerializeType};
use rmq::{Message, MessageQueue, Producer};

struct Seeds {
    dir: PathBuf,
    count: usize,
}

impl Seeds {
    fn save(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        self.count += 1;
    }

    /// A whole frame as read, plus its header for the header target of its encoding.
    fn frame(&mut self, name: &str, raw: &[u8]) {
        self.save("frame", name, raw);
        let field = u32::from_be_bytes(raw[4..8].try_into().unwrap());
        let header = &raw[8..8 + (field & 0xFF_FFFF) as usize];
        match field >> 24 {
            0 => {
                self.save("json_header", name, header);
                // Brokers answer in JSON; the same reply in the binary encoding, as a peer
                // configured for it would send it.
                let binary = encode_frame(&decode(raw), SerializeType::RocketMq).unwrap();
                self.save("frame", &format!("{name}_as_rocketmq"), &binary);
                let len = u32::from_be_bytes(binary[4..8].try_into().unwrap()) & 0xFF_FFFF;
                self.save("binary_header", name, &binary[8..8 + len as usize]);
            }
            _ => self.save("binary_header", name, header),
        }
    }
}

/// A plain blocking connection that keeps every frame it reads.
struct Conn {
    stream: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn { stream }
    }

    fn send(&mut self, cmd: &RemotingCommand, ser: SerializeType) {
        self.stream
            .write_all(&encode_frame(cmd, ser).unwrap())
            .unwrap();
    }

    /// The next frame, length prefix included; None on timeout.
    fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut raw = len.to_vec();
        raw.resize(4 + u32::from_be_bytes(len) as usize, 0);
        self.stream.read_exact(&mut raw[4..]).unwrap();
        Some(raw)
    }

    /// Sends `cmd` and returns the raw reply, and the decoded one.
    fn call(&mut self, cmd: &RemotingCommand, ser: SerializeType) -> (Vec<u8>, RemotingCommand) {
        self.send(cmd, ser);
        loop {
            let raw = self.read_frame().expect("reply");
            let decoded = decode(&raw);
            if decoded.is_response() && decoded.opaque == cmd.opaque {
                return (raw, decoded);
            }
        }
    }
}

fn decode(raw: &[u8]) -> RemotingCommand {
    rmq::remoting::codec::decode_frame(&mut BytesMut::from(raw))
        .unwrap()
        .unwrap()
}

fn producer(namesrv: &str, group: &str, extra: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set(config::NAME_SERVER, namesrv).unwrap();
    c.set(config::PRODUCER_GROUP, group).unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

fn message(topic: &str, body: Vec<u8>, i: usize) -> Message {
    let mut m = Message::new(topic, body);
    m.set_tags("TagSeed").unwrap();
    m.set_key_list(&[format!("seed-key-{i}")]).unwrap();
    m.put_user_property("color", "green").unwrap();
    m
}

fn text(n: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog; "
        .iter()
        .cycle()
        .take(n)
        .copied()
        .collect()
}

/// The same record with both hosts as IPv6 addresses (sysFlag 0x10 and 0x20 set).
fn widen_hosts(record: &[u8]) -> Vec<u8> {
    let sys_flag_at = 4 * 5 + 8 * 2;
    let born_host_at = sys_flag_at + 4 + 8;
    let store_host_at = born_host_at + 8 + 8;
    let mut out = record[..born_host_at].to_vec();
    let v6 = |ip: &[u8]| {
        let mut a = vec![0u8; 16];
        a[0] = 0xfd;
        a[12..].copy_from_slice(ip);
        a
    };
    out.extend(v6(&record[born_host_at..born_host_at + 4]));
    out.extend_from_slice(&record[born_host_at + 4..store_host_at]);
    out.extend(v6(&record[store_host_at..store_host_at + 4]));
    out.extend_from_slice(&record[store_host_at + 4..]);
    let total = out.len() as i32;
    out[0..4].copy_from_slice(&total.to_be_bytes());
    let flag = i32::from_be_bytes(out[sys_flag_at..sys_flag_at + 4].try_into().unwrap()) | 0x30;
    out[sys_flag_at..sys_flag_at + 4].copy_from_slice(&flag.to_be_bytes());
    out
}

/// Splits a pull body into its records.
fn records(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let n = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn heartbeat_consumer(client_id: &str, group: &str, topic: &str) -> RemotingCommand {
    let data = serde_json::json!({
        "groupName": group,
        "consumeType": "CONSUME_PASSIVELY",
        "messageModel": "CLUSTERING",
        "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
        "subscriptionDataSet": [{
            "classFilterMode": false, "topic": topic, "subString": "*", "tagsSet": [],
            "codeSet": [], "subVersion": 1, "expressionType": "TAG"
        }],
        "unitMode": false
    });
    header::heartbeat(client_id, &[], &[data])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (namesrv, out) = match &args[..] {
        [_, n, o] => (n.clone(), PathBuf::from(o)),
        _ => {
            eprintln!("usage: capture_fuzz_seeds NAMESRV OUTDIR");
            std::process::exit(2);
        }
    };
    let mut seeds = Seeds { dir: out, count: 0 };
    let stamp = rmq::protocol::ids::now_ms();
    let topic = format!("FuzzSeed{stamp}");
    let group = format!("FuzzSeedGroup{stamp}");

    // Stored messages of every shape, all in one queue so one pull reads them back to back.
    let plain = producer(&namesrv, &format!("{group}P"), &[]);
    let first = plain
        .send_blocking(&message(&topic, b"hello".to_vec(), 0))
        .unwrap();
    let mq: MessageQueue = first.queue.clone();
    let mut offsets = vec![(first.queue_offset, "plain")];
    for (i, codec) in ["zlib", "lz4", "zstd"].into_iter().enumerate() {
        let p = producer(
            &namesrv,
            &format!("{group}{codec}"),
            &[
                (config::COMPRESS_TYPE, codec),
                (config::COMPRESS_MESSAGE_BODY_THRESHOLD, "64"),
            ],
        );
        let prepared = p.prepare(&message(&topic, text(600), i + 1)).unwrap();
        let r = p
            .send_prepared_to_queue_blocking(&prepared, mq.clone())
            .unwrap();
        offsets.push((r.queue_offset, codec));
        p.shutdown();
    }
    let batch: Vec<Message> = (0..3)
        .map(|i| message(&topic, format!("batch body {i}").into_bytes(), 10 + i))
        .collect();
    let prepared = plain.prepare_batch(&batch).unwrap();
    let r = plain
        .send_prepared_to_queue_blocking(&prepared, mq.clone())
        .unwrap();
    offsets.push((r.queue_offset, "batch"));

    // Name server: route queries as the client sends them (JSON and ROCKETMQ headers), in the
    // fastjson dialect an old client version gets, and for a topic that does not exist.
    let mut ns = Conn::open(&namesrv);
    let (raw, resp) = ns.call(&header::get_route_info(&topic), SerializeType::Json);
    seeds.frame("route_reply_json", &raw);
    seeds.save("route", "route_standard.json", &resp.body);
    let route = TopicRouteData::from_json(&resp.body).unwrap();
    let broker_addr = route
        .broker(&mq.broker_name)
        .and_then(|b| b.master_addr())
        .unwrap()
        .to_string();
    let (raw, _) = ns.call(&header::get_route_info(&topic), SerializeType::RocketMq);
    seeds.frame("route_reply_to_rocketmq", &raw);
    let mut old = RemotingCommand::request(
        request::GET_ROUTEINFO_BY_TOPIC,
        vec![(Borrowed("topic"), topic.clone())],
    );
    old.version = 399;
    old.language = LanguageCode::JAVA;
    let (raw, resp) = ns.call(&old, SerializeType::Json);
    seeds.frame("route_reply_fastjson", &raw);
    seeds.save("route", "route_fastjson.json", &resp.body);
    let (raw, resp) = ns.call(&header::get_route_info("TBW102"), SerializeType::Json);
    seeds.frame("route_reply_tbw102", &raw);
    seeds.save("route", "route_tbw102.json", &resp.body);
    let (raw, _) = ns.call(
        &header::get_route_info(&format!("NoSuchTopic{stamp}")),
        SerializeType::RocketMq,
    );
    seeds.frame("route_reply_not_exist", &raw);

    // Broker: send replies, pulls, views, offsets, consumer lists.
    let mut broker = Conn::open(&broker_addr);
    // The group must be known to the broker before it serves pulls.
    let (raw, _) = broker.call(
        &heartbeat_consumer(&format!("seed@{stamp}"), &group, &topic),
        SerializeType::Json,
    );
    seeds.frame("heartbeat_reply", &raw);
    let raw_msg = message(&topic, b"raw send".to_vec(), 20);
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let send = header::send_message_v2(
            header::SendMessageHeader {
                producer_group: group.as_str().into(),
                topic: topic.as_str().into(),
                queue_id: mq.queue_id,
                sys_flag: 0,
                born_timestamp: stamp,
                flag: 0,
                properties: rmq::protocol::message::encode_properties(raw_msg.properties()).into(),
                broker_name: mq.broker_name.as_ref().into(),
                batch: false,
                reconsume_times: 0,
                max_reconsume_times: None,
                reply: false,
            },
            Bytes::from_static(b"raw send"),
        );
        // What the client writes is a frame the codec decodes too.
        seeds.frame(
            &format!("send_request_{ser:?}").to_lowercase(),
            &encode_frame(&send, ser).unwrap(),
        );
        let (raw, _) = broker.call(&send, ser);
        seeds.frame(&format!("send_reply_to_{ser:?}").to_lowercase(), &raw);
    }
    let pull = |offset: i64, max: i32| {
        req::pull_message(&PullRequest {
            group: &group,
            topic: &topic,
            broker_name: &mq.broker_name,
            queue_id: mq.queue_id,
            queue_offset: offset,
            max_msg_nums: max,
            commit_offset: 0,
            suspend_timeout_ms: 0,
            sub_version: 0,
            expression_type: "TAG",
            subscription: None,
        })
    };
    for (offset, name) in &offsets {
        let (raw, resp) = broker.call(&pull(*offset, 1), SerializeType::RocketMq);
        seeds.frame(&format!("pull_reply_{name}"), &raw);
        seeds.save("stored_message", &format!("{name}.bin"), &resp.body);
        if let Some(rec) = records(&resp.body).first() {
            seeds.save(
                "stored_message",
                &format!("{name}_ipv6.bin"),
                &widen_hosts(rec),
            );
        }
    }
    let (raw, resp) = broker.call(&pull(offsets[0].0, 32), SerializeType::Json);
    seeds.frame("pull_reply_all", &raw);
    seeds.save("stored_message", "all_records.bin", &resp.body);
    let (raw, _) = broker.call(&pull(1 << 40, 32), SerializeType::Json);
    seeds.frame("pull_reply_offset_moved", &raw);
    let (raw, _) = broker.call(
        &req::get_max_offset(&topic, &mq.broker_name, mq.queue_id),
        SerializeType::RocketMq,
    );
    seeds.frame("max_offset_reply", &raw);
    let (raw, _) = broker.call(
        &req::query_consumer_offset(&group, &topic, &mq.broker_name, mq.queue_id),
        SerializeType::Json,
    );
    seeds.frame("query_offset_reply", &raw);

    // A consumer joins the group on a second connection: the broker tells the first one.
    let mut member = Conn::open(&broker_addr);
    member.call(
        &heartbeat_consumer(&format!("seed-a@{stamp}"), &group, &topic),
        SerializeType::Json,
    );
    let mut second = Conn::open(&broker_addr);
    second.call(
        &heartbeat_consumer(&format!("seed-b@{stamp}"), &group, &topic),
        SerializeType::RocketMq,
    );
    let mut notified = 0;
    while notified == 0 {
        let raw = member
            .read_frame()
            .expect("NOTIFY_CONSUMER_IDS_CHANGED from the broker");
        let cmd = decode(&raw);
        if !cmd.is_response() {
            seeds.frame(&format!("broker_request_{}", cmd.code), &raw);
            seeds.save("broker_request", &format!("request_{}", cmd.code), &raw);
            notified += 1;
        }
    }
    let (raw, resp) = second.call(
        &req::get_consumer_list_by_group(&group),
        SerializeType::Json,
    );
    seeds.frame("consumer_list_reply", &raw);
    seeds.save("route", "consumer_list.json", &resp.body);
    // A request the client does not know, and one it does, as the broker would frame them.
    for (name, cmd) in [
        (
            "unknown_code",
            RemotingCommand::request(9999, vec![(Borrowed("k"), "v".to_string())]),
        ),
        (
            "ids_changed_oneway",
            oneway(RemotingCommand::request(
                request::NOTIFY_CONSUMER_IDS_CHANGED,
                vec![(Borrowed("consumerGroup"), group.clone())],
            )),
        ),
    ] {
        for ser in [SerializeType::Json, SerializeType::RocketMq] {
            let raw = encode_frame(&cmd, ser).unwrap();
            seeds.save("broker_request", &format!("{name}_{ser:?}"), &raw);
        }
    }
    plain.shutdown();
    println!(
        "{} seed files under {}",
        seeds.count,
        Path::new(&seeds.dir).display()
    );
}

fn oneway(mut cmd: RemotingCommand) -> RemotingCommand {
    cmd.mark_oneway();
    cmd
}
