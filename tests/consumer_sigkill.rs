//! A consumer killed with SIGKILL loses nothing, and the consumer that takes over re-delivers at
//! most what was in flight, against the real broker.
//!
//! The test runs itself again as a child process (the same test, with RMQ_SIGKILL_CHILD set): the
//! child consumes, recording each consumed message in a file (one write per listener call, done
//! before the call returns success), until it has made `RECORDED_CALLS` calls; every later call
//! blocks for good, so its messages stay in flight. Once every consume thread is blocked and the
//! broker holds the offsets the child committed (every `consumer.persist-consumer-offset-interval`,
//! shortened here), the parent kills the child with SIGKILL and a new consumer of the same group
//! finishes the topic.
//!
//! The bound: what was in flight when the child died is the messages of its blocked calls (at
//! most consume threads × batch size, never recorded as consumed, so no duplicates) plus what it
//! consumed above the lowest in-flight message of each queue, which the last commit could not
//! cover (the committed offset of a queue is its lowest message not consumed; the test checks
//! that the broker holds exactly that). The new consumer may deliver again only those: the
//! re-delivered consumed messages are a subset of the uncovered ones, so their number is at most
//! threads × batch + uncovered, and nothing below a committed offset comes again.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::{eventually, namesrv, unique};
use rmq::protocol::code::response;
use rmq::protocol::consumer::query_consumer_offset;
use rmq::remoting::codec::{decode_frame, encode_frame};
use rmq::remoting::command::SerializeType;
use rmq::{Config, ConsumeResult, Message, Producer, ProducerConfig, PushConsumer};

const WITHIN: Duration = Duration::from_secs(120);
const MESSAGES: usize = 300;
const THREADS: usize = 4;
const BATCH: usize = 2;
/// Listener calls the child completes before its calls start to block.
const RECORDED_CALLS: usize = 40;
const COMMIT_INTERVAL_MS: &str = "200";
const TEST_NAME: &str =
    "a_consumer_killed_with_sigkill_loses_nothing_and_redelivers_at_most_what_was_in_flight";

fn consumer(group: &str, topic: &str) -> PushConsumer {
    let mut c = Config::new();
    c.set("name-server", &namesrv()).unwrap();
    c.set("consumer.group", group).unwrap();
    c.set("instance-name", &unique("sigkill")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.consume-thread-number", &THREADS.to_string())
        .unwrap();
    c.set(
        "consumer.consume-message-batch-max-size",
        &BATCH.to_string(),
    )
    .unwrap();
    c.set(
        "consumer.persist-consumer-offset-interval",
        COMMIT_INTERVAL_MS,
    )
    .unwrap();
    c.set("consumer.rebalance-interval", "1000").unwrap();
    let c = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    c.subscribe(topic, "*").unwrap();
    c
}

/// One record line: msg id, broker address, broker name, queue id, queue offset.
fn record_line(m: &rmq::MessageExt) -> String {
    format!(
        "{} {} {} {} {}\n",
        m.msg_id(),
        m.store_host,
        m.broker_name,
        m.queue_id,
        m.queue_offset
    )
}

/// The child: consume, record, then block every call after `RECORDED_CALLS`; never returns.
fn child(dir: &Path) -> ! {
    let topic = std::env::var("RMQ_SIGKILL_TOPIC").unwrap();
    let group = std::env::var("RMQ_SIGKILL_GROUP").unwrap();
    let open = |name: &str| {
        Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap(),
        )
    };
    let (consumed, blocked) = (open("consumed"), open("blocked"));
    let calls = AtomicUsize::new(0);
    let c = consumer(&group, &topic);
    c.set_listener(move |msgs| {
        if calls.fetch_add(1, Ordering::SeqCst) < RECORDED_CALLS {
            let lines: String = msgs.iter().map(|m| record_line(m)).collect();
            consumed
                .lock()
                .unwrap()
                .write_all(lines.as_bytes())
                .unwrap();
            return ConsumeResult::Success;
        }
        blocked.lock().unwrap().write_all(b"blocked\n").unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    })
    .unwrap();
    c.start().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The child process, killed (SIGKILL) when the test ends however it ends.
struct Kid(std::process::Child);

impl Kid {
    fn sigkill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.sigkill();
    }
}

struct Record {
    id: String,
    store: SocketAddr,
    broker: String,
    queue: i32,
    offset: i64,
}

fn read_records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Record {
                id: f[0].to_string(),
                store: f[1].parse().unwrap(),
                broker: f[2].to_string(),
                queue: f[3].parse().unwrap(),
                offset: f[4].parse().unwrap(),
            }
        })
        .collect()
}

/// The group's offset of a queue as the broker holds it (0 when it holds none).
fn committed(store: SocketAddr, group: &str, topic: &str, broker: &str, queue: i32) -> i64 {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(store).unwrap();
    let req = query_consumer_offset(group, topic, broker, queue);
    s.write_all(&encode_frame(&req, SerializeType::Json).unwrap())
        .unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(resp) = decode_frame(&mut buf).unwrap() {
            return match resp.code {
                response::SUCCESS => resp.ext_parse("offset").unwrap(),
                _ => 0,
            };
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "broker closed the offset query");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_consumer_killed_with_sigkill_loses_nothing_and_redelivers_at_most_what_was_in_flight() {
    if let Ok(dir) = std::env::var("RMQ_SIGKILL_CHILD") {
        child(Path::new(&dir));
    }
    let topic = unique("RustSigkill");
    let group = unique("RustSigkillGroup");
    let p =
        Producer::new(ProducerConfig::new(&namesrv(), &unique("RustSigkillP")).unwrap()).unwrap();
    p.start().unwrap();
    let sent: HashSet<String> = (0..MESSAGES)
        .map(|i| {
            let m = Message::new(&topic, format!("k-{i}").into_bytes());
            p.send_blocking(&m).unwrap().msg_id
        })
        .collect();

    let dir: PathBuf = std::env::temp_dir().join(unique("rmq-sigkill"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kid = Kid(Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env("RMQ_SIGKILL_CHILD", &dir)
        .env("RMQ_SIGKILL_TOPIC", &topic)
        .env("RMQ_SIGKILL_GROUP", &group)
        .stdout(Stdio::null())
        .spawn()
        .unwrap());

    // Every consume thread of the child is inside a call that never returns.
    let blocked = dir.join("blocked");
    let frozen = eventually(WITHIN, || {
        let n = std::fs::read_to_string(&blocked)
            .unwrap_or_default()
            .lines()
            .count();
        (n == THREADS).then_some(())
    });
    assert!(
        frozen.is_some(),
        "the child's consume threads did not all block"
    );
    let before = read_records(&dir.join("consumed"));
    let ids: Vec<&str> = before.iter().map(|r| r.id.as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "the child consumed nothing twice"
    );
    assert!(before.len() >= RECORDED_CALLS && before.len() <= RECORDED_CALLS * BATCH);

    // Per queue, the lowest offset the child did not consume: what its commits must reach.
    let mut by_queue: BTreeMap<(String, i32), (SocketAddr, HashSet<i64>)> = BTreeMap::new();
    for r in &before {
        by_queue
            .entry((r.broker.clone(), r.queue))
            .or_insert_with(|| (r.store, HashSet::new()))
            .1
            .insert(r.offset);
    }
    let lowest_unconsumed: HashMap<(String, i32), i64> = by_queue
        .iter()
        .map(|(q, (_, offs))| (q.clone(), (0..).find(|o| !offs.contains(o)).unwrap()))
        .collect();
    let committed_all = eventually(WITHIN, || {
        by_queue
            .iter()
            .all(|((broker, queue), (store, _))| {
                committed(*store, &group, &topic, broker, *queue)
                    == lowest_unconsumed[&(broker.clone(), *queue)]
            })
            .then_some(())
    });
    assert!(
        committed_all.is_some(),
        "the broker never held the child's offsets {lowest_unconsumed:?}"
    );

    kid.sigkill();

    let after: Arc<Mutex<Vec<String>>> = Arc::default();
    let c = consumer(&group, &topic);
    let a = Arc::clone(&after);
    c.set_listener(move |msgs| {
        a.lock()
            .unwrap()
            .extend(msgs.iter().map(|m| m.msg_id().to_string()));
        ConsumeResult::Success
    })
    .unwrap();
    c.start().unwrap();
    let union = || -> HashSet<String> {
        let mut u: HashSet<String> = before.iter().map(|r| r.id.clone()).collect();
        u.extend(after.lock().unwrap().iter().cloned());
        u
    };
    eventually(WITHIN, || (union() == sent).then_some(()))
        .unwrap_or_else(|| panic!("consumed {} of {}", union().len(), sent.len()));
    c.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let again: Vec<String> = after
        .lock()
        .unwrap()
        .iter()
        .filter(|id| distinct.contains(id.as_str()))
        .cloned()
        .collect();
    // Consumed by the child at or above its queue's committed offset: what the commit could not
    // cover.
    let uncovered: HashSet<&str> = before
        .iter()
        .filter(|r| r.offset >= lowest_unconsumed[&(r.broker.clone(), r.queue)])
        .map(|r| r.id.as_str())
        .collect();
    let stray: Vec<&String> = again
        .iter()
        .filter(|id| !uncovered.contains(id.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "re-delivered below a committed offset: {stray:?}"
    );
    assert!(
        again.len() <= THREADS * BATCH + uncovered.len(),
        "re-delivered {} consumed messages; in flight were at most {} (threads x batch) + {} \
         (consumed above the committed offsets)",
        again.len(),
        THREADS * BATCH,
        uncovered.len()
    );
}
