//! What the fault table and the soak share: the cluster under test (from the FAULTS_*
//! variables that scripts/test-faults.sh sets), its processes by name, topic creation, and a
//! one-request connection to a broker or name server.
#![allow(dead_code)]
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rmq::protocol::code::{request, response};
use rmq::remoting::codec::{decode_frame, encode_frame};
use rmq::remoting::command::{RemotingCommand, SerializeType};

pub const QUEUES: i32 = 4;
/// Every wait of a row ends by this bound (a row that hangs fails instead).
pub const BOUND: Duration = Duration::from_secs(180);
/// The admin request that creates or updates a topic on one broker (the client never sends it).
const UPDATE_AND_CREATE_TOPIC: i32 = 17;

// ------------------------------------------------------------------------------- the cluster

pub struct Cluster {
    pub namesrv: String,
    pub data: String,
    pub brokers: Vec<(String, String)>,
}

impl Cluster {
    pub fn from_env(prefix: &str) -> Cluster {
        let var = |k: &str| {
            std::env::var(format!("{prefix}_{k}")).unwrap_or_else(|_| {
                panic!("{prefix}_{k} is not set: run this through scripts/test-faults.sh")
            })
        };
        let brokers = var("BROKERS")
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("NAME=host:port");
                (k.to_string(), v.to_string())
            })
            .collect();
        Cluster {
            namesrv: var("NAMESRV"),
            data: var("DATA"),
            brokers,
        }
    }

    pub fn addr(&self, name: &str) -> &str {
        &self.brokers.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// `rocketmq-local.sh kill|stop|cont|restart NAME`.
    pub fn ctl(&self, what: &str, name: &str) {
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/rocketmq-local.sh"
        ))
        .args([what, name])
        .env("RMQ_DATA", &self.data)
        .stdout(Stdio::null())
        .output()
        .expect("run the cluster script");
        assert!(
            out.status.success(),
            "{what} {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The topic on every master named in `masters`, `QUEUES` queues each, and in the route of
    /// every name server that runs.
    pub fn create_topic(&self, topic: &str, masters: &[&str]) {
        for m in masters {
            let cmd = RemotingCommand::request(
                UPDATE_AND_CREATE_TOPIC,
                vec![
                    ("topic".into(), topic.to_string()),
                    ("defaultTopic".into(), "TBW102".to_string()),
                    ("readQueueNums".into(), QUEUES.to_string()),
                    ("writeQueueNums".into(), QUEUES.to_string()),
                    ("perm".into(), "6".to_string()),
                    ("topicFilterType".into(), "SINGLE_TAG".to_string()),
                    ("topicSysFlag".into(), "0".to_string()),
                    ("order".into(), "false".to_string()),
                ],
            );
            let resp = call(self.addr(m), &cmd).expect("create the topic");
            assert_eq!(resp.code, response::SUCCESS, "{}", resp.remark_str());
        }
        for ns in self.namesrv.split(';') {
            let routed = eventually(BOUND, || {
                let cmd = RemotingCommand::request(
                    request::GET_ROUTEINFO_BY_TOPIC,
                    vec![("topic".into(), topic.to_string())],
                );
                let resp = call(ns, &cmd).ok()?;
                let body = String::from_utf8_lossy(&resp.body).into_owned();
                (resp.code == response::SUCCESS && masters.iter().all(|m| body.contains(m)))
                    .then_some(())
            });
            assert!(routed.is_some(), "{ns} never routed {topic} to {masters:?}");
        }
    }
}

/// One request on a fresh connection, answered within 10 s.
pub fn call(addr: &str, cmd: &RemotingCommand) -> std::io::Result<RemotingCommand> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&encode_frame(cmd, SerializeType::Json).unwrap())?;
    let mut buf = BytesMut::new();
    loop {
        if let Some(resp) = decode_frame(&mut buf).map_err(std::io::Error::other)? {
            return Ok(resp);
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
