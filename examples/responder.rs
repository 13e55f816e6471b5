//! A do-nothing loopback responder, so that benchmarks measure the client's cost alone:
//!
//!   cargo run --release --example responder -- [LISTEN_ADDR]     (default 127.0.0.1:19876)
//!
//! It is a name server and a broker on one port. GET_ROUTEINFO_BY_TOPIC gets a route of every
//! topic to one master broker (itself) with 4 queues; SEND_MESSAGE, SEND_MESSAGE_V2 and
//! SEND_BATCH_MESSAGE get a canned SUCCESS with the request's opaque; any other request gets an
//! empty SUCCESS; oneway requests get nothing. Nothing is stored.
//!
//! Each connection has a thread that reads what has arrived, answers every complete frame in
//! it, and writes all the answers in one write. Hot-path requests in the binary header
//! (what the client sends) are not decoded: the code and opaque sit at fixed offsets, and the
//! canned answer is copied with the opaque patched in.
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use bytes::BytesMut;
use rmq::remoting::codec;
use rmq::remoting::command::ExtFields;
use rmq::remoting::{RemotingCommand, SerializeType};

const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
const SEND_MESSAGE: i32 = 10;
const SEND_MESSAGE_V2: i32 = 310;
const SEND_BATCH_MESSAGE: i32 = 320;
const SEND_REPLY_MESSAGE_V2: i32 = 325;
const SUCCESS: i32 = 0;
const RESPONSE_FLAG: i32 = 1;
const ONEWAY_FLAG: i32 = 2;
/// Offsets in a frame with the binary header: length, type|header length, code (i16),
/// language (u8), version (i16), opaque (i32), flag (i32).
const CODE_AT: usize = 8;
const OPAQUE_AT: usize = 13;
const FLAG_AT: usize = 17;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19876".into());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("responder: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    let me = listener.local_addr().expect("bound").to_string();
    println!("responder listening on {me}");
    let canned = Canned::new(&me);
    let canned = Box::leak(Box::new(canned));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let canned: &'static Canned = canned;
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, canned) {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    eprintln!("responder: connection ended: {e}");
                }
            }
        });
    }
}

/// The answers, encoded once.
struct Canned {
    /// SUCCESS to a send, binary header, opaque 0.
    sent: Vec<u8>,
    /// The route body every topic gets.
    route: String,
}

impl Canned {
    fn new(me: &str) -> Canned {
        let mut ext = ExtFields::default();
        ext.push(("msgId".into(), "7F00000100002A9F0000000000000000".into()));
        ext.push(("queueId".into(), "0".into()));
        ext.push(("queueOffset".into(), "0".into()));
        let resp = RemotingCommand {
            code: SUCCESS,
            flag: RESPONSE_FLAG,
            ext_fields: ext,
            ..RemotingCommand::request(SUCCESS, ExtFields::default())
        };
        let sent = codec::encode_frame(&resp, SerializeType::RocketMq)
            .expect("encodable")
            .to_vec();
        let route = format!(
            "{{\"brokerDatas\":[{{\"brokerAddrs\":{{\"0\":\"{me}\"}},\"brokerName\":\"responder\",\
             \"cluster\":\"ResponderCluster\"}}],\"queueDatas\":[{{\"brokerName\":\"responder\",\
             \"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":0,\"writeQueueNums\":4}}]}}"
        );
        Canned { sent, route }
    }
}

fn serve(mut stream: TcpStream, canned: &Canned) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        if start == end {
            start = 0;
            end = 0;
        } else if buf.len() - end < 64 * 1024 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = stream.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(());
        }
        end += n;
        while end - start >= 4 {
            let len = u32::from_be_bytes(buf[start..start + 4].try_into().unwrap()) as usize;
            if !(4..=codec::MAX_FRAME_LENGTH).contains(&len) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame"));
            }
            if end - start < 4 + len {
                if 4 + len > buf.len() {
                    buf.resize(4 + len, 0);
                }
                break;
            }
            answer(&buf[start..start + 4 + len], canned, &mut out)?;
            start += 4 + len;
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
    }
}

fn answer(frame: &[u8], canned: &Canned, out: &mut Vec<u8>) -> io::Result<()> {
    let binary = frame[4] == SerializeType::RocketMq as u8;
    if binary && frame.len() >= FLAG_AT + 4 {
        let code = i16::from_be_bytes([frame[CODE_AT], frame[CODE_AT + 1]]) as i32;
        let flag = i32::from_be_bytes(frame[FLAG_AT..FLAG_AT + 4].try_into().unwrap());
        if matches!(
            code,
            SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE | SEND_REPLY_MESSAGE_V2
        ) {
            if flag & ONEWAY_FLAG == 0 {
                let at = out.len();
                out.extend_from_slice(&canned.sent);
                out[at + OPAQUE_AT..at + OPAQUE_AT + 4]
                    .copy_from_slice(&frame[OPAQUE_AT..OPAQUE_AT + 4]);
            }
            return Ok(());
        }
    }
    // Anything else: decoded properly (rare: routes, heartbeats, unregistering).
    let mut bytes = BytesMut::from(frame);
    let req = codec::decode_frame(&mut bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short frame"))?;
    if req.is_oneway() {
        return Ok(());
    }
    let mut resp = RemotingCommand::response_to(&req, SUCCESS, None);
    if req.code == GET_ROUTEINFO_BY_TOPIC {
        resp = resp.with_body(canned.route.clone().into());
    }
    let ser = if binary {
        SerializeType::RocketMq
    } else {
        SerializeType::Json
    };
    let frame = codec::encode_frame(&resp, ser)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    out.extend_from_slice(&frame);
    Ok(())
}
