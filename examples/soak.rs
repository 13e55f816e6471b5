//! Soak: producers and a consumer under load on the two-broker cluster of the fault table while
//! the brokers restart in turn (broker-a, then broker-b, ...) every `SOAK_RESTART_SECONDS`.
//! Each minute it prints the process's RSS, threads and open fds, what was sent OK and consumed,
//! and the duplicates; at the end it waits for the consumer to catch up and reports what was
//! sent OK but never consumed (lost). Exit status 1 if anything was lost.
//!
//! `scripts/test-faults.sh --soak` starts the cluster and runs this (`make soak`).
//! Environment: the FAULTS_* variables of the fault table, and
//!   SOAK_SECONDS          how long the load runs                       (600)
//!   SOAK_RESTART_SECONDS  time between two broker restarts             (120)
#[path = "fault_support/mod.rs"]
mod fault_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_support::{unique, Cluster};
use rmq::{Config, ConsumeResult, Message, Producer, PushConsumer};

const PRODUCERS: usize = 2;
/// How long the consumer may take to catch up once the load stops.
const DRAIN: Duration = Duration::from_secs(180);

fn secs(k: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(k)
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{k} is a number of seconds"))
            })
            .unwrap_or(default),
    )
}

/// What was sent OK and how often each was consumed, by producer thread and send number (the
/// body is `soak-<thread>-<number>`): two bytes a message, so that the process's RSS shows the
/// client's memory rather than this bookkeeping.
#[derive(Default)]
struct Ledger {
    sent_ok: Vec<Vec<bool>>,
    consumed: Vec<Vec<u8>>,
}

impl Ledger {
    fn slot<T: Default + Clone>(v: &mut Vec<Vec<T>>, t: usize, i: usize) -> &mut T {
        if v.len() <= t {
            v.resize(t + 1, Vec::new());
        }
        if v[t].len() <= i {
            v[t].resize(i + 1, T::default());
        }
        &mut v[t][i]
    }

    fn consumed(&mut self, body: &[u8]) {
        let body = String::from_utf8_lossy(body);
        let mut f = body.strip_prefix("soak-").unwrap_or("").split('-');
        if let (Some(Ok(t)), Some(Ok(i))) = (f.next().map(str::parse), f.next().map(str::parse)) {
            let c = Self::slot(&mut self.consumed, t, i);
            *c = c.saturating_add(1);
        }
    }

    /// Bytes this bookkeeping holds (capacities), to tell the client's memory from it.
    fn bytes(&self) -> usize {
        let sent: usize = self.sent_ok.iter().map(Vec::capacity).sum();
        let consumed: usize = self.consumed.iter().map(Vec::capacity).sum();
        sent + consumed
    }

    fn count(&self, t: usize, i: usize) -> u8 {
        self.consumed
            .get(t)
            .and_then(|v| v.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// (sent OK, consumed at least once, consumed more than once, sent OK but not consumed)
    fn totals(&self) -> (usize, usize, usize, usize) {
        let sent = self.sent_ok.iter().flatten().filter(|ok| **ok).count();
        let consumed = self.consumed.iter().flatten().filter(|n| **n > 0).count();
        let dups = self
            .consumed
            .iter()
            .flatten()
            .map(|n| usize::from(n.saturating_sub(1)))
            .sum();
        let missing = self
            .sent_ok
            .iter()
            .enumerate()
            .flat_map(|(t, v)| v.iter().enumerate().map(move |(i, ok)| (t, i, *ok)))
            .filter(|(t, i, ok)| *ok && self.count(*t, *i) == 0)
            .count();
        (sent, consumed, dups, missing)
    }
}

/// RSS in kB, threads, open fds of this process.
fn usage() -> (u64, u64, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    (field("VmRSS:"), field("Threads:"), fds)
}

fn main() {
    let cluster = Cluster::from_env("FAULTS");
    let namesrv = cluster.namesrv.clone();
    let run_for = secs("SOAK_SECONDS", 600);
    let restart_every = secs("SOAK_RESTART_SECONDS", 120);
    let topic = unique("Soak");
    cluster.create_topic(&topic, &["broker-a", "broker-b"]);
    let mut cfg = Config::new();
    cfg.set("name-server", &namesrv).unwrap();
    cfg.set("producer.group", &unique("SoakP")).unwrap();
    cfg.set("producer.send-message-timeout", "3000").unwrap();
    let producer = Arc::new(Producer::new(cfg.producer_config().unwrap()).unwrap());
    producer.start().unwrap();
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut ccfg = Config::new();
    ccfg.set("name-server", &namesrv).unwrap();
    ccfg.set("consumer.group", &unique("SoakG")).unwrap();
    ccfg.set("consumer.consume-from-where", "first").unwrap();
    let consumer = PushConsumer::new(ccfg.consumer_config().unwrap()).unwrap();
    consumer.subscribe(&topic, "*").unwrap();
    let l = Arc::clone(&ledger);
    consumer
        .set_listener(move |msgs| {
            let mut l = l.lock().unwrap();
            for m in msgs {
                l.consumed(m.message.body());
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();

    let failed = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|t| {
            let (p, topic, l) = (Arc::clone(&producer), topic.clone(), Arc::clone(&ledger));
            let (failed, stop) = (Arc::clone(&failed), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let ok = p
                        .send_blocking(&Message::new(&topic, format!("soak-{t}-{i}")))
                        .is_ok();
                    *Ledger::slot(&mut l.lock().unwrap().sent_ok, t, i) = ok;
                    if !ok {
                        *failed.lock().unwrap() += 1;
                    }
                    i += 1;
                }
            })
        })
        .collect();

    let start = Instant::now();
    let report = |label: &str| {
        let (rss, threads, fds) = usage();
        let (sent, consumed, dups, ledger_kb) = {
            let l = ledger.lock().unwrap();
            let (sent, consumed, dups, _) = l.totals();
            (sent, consumed, dups, l.bytes() / 1024)
        };
        // "rss-ledger": the RSS less this program's own two bytes per message, i.e. the client's
        // share, which is the figure that must stay flat
        println!(
            "{label:>6} {:>5}s  rss {:>7} kB  ledger {:>6} kB  rss-ledger {:>7} kB  threads {:>3}  \
             fds {:>4}  sent OK {:>8}  failed {:>5}  consumed {:>8}  duplicated {:>5}",
            start.elapsed().as_secs(),
            rss,
            ledger_kb,
            rss.saturating_sub(ledger_kb as u64),
            threads,
            fds,
            sent,
            failed.lock().unwrap(),
            consumed,
            dups
        );
    };
    let mut next_minute = start + Duration::from_secs(60);
    let mut next_restart = start + restart_every;
    let mut restarts = 0usize;
    while start.elapsed() < run_for {
        std::thread::sleep(Duration::from_millis(200));
        if Instant::now() >= next_restart {
            let name = ["broker-a", "broker-b"][restarts % 2];
            cluster.ctl("restart", name);
            println!("restart {name}: back after {} s", start.elapsed().as_secs());
            restarts += 1;
            next_restart = Instant::now() + restart_every;
        }
        if Instant::now() >= next_minute {
            report("minute");
            next_minute += Duration::from_secs(60);
        }
    }
    stop.store(true, Ordering::SeqCst);
    for p in producers {
        p.join().unwrap();
    }
    producer.shutdown();
    let deadline = Instant::now() + DRAIN;
    let missing = || ledger.lock().unwrap().totals().3;
    while missing() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    report("end");
    consumer.shutdown().unwrap();
    let (sent, _, dups, lost) = ledger.lock().unwrap().totals();
    println!(
        "soak: {} s, {restarts} broker restarts, sent OK {sent}, duplicated {dups}, lost {lost}",
        start.elapsed().as_secs()
    );
    std::process::exit(i32::from(lost > 0));
}
