//! The fault table: each row puts a real cluster through one fault (a broker or name server
//! killed, frozen or restarted, a consumer killed, a master killed under its slave) while a
//! producer or consumer runs, then counts what the brokers hold by reading every queue back by
//! offset (or, for the consumer rows, what was consumed), never by trusting send results.
//!
//! `scripts/test-faults.sh` starts the clusters, runs this and stops them (`make test-faults`).
//! Usage: `fault_table [ROW...]` (every row by default); one table line per row on stdout;
//! exit status 1 if any row lost a message or broke its promise.
//!
//! Environment (set by the script):
//!   FAULTS_NAMESRV    name servers of the two-broker cluster, `a;b`
//!   FAULTS_DATA       its data directory (the cluster script finds its processes there)
//!   FAULTS_BROKERS    `broker-a=host:port,broker-b=host:port`
//!   FAULTS_PAIR_NAMESRV, FAULTS_PAIR_DATA, FAULTS_PAIR_BROKERS
//!                     the master/slave cluster (`broker-m=master,broker-m-slave=slave`)
//!   FAULTS_SCALE      multiplies the message counts (1 = the 100 000 sends)
#[path = "fault_support/mod.rs"]
mod fault_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_support::{call, eventually, unique, Cluster, BOUND, QUEUES};
use rmq::protocol::code::response;
use rmq::protocol::consumer::{get_max_offset, pull_message, query_consumer_offset, PullRequest};
use rmq::protocol::message::decode_stored_messages;
use rmq::remoting::command::RemotingCommand;
use rmq::{Config, ConsumeResult, Message, MessageQueue, Producer, PushConsumer};

const CHILD_ENV: &str = "FAULTS_CONSUMER_CHILD";

/// A PULL_MESSAGE of up to 32 messages that reads without a subscribed consumer.
fn pull(topic: &str, broker: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    pull_message(&PullRequest {
        group: "FaultTableReader",
        topic,
        broker_name: broker,
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        commit_offset: 0,
        suspend_timeout_ms: 0,
        sub_version: 0,
        expression_type: "TAG",
        subscription: Some("*"),
    })
}

/// Every message of `topic` that the broker at `addr` (`broker` by name) holds, by reading each
/// queue from offset 0 to its end: body -> how many times it is stored.
fn read_back(addr: &str, broker: &str, topic: &str, into: &mut HashMap<String, usize>) {
    for q in 0..QUEUES {
        let max = eventually(BOUND, || {
            let resp = call(addr, &get_max_offset(topic, broker, q)).ok()?;
            (resp.code == response::SUCCESS).then(|| resp.ext_parse::<i64>("offset"))?
        })
        .unwrap_or_else(|| panic!("{addr} gave no max offset of {topic}/{q}"));
        let mut offset = 0;
        while offset < max {
            let resp = call(addr, &pull(topic, broker, q, offset)).expect("pull");
            assert_eq!(
                resp.code,
                response::SUCCESS,
                "pull {topic}/{broker}/{q} at {offset} of {max}: {} {}",
                resp.code,
                resp.remark_str()
            );
            let msgs = decode_stored_messages(resp.body.clone()).expect("decode");
            for m in &msgs {
                *into
                    .entry(String::from_utf8_lossy(m.message.body()).into_owned())
                    .or_default() += 1;
            }
            offset = resp.ext_parse("nextBeginOffset").expect("nextBeginOffset");
        }
    }
}

/// Sum over every broker of `read_back`.
fn stored(c: &Cluster, topic: &str, brokers: &[&str]) -> HashMap<String, usize> {
    let mut all = HashMap::new();
    for b in brokers {
        read_back(c.addr(b), b, topic, &mut all);
    }
    all
}

// ----------------------------------------------------------------------------------- helpers

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("FAULTS_SCALE")
        .ok()
        .map(|s| s.parse().expect("FAULTS_SCALE is a number"))
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(20)
}

fn producer(c: &Cluster, settings: &[(&str, &str)]) -> Producer {
    let mut cfg = Config::new();
    cfg.set("name-server", &c.namesrv).unwrap();
    cfg.set("producer.group", &unique("FaultP")).unwrap();
    for (k, v) in settings {
        cfg.set(k, v).unwrap();
    }
    let p = Producer::new(cfg.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// What sends returned: the bodies sent OK, failures, and which broker took each OK send.
#[derive(Default)]
struct Sends {
    ok: HashSet<String>,
    failed: usize,
    by_broker: BTreeMap<String, usize>,
    slowest: Duration,
}

impl Sends {
    fn send(&mut self, p: &Producer, topic: &str, body: String) -> bool {
        let t = Instant::now();
        let r = p.send_blocking(&Message::new(topic, body.clone()));
        self.slowest = self.slowest.max(t.elapsed());
        match r {
            Ok(r) => {
                *self
                    .by_broker
                    .entry(r.queue.broker_name.to_string())
                    .or_default() += 1;
                self.ok.insert(body);
                true
            }
            Err(_) => {
                self.failed += 1;
                false
            }
        }
    }

    fn merge(&mut self, o: Sends) {
        self.ok.extend(o.ok);
        self.failed += o.failed;
        for (b, n) in o.by_broker {
            *self.by_broker.entry(b).or_default() += n;
        }
        self.slowest = self.slowest.max(o.slowest);
    }
}

/// One line of the table.
struct Row {
    name: &'static str,
    sent_ok: usize,
    stored: usize,
    lost: usize,
    duplicated: usize,
    took: Duration,
    notes: String,
    /// What the row promised and did not hold (besides losing nothing).
    broken: Vec<String>,
}

impl Row {
    /// Counts of a producer row: OK sends against what the brokers hold.
    fn of_sends(name: &'static str, sends: &Sends, held: &HashMap<String, usize>) -> Row {
        Row {
            name,
            sent_ok: sends.ok.len(),
            stored: held.len(),
            lost: sends.ok.iter().filter(|b| !held.contains_key(*b)).count(),
            duplicated: held.values().map(|n| n - 1).sum(),
            took: Duration::ZERO,
            notes: format!(
                "failed {}, slowest send {} ms, by broker {:?}",
                sends.failed,
                sends.slowest.as_millis(),
                sends.by_broker
            ),
            broken: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.broken.push(what.into());
        }
    }
}

// -------------------------------------------------------------------------------------- rows

/// broker-b SIGKILL during sync sends over two brokers: every OK send is stored, and the
/// sends move to broker-a within the retry budget (no send fails).
fn broker_sigkill(c: &Cluster) -> Row {
    let topic = unique("FaultKill");
    c.create_topic(&topic, &["broker-a", "broker-b"]);
    let total = scaled(100_000);
    const THREADS: usize = 4;
    let p = Arc::new(producer(c, &[]));
    let done = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let after_kill_on_b = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (p, topic, done) = (Arc::clone(&p), topic.clone(), Arc::clone(&done));
            let (killed, on_b) = (Arc::clone(&killed), Arc::clone(&after_kill_on_b));
            std::thread::spawn(move || {
                let mut s = Sends::default();
                for i in (t..total).step_by(THREADS) {
                    // whether the kill had happened when this send started
                    let after = killed.load(Ordering::SeqCst);
                    let before_b = s.by_broker.get("broker-b").copied().unwrap_or(0);
                    s.send(&p, &topic, format!("kill-{i}"));
                    if after && s.by_broker.get("broker-b").copied().unwrap_or(0) > before_b {
                        on_b.fetch_add(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
                s
            })
        })
        .collect();
    // the kill lands a third of the way through
    while done.load(Ordering::SeqCst) < total / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    c.ctl("kill", "broker-b");
    killed.store(true, Ordering::SeqCst);
    let mut sends = Sends::default();
    for w in workers {
        sends.merge(w.join().unwrap());
    }
    p.shutdown();
    c.ctl("restart", "broker-b");
    let held = stored(c, &topic, &["broker-a", "broker-b"]);
    let mut row = Row::of_sends("broker-b SIGKILL in sync sends", &sends, &held);
    let on_b = after_kill_on_b.load(Ordering::SeqCst);
    row.notes += &format!(", sends started after the kill stored on broker-b: {on_b}");
    row.check(
        sends.failed == 0,
        "a send failed: the retry budget did not move it to broker-a",
    );
    row.check(
        on_b == 0,
        "a send after the kill was stored on the dead broker-b",
    );
    row
}

/// broker-b frozen (SIGSTOP): the sends that reach it time out, the latency fault tolerance
/// then avoids it, and after SIGCONT the producer reaches broker-b again.
fn broker_sigstop(c: &Cluster) -> Row {
    let topic = unique("FaultStop");
    c.create_topic(&topic, &["broker-a", "broker-b"]);
    let n = scaled(2_000);
    let p = producer(
        c,
        &[
            ("producer.send-message-timeout", "1000"),
            ("producer.send-latency-fault-enable", "true"),
        ],
    );
    let mut before = Sends::default();
    for i in 0..n / 2 {
        before.send(&p, &topic, format!("stop-{i}"));
    }
    c.ctl("stop", "broker-b");
    let mut frozen = Sends::default();
    let mut failed_after_first_failure = 0;
    for i in n / 2..n {
        let ok = frozen.send(&p, &topic, format!("stop-{i}"));
        if !ok && frozen.failed > 1 {
            failed_after_first_failure += 1;
        }
    }
    c.ctl("cont", "broker-b");
    // broker-b answers again: a send to one of its queues goes through
    let prepared = p.prepare(&Message::new(&topic, "stop-probe")).unwrap();
    let mq = MessageQueue {
        topic: topic.as_str().into(),
        broker_name: "broker-b".into(),
        queue_id: 0,
    };
    let back = eventually(BOUND, || {
        p.send_prepared_to_queue_blocking(&prepared, mq.clone())
            .ok()
    })
    .is_some();
    let mut after = Sends::default();
    for i in n..n + n / 4 {
        after.send(&p, &topic, format!("stop-{i}"));
    }
    p.shutdown();
    let frozen_failed = frozen.failed;
    let frozen_on_b = frozen.by_broker.get("broker-b").copied().unwrap_or(0);
    let mut sends = before;
    sends.merge(frozen);
    let after_failed = after.failed;
    sends.merge(after);
    let mut held = stored(c, &topic, &["broker-a", "broker-b"]);
    held.remove("stop-probe");
    let mut row = Row::of_sends("broker-b SIGSTOP / SIGCONT", &sends, &held);
    row.notes += &format!(
        ", timed out while frozen {frozen_failed}, OK on broker-b while frozen {frozen_on_b}, \
         broker-b reached after SIGCONT {back}"
    );
    row.check(frozen_failed >= 1, "no send timed out on the frozen broker");
    row.check(
        failed_after_first_failure == 0,
        "a send failed after the first timeout: the frozen broker was not avoided",
    );
    row.check(back, "broker-b not reachable after SIGCONT");
    row.check(after_failed == 0, "a send failed after SIGCONT");
    row
}

/// Both name servers killed: sends on the cached route go on; after their restart (and the
/// brokers' next registration) a topic made after the restart is found and sent to.
fn namesrv_both(c: &Cluster) -> Row {
    let topic = unique("FaultNsBoth");
    c.create_topic(&topic, &["broker-a", "broker-b"]);
    let n = scaled(5_000);
    let p = producer(c, &[("client.poll-name-server-interval", "1000")]);
    let mut sends = Sends::default();
    for i in 0..n / 2 {
        sends.send(&p, &topic, format!("nsboth-{i}"));
    }
    c.ctl("kill", "namesrv");
    c.ctl("kill", "namesrv-2");
    let failed_before = sends.failed;
    for i in n / 2..n {
        sends.send(&p, &topic, format!("nsboth-{i}"));
    }
    let failed_without_ns = sends.failed - failed_before;
    c.ctl("restart", "namesrv");
    c.ctl("restart", "namesrv-2");
    // a topic the restarted name servers learn from the brokers' next registration
    let fresh = unique("FaultNsBothNew");
    c.create_topic(&fresh, &["broker-a", "broker-b"]);
    let mut fresh_sends = Sends::default();
    for i in 0..n / 10 {
        fresh_sends.send(&p, &fresh, format!("nsboth-fresh-{i}"));
    }
    p.shutdown();
    let mut held = stored(c, &topic, &["broker-a", "broker-b"]);
    held.extend(stored(c, &fresh, &["broker-a", "broker-b"]));
    let fresh_failed = fresh_sends.failed;
    let fresh_brokers = fresh_sends.by_broker.len();
    sends.merge(fresh_sends);
    let mut row = Row::of_sends("both name servers SIGKILL", &sends, &held);
    row.notes += &format!(
        ", failed without name servers {failed_without_ns}, new topic after restart: \
         failed {fresh_failed}, on {fresh_brokers} brokers"
    );
    row.check(failed_without_ns == 0, "a send on the cached route failed");
    row.check(
        fresh_failed == 0,
        "a send to a topic made after the restart failed",
    );
    row.check(
        fresh_brokers == 2,
        "the new topic's route did not reach both brokers",
    );
    row
}

/// One of the two name servers killed (each in turn): route queries fail over to the other,
/// and no send fails.
fn namesrv_one(c: &Cluster) -> Row {
    let n = scaled(5_000);
    let p = producer(c, &[]);
    let mut sends = Sends::default();
    let mut held = HashMap::new();
    for ns in ["namesrv", "namesrv-2"] {
        // made while both run; the producer asks for its route only after the kill
        let topic = unique("FaultNsOne");
        c.create_topic(&topic, &["broker-a", "broker-b"]);
        c.ctl("kill", ns);
        for i in 0..n / 2 {
            sends.send(&p, &topic, format!("nsone-{ns}-{i}"));
        }
        c.ctl("restart", ns);
        held.extend(stored(c, &topic, &["broker-a", "broker-b"]));
    }
    p.shutdown();
    let mut row = Row::of_sends("one of two name servers SIGKILL", &sends, &held);
    row.check(sends.failed == 0, "a send failed with one name server up");
    row
}

/// broker-b restarted (SIGTERM, start) while a producer sends: sends go on, none hangs past its
/// timeout, and the producer's connection to broker-b comes back.
fn broker_restart(c: &Cluster) -> Row {
    let topic = unique("FaultRestart");
    c.create_topic(&topic, &["broker-a", "broker-b"]);
    let p = Arc::new(producer(c, &[("producer.send-message-timeout", "3000")]));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (p, topic, stop) = (Arc::clone(&p), topic.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut s = Sends::default();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                s.send(&p, &topic, format!("restart-{i}"));
                i += 1;
            }
            s
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    c.ctl("restart", "broker-b");
    let prepared = p.prepare(&Message::new(&topic, "restart-probe")).unwrap();
    let mq = MessageQueue {
        topic: topic.as_str().into(),
        broker_name: "broker-b".into(),
        queue_id: 1,
    };
    let back = eventually(BOUND, || {
        p.send_prepared_to_queue_blocking(&prepared, mq.clone())
            .ok()
    })
    .is_some();
    stop.store(true, Ordering::SeqCst);
    let sends = sender.join().unwrap();
    p.shutdown();
    let mut held = stored(c, &topic, &["broker-a", "broker-b"]);
    let probes = held.remove("restart-probe").unwrap_or(0);
    let mut row = Row::of_sends("broker-b restart", &sends, &held);
    row.notes += &format!(", broker-b reached again {back}");
    row.check(
        back && probes >= 1,
        "the producer never reached the restarted broker-b",
    );
    // a send never outlives its 3 s budget by much (retries share the budget)
    row.check(
        sends.slowest < Duration::from_secs(10),
        format!("a send hung for {} ms", sends.slowest.as_millis()),
    );
    row
}

// ---- consumer SIGKILL (the child re-runs this binary)

fn consumer(c: &Cluster, group: &str, topic: &str, settings: &[(&str, &str)]) -> PushConsumer {
    let mut cfg = Config::new();
    cfg.set("name-server", &c.namesrv).unwrap();
    cfg.set("consumer.group", group).unwrap();
    cfg.set("instance-name", &unique("fault")).unwrap();
    cfg.set("consumer.consume-from-where", "first").unwrap();
    cfg.set("consumer.rebalance-interval", "1000").unwrap();
    for (k, v) in settings {
        cfg.set(k, v).unwrap();
    }
    let consumer = PushConsumer::new(cfg.consumer_config().unwrap()).unwrap();
    consumer.subscribe(topic, "*").unwrap();
    consumer
}

const KILL_COMMIT_MS: &str = "200";

/// The child: consume and record (msg body, broker, queue, offset), one write per listener
/// call before it returns; slowly, so the kill lands mid-stream. Never returns.
fn consumer_child(dir: &Path) -> ! {
    let c = Cluster::from_env("FAULTS");
    let topic = std::env::var("FAULTS_TOPIC").unwrap();
    let group = std::env::var("FAULTS_GROUP").unwrap();
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("consumed"))
            .unwrap(),
    );
    let consumer = consumer(
        &c,
        &group,
        &topic,
        &[("consumer.persist-consumer-offset-interval", KILL_COMMIT_MS)],
    );
    consumer
        .set_listener(move |msgs| {
            let lines: String = msgs
                .iter()
                .map(|m| {
                    format!(
                        "{} {} {} {}\n",
                        String::from_utf8_lossy(m.message.body()),
                        m.broker_name,
                        m.queue_id,
                        m.queue_offset
                    )
                })
                .collect();
            file.lock().unwrap().write_all(lines.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct Kid(std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A consumer killed with SIGKILL mid-stream, and a new one of the same group: nothing lost;
/// what comes again is exactly what the killed one consumed at or above the offsets the broker
/// held when it died (its in-flight window).
fn consumer_sigkill(c: &Cluster) -> Row {
    let t0 = Instant::now();
    let topic = unique("FaultConsumerKill");
    let group = unique("FaultConsumerKillG");
    c.create_topic(&topic, &["broker-a", "broker-b"]);
    let n = scaled(20_000);
    let p = producer(c, &[]);
    let mut sends = Sends::default();
    for i in 0..n {
        sends.send(&p, &topic, format!("ck-{i}"));
    }
    p.shutdown();
    let dir: PathBuf = std::env::temp_dir().join(unique("rmq-fault-consumer"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kid = Kid(Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &dir)
        .env("FAULTS_TOPIC", &topic)
        .env("FAULTS_GROUP", &group)
        .stdout(Stdio::null())
        .spawn()
        .unwrap());
    let consumed_file = dir.join("consumed");
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    // the kill lands once a third is consumed
    let mid = eventually(BOUND, || {
        (lines(&consumed_file).lines().count() >= n / 3).then_some(())
    });
    let _ = kid.0.kill();
    let _ = kid.0.wait();
    let mut row = Row {
        name: "consumer SIGKILL + restart",
        sent_ok: sends.ok.len(),
        stored: 0,
        lost: 0,
        duplicated: 0,
        took: Duration::ZERO,
        notes: String::new(),
        broken: Vec::new(),
    };
    row.check(mid.is_some(), "the child never consumed a third");
    // the child's records: body -> (broker, queue, offset); a partial last line is dropped
    let text = lines(&consumed_file);
    let mut first: HashMap<String, (String, i32, i64)> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() == 4 {
            if let (Ok(q), Ok(o)) = (f[2].parse(), f[3].parse()) {
                first.insert(f[0].to_string(), (f[1].to_string(), q, o));
            }
        }
    }
    // the offsets the broker holds for the group now that the child is dead
    let mut committed: HashMap<(String, i32), i64> = HashMap::new();
    for (b, addr) in &c.brokers {
        for q in 0..QUEUES {
            let resp = call(addr, &query_consumer_offset(&group, &topic, b, q)).unwrap();
            let off = if resp.code == response::SUCCESS {
                resp.ext_parse("offset").unwrap()
            } else {
                0
            };
            committed.insert((b.clone(), q), off);
        }
    }
    let window: HashSet<&String> = first
        .iter()
        .filter(|(_, (b, q, o))| *o >= committed[&(b.clone(), *q)])
        .map(|(k, _)| k)
        .collect();

    let second: Arc<Mutex<Vec<String>>> = Arc::default();
    let consumer = consumer(c, &group, &topic, &[]);
    let s = Arc::clone(&second);
    consumer
        .set_listener(move |msgs| {
            s.lock().unwrap().extend(
                msgs.iter()
                    .map(|m| String::from_utf8_lossy(m.message.body()).into_owned()),
            );
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    let union = || -> HashSet<String> {
        let mut u: HashSet<String> = first.keys().cloned().collect();
        u.extend(second.lock().unwrap().iter().cloned());
        u
    };
    let all = eventually(BOUND, || sends.ok.is_subset(&union()).then_some(())).is_some();
    consumer.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let second = second.lock().unwrap().clone();
    let u = union();
    row.stored = u.len();
    row.lost = sends.ok.iter().filter(|b| !u.contains(*b)).count();
    let again: Vec<&String> = second.iter().filter(|b| first.contains_key(*b)).collect();
    let second_set: HashSet<&String> = second.iter().collect();
    row.duplicated = again.len() + (second.len() - second_set.len());
    let stray = again.iter().filter(|b| !window.contains(*b)).count();
    row.notes = format!(
        "consumed before the kill {}, in-flight window (at or above the committed offsets) {}, \
         re-delivered below a committed offset {stray}",
        first.len(),
        window.len()
    );
    row.check(all, "the new consumer did not finish the topic");
    row.check(stray == 0, "a message below a committed offset came again");
    row.check(
        again.len() <= window.len(),
        "more re-delivered than the in-flight window",
    );
    row.took = t0.elapsed();
    row
}

/// The master of a master/slave pair killed mid-consumption: the consumer goes on reading
/// from the slave until it has every message.
fn master_kill(c: &Cluster) -> Row {
    let t0 = Instant::now();
    let topic = unique("FaultMaster");
    let group = unique("FaultMasterG");
    c.create_topic(&topic, &["broker-m"]);
    let n = scaled(10_000);
    let p = producer(c, &[]);
    let mut sends = Sends::default();
    for i in 0..n {
        sends.send(&p, &topic, format!("ms-{i}"));
    }
    p.shutdown();
    // The slave has replicated every queue (ASYNC_MASTER: not at send time), and serves the
    // topic: it copies the master's topic table only every few seconds, and answers
    // TOPIC_NOT_EXIST to pulls of a topic it has not copied yet.
    let (master, slave) = (c.addr("broker-m"), c.addr("broker-m-slave"));
    let max = |addr: &str, q: i32| -> Option<i64> {
        let resp = call(addr, &get_max_offset(&topic, "broker-m", q)).ok()?;
        (resp.code == response::SUCCESS).then(|| resp.ext_parse("offset"))?
    };
    let replicated = eventually(BOUND, || {
        let served =
            call(slave, &pull(&topic, "broker-m", 0, 0)).is_ok_and(|r| r.code == response::SUCCESS);
        (served && (0..QUEUES).all(|q| max(master, q).is_some() && max(master, q) == max(slave, q)))
            .then_some(())
    })
    .is_some();
    // the consumer stops taking messages at a quarter until the master is dead
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let gate = Arc::new(AtomicBool::new(false));
    let consumer = consumer(
        c,
        &group,
        &topic,
        &[
            ("consumer.pull-batch-size", "8"),
            ("consumer.pull-threshold-for-queue", "16"),
            ("consumer.consume-message-batch-max-size", "1"),
        ],
    );
    let (g, open) = (Arc::clone(&got), Arc::clone(&gate));
    consumer
        .set_listener(move |msgs| {
            while g.lock().unwrap().len() >= n / 4 && !open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            g.lock().unwrap().extend(
                msgs.iter()
                    .map(|m| String::from_utf8_lossy(m.message.body()).into_owned()),
            );
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    let quarter = eventually(BOUND, || (got.lock().unwrap().len() >= n / 4).then_some(()));
    c.ctl("kill", "broker-m");
    let at_kill = got.lock().unwrap().len();
    gate.store(true, Ordering::SeqCst);
    let distinct = || got.lock().unwrap().iter().cloned().collect::<HashSet<_>>();
    let all = eventually(BOUND, || sends.ok.is_subset(&distinct()).then_some(())).is_some();
    consumer.shutdown().unwrap();
    c.ctl("restart", "broker-m");
    let d = distinct();
    let got = got.lock().unwrap().clone();
    let mut row = Row {
        name: "master SIGKILL, read from slave",
        sent_ok: sends.ok.len(),
        stored: d.len(),
        lost: sends.ok.iter().filter(|b| !d.contains(*b)).count(),
        duplicated: got.len() - d.len(),
        took: t0.elapsed(),
        notes: format!(
            "consumed when the master died {at_kill}, after it {}",
            got.len() - at_kill
        ),
        broken: Vec::new(),
    };
    row.check(replicated, "the slave never caught up with the master");
    row.check(quarter.is_some(), "the consumer never reached a quarter");
    row.check(all, "consumption did not finish from the slave");
    row
}

// -------------------------------------------------------------------------------------- main

type RowFn = fn(&Cluster) -> Row;

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        consumer_child(Path::new(&dir));
    }
    let rows: [(&str, &str, RowFn); 7] = [
        ("broker-kill", "FAULTS", broker_sigkill),
        ("broker-stop", "FAULTS", broker_sigstop),
        ("namesrv-both", "FAULTS", namesrv_both),
        ("namesrv-one", "FAULTS", namesrv_one),
        ("broker-restart", "FAULTS", broker_restart),
        ("consumer-kill", "FAULTS", consumer_sigkill),
        ("master-kill", "FAULTS_PAIR", master_kill),
    ];
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for w in &wanted {
        assert!(
            rows.iter().any(|(n, _, _)| n == w),
            "unknown row {w}; rows: {:?}",
            rows.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }
    println!(
        "| {:<34} | {:>8} | {:>8} | {:>5} | {:>10} | {:>7} | result |",
        "row", "sent OK", "stored", "lost", "duplicated", "time s"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|--------|",
        "-".repeat(36),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(7),
        "-".repeat(12),
        "-".repeat(9)
    );
    let mut failed = false;
    let mut notes = Vec::new();
    for (name, env, f) in rows {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let cluster = Cluster::from_env(env);
        let t = Instant::now();
        let mut row = f(&cluster);
        if row.took.is_zero() {
            row.took = t.elapsed();
        }
        let ok = row.lost == 0 && row.broken.is_empty();
        failed |= !ok;
        println!(
            "| {:<34} | {:>8} | {:>8} | {:>5} | {:>10} | {:>7.1} | {:<6} |",
            row.name,
            row.sent_ok,
            row.stored,
            row.lost,
            row.duplicated,
            row.took.as_secs_f64(),
            if ok { "ok" } else { "FAIL" }
        );
        notes.push(format!("{}: {}", row.name, row.notes));
        for b in &row.broken {
            notes.push(format!("{}: FAILED: {b}", row.name));
        }
    }
    for n in notes {
        println!("  {n}");
    }
    std::process::exit(i32::from(failed));
}
