//! Entry points of the fuzz targets (the `fuzz/` crate) and of their regression tests: each
//! feeds arbitrary bytes to the decoders the client runs on what a peer sends, the way the
//! client runs them, and checks what must hold whatever the bytes are. A decoder answers bad
//! input with an error; a panic here (an assertion included) is a bug. Not part of the API.
use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::client::instance::{broker_request_processors, ConsumerMember, Consumers};
use crate::client::reply::PendingRequests;
use crate::client::TopicPublishInfo;
use crate::consumer::{ExpressionType, Subscription};
use crate::executor::Executor;
use crate::producer::transaction::TransactionCheckers;
use crate::protocol::compression;
use crate::protocol::consumer::parse_consumer_list;
use crate::protocol::json::quote_bare_keys;
use crate::protocol::message::{decode_offset_msg_id, decode_stored_records};
use crate::protocol::route::TopicRouteData;
use crate::remoting::codec::{decode_frame, decode_frame_body, encode_frame};
use crate::remoting::processor::ProcessorRegistry;
use crate::remoting::{RemotingCommand, SerializeType};

/// Frames back to back, as a connection reads them (the frame decoder, both header encodings).
pub fn frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decode_frame(&mut buf) {
        check_command(&cmd);
    }
}

/// `data` as a JSON header (serialization type 0) of a frame with a short body.
pub fn json_header(data: &[u8]) {
    header(0, data);
}

/// `data` as a ROCKETMQ binary header (serialization type 1) of a frame with a short body.
pub fn binary_header(data: &[u8]) {
    header(1, data);
}

fn header(ser: u8, data: &[u8]) {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };
    if len > 0xFF_FFFF {
        return;
    }
    let mut frame = Vec::with_capacity(data.len() + 8);
    frame.extend_from_slice(&(u32::from(ser) << 24 | len).to_be_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"body");
    if let Ok(cmd) = decode_frame_body(Bytes::from(frame)) {
        assert_eq!(&cmd.body[..], b"body");
        check_command(&cmd);
    }
}

/// What the client reads of any decoded command, and the command written back in both
/// encodings: what encodes must decode to the same command.
fn check_command(cmd: &RemotingCommand) {
    let fields = cmd.ext_fields.to_vec();
    let _ = cmd.ext_fields.is_empty();
    for (k, v) in &fields {
        assert!(!k.is_empty() && !v.is_empty(), "empty field {k:?}={v:?}");
        let _ = cmd.ext(k);
    }
    for key in [
        "nextBeginOffset",
        "queueOffset",
        "queueId",
        "msgId",
        "consumerGroup",
    ] {
        let _ = cmd.ext_parse::<i64>(key);
    }
    let _ = format!("{cmd:?}");
    let unique_keys = {
        let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2).all(|w| w[0] != w[1])
    };
    for ser in [SerializeType::Json, SerializeType::RocketMq] {
        let Ok(encoded) = encode_frame(cmd, ser) else {
            continue;
        };
        let mut buf = encoded;
        let back = match decode_frame(&mut buf) {
            Ok(Some(back)) => back,
            other => panic!("{ser:?} encoding of {cmd:?} does not decode: {other:?}"),
        };
        assert!(buf.is_empty(), "{ser:?}: bytes left after the frame");
        assert_eq!(
            (back.code, back.opaque, back.flag),
            (cmd.code, cmd.opaque, cmd.flag)
        );
        assert_eq!(back.body, cmd.body);
        assert_eq!(back.remark_str(), cmd.remark_str(), "{ser:?} remark");
        if ser == SerializeType::RocketMq {
            assert_eq!(back.version, cmd.version);
        }
        if unique_keys {
            for (k, v) in &fields {
                assert_eq!(back.ext(k), Some(v.as_str()), "{ser:?} field {k:?}");
            }
        }
    }
}

/// A name server's route body (GET_ROUTEINFO_BY_TOPIC) through the lenient pre-pass and the
/// parser, then what producers and consumers build from it; and the broker's consumer list.
pub fn route_json(data: &[u8]) {
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        // Standard JSON has no bare keys: the pre-pass must leave it as it is.
        assert!(
            matches!(quote_bare_keys(data), Cow::Borrowed(_)),
            "the pre-pass changed standard JSON"
        );
    }
    if let Ok(route) = TopicRouteData::from_json(data) {
        for limit in [
            None,
            Some(crate::protocol::header::DEFAULT_TOPIC_QUEUE_NUMS),
        ] {
            let info = TopicPublishInfo::from_route("FuzzTopic", route.clone(), limit);
            let avoid = info.queues.first().map(|q| Arc::clone(&q.broker_name));
            for counter in [0, 1, usize::MAX] {
                let _ = info.select_queue(counter, avoid.as_deref());
            }
        }
        let _ = crate::consumer::rebalance::subscribe_queues("FuzzTopic", &route);
        for b in &route.broker_datas {
            let _ = b.master_addr();
        }
    }
    let _ = parse_consumer_list(data);
}

/// The body of a pull (or view) answer: stored records back to back, each maybe compressed
/// (zlib, lz4, zstd), with IPv4 or IPv6 hosts; and the decompressors on the bytes themselves.
pub fn stored_messages(data: &[u8]) {
    let sub = Subscription::new("FuzzTopic", "TagA || TagSeed", ExpressionType::Tag)
        .expect("a valid subscription");
    for m in decode_stored_records(Bytes::copy_from_slice(data))
        .into_iter()
        .flatten()
    {
        let msg = &m.message;
        let _ = (m.msg_id(), msg.tags(), msg.keys(), msg.delay_level());
        let _ = msg.user_properties().count();
        let _ = msg.property("RETRY_TOPIC");
        let _ = sub.matches(msg.tags());
        let (store, offset) = decode_offset_msg_id(&m.offset_msg_id)
            .unwrap_or_else(|e| panic!("the store id of a decoded message: {e}"));
        assert_eq!(
            (store, offset),
            (m.store_host, m.commit_log_offset),
            "store id round trip"
        );
    }
    if let Some((&first, rest)) = data.split_first() {
        let sys_flag = compression::SYSFLAG_COMPRESSED | (i32::from(first % 4) << 8);
        let _ = compression::decompress(sys_flag, rest);
    }
}

/// A member of every group: what a consumer does when told its group changed.
struct Member;

impl ConsumerMember for Member {
    fn consumer_data(&self) -> Option<serde_json::Value> {
        None
    }
    fn rebalance_now(&self) {}
}

static REGISTRY: Lazy<ProcessorRegistry> = Lazy::new(|| {
    let registry = ProcessorRegistry::new(Executor::new("rmq-fuzz", 1));
    let consumers: Consumers = Arc::new(Mutex::new(vec![
        (String::new(), Arc::new(Member) as Arc<dyn ConsumerMember>),
        ("FuzzGroup".to_string(), Arc::new(Member)),
    ]));
    let checkers = Arc::new(TransactionCheckers::default());
    let requests = Arc::new(PendingRequests::default());
    for (code, processor) in broker_request_processors(&consumers, &checkers, &requests) {
        registry.register(code, processor);
    }
    registry
});

/// Frames a broker sends to start a request on a client connection (NOTIFY_CONSUMER_IDS_CHANGED,
/// codes nobody registered, ...), through the processors an instance registers; every answer
/// must encode in both header encodings.
pub fn broker_request(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decode_frame(&mut buf) {
        if cmd.is_response() {
            continue;
        }
        let (code, opaque) = (cmd.code, cmd.opaque);
        if let Some(answer) = REGISTRY.process_now("127.0.0.1:10911", cmd) {
            assert!(answer.is_response());
            assert_eq!(answer.opaque, opaque, "answer to request {code}");
            encode_frame(&answer, SerializeType::Json).expect("JSON answer");
            if crate::remoting::codec::fits_binary_header(&answer) {
                encode_frame(&answer, SerializeType::RocketMq).expect("binary answer");
            }
        }
    }
}
