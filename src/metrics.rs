//! Process-wide client metrics: counters, gauges and a send latency histogram by topic and
//! broker, exported in the Prometheus text format (`prometheus_text`).
//!
//! Updating costs no lock and no allocation once a series exists: series live in a fixed table
//! of buckets, each an insert-only list linked by atomic pointers. A series is made once, on the
//! first update of its key (topic, broker, and for consumers the group and queue), and lives as
//! long as the process, so an update is a hash, a short list walk and a few atomic adds.
use std::fmt::Write;
use std::ptr;
use std::sync::atomic::{
    AtomicI64, AtomicPtr, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use std::time::Duration;

/// Upper bounds of the send latency buckets, in ms (plus +Inf).
pub const LATENCY_BOUNDS_MS: [u64; 13] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    /// Sends to a topic on a broker.
    Send,
    /// Consumption of a topic from a broker by a group.
    Consume,
    /// One queue of a group's subscription (consume lag).
    Queue,
}

/// The counters of one key. Only the fields of its kind move.
#[derive(Default)]
struct Series {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    in_flight: AtomicI64,
    latency_buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    latency_sum_us: AtomicU64,
    /// Queue kind: the broker's max offset seen by the last pull, and the consumed offset.
    max_offset: AtomicI64,
    consumed_offset: AtomicI64,
}

struct Node {
    hash: u64,
    kind: Kind,
    topic: Box<str>,
    broker: Box<str>,
    group: Box<str>,
    queue: i32,
    series: Series,
    next: *const Node,
}

// SAFETY: a node is immutable once published except through its atomics, and never freed.
unsafe impl Sync for Node {}
unsafe impl Send for Node {}

const BUCKETS: usize = 1024;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
static TABLE: [AtomicPtr<Node>; BUCKETS] = [EMPTY; BUCKETS];

/// FNV-1a over the key's parts (a zero byte between them): a few instructions per byte, a
/// fraction of SipHash's cost on this per-send path; keys are the client's own names.
fn hash_of(kind: Kind, topic: &str, broker: &str, group: &str, queue: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = h.wrapping_mul(0x0000_0100_0000_01b3); // a zero byte ends each part
    };
    eat(&[kind as u8]);
    eat(topic.as_bytes());
    eat(broker.as_bytes());
    eat(group.as_bytes());
    eat(&queue.to_le_bytes());
    h
}

fn find(
    mut p: *const Node,
    hash: u64,
    kind: Kind,
    topic: &str,
    broker: &str,
    group: &str,
    queue: i32,
) -> Option<&'static Series> {
    while !p.is_null() {
        // SAFETY: published nodes are never freed or moved.
        let n: &'static Node = unsafe { &*p };
        if n.hash == hash
            && n.kind == kind
            && n.queue == queue
            && &*n.topic == topic
            && &*n.broker == broker
            && &*n.group == group
        {
            return Some(&n.series);
        }
        p = n.next;
    }
    None
}

/// The series of a key, made on first use (the only allocation, once per key).
fn series(kind: Kind, topic: &str, broker: &str, group: &str, queue: i32) -> &'static Series {
    let hash = hash_of(kind, topic, broker, group, queue);
    let bucket = &TABLE[(hash as usize) % BUCKETS];
    let mut head = bucket.load(Acquire);
    if let Some(s) = find(head, hash, kind, topic, broker, group, queue) {
        return s;
    }
    let node = Box::into_raw(Box::new(Node {
        hash,
        kind,
        topic: topic.into(),
        broker: broker.into(),
        group: group.into(),
        queue,
        series: Series::default(),
        next: head,
    }));
    loop {
        match bucket.compare_exchange(head, node, AcqRel, Acquire) {
            // SAFETY: just published; lives for the rest of the process.
            Ok(_) => return unsafe { &(*node).series },
            Err(now) => {
                // Another thread added a node meanwhile: maybe this very key.
                if let Some(s) = find(now, hash, kind, topic, broker, group, queue) {
                    // SAFETY: ours was never published.
                    drop(unsafe { Box::from_raw(node) });
                    return s;
                }
                head = now;
                // SAFETY: not yet published; only this thread sees it.
                unsafe { (*node).next = head };
            }
        }
    }
}

/// One send attempt to `broker`, as it begins; `retry` when it is not the first of its send.
/// The returned guard counts the attempt in flight until `finish` (or drop, as a failure).
pub(crate) fn send_attempt(topic: &str, broker: &str, retry: bool) -> SendAttempt {
    let s = series(Kind::Send, topic, broker, "", -1);
    if retry {
        s.retries.fetch_add(1, Relaxed);
    }
    s.in_flight.fetch_add(1, Relaxed);
    SendAttempt {
        series: s,
        done: false,
    }
}

pub(crate) struct SendAttempt {
    series: &'static Series,
    done: bool,
}

impl SendAttempt {
    /// The attempt's outcome: `stored` = the broker answered that it stored `messages` messages
    /// of `bytes` bytes of body.
    pub(crate) fn finish(mut self, elapsed: Duration, stored: Option<(u64, u64)>) {
        self.done = true;
        let s = self.series;
        s.in_flight.fetch_sub(1, Relaxed);
        let us = elapsed.as_micros() as u64;
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| us <= b * 1000)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        s.latency_buckets[i].fetch_add(1, Relaxed);
        s.latency_sum_us.fetch_add(us, Relaxed);
        match stored {
            Some((messages, bytes)) => {
                s.messages.fetch_add(messages, Relaxed);
                s.bytes.fetch_add(bytes, Relaxed);
            }
            None => {
                s.errors.fetch_add(1, Relaxed);
            }
        }
    }
}

impl Drop for SendAttempt {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled mid-way (the future was dropped): no longer in flight, and failed.
            self.series.in_flight.fetch_sub(1, Relaxed);
            self.series.errors.fetch_add(1, Relaxed);
        }
    }
}

/// Messages a group consumed (`ok`) or handed back for a later retry, from `broker`.
pub(crate) fn consumed(
    topic: &str,
    broker: &str,
    group: &str,
    messages: u64,
    bytes: u64,
    ok: bool,
) {
    let s = series(Kind::Consume, topic, broker, group, -1);
    if ok {
        s.messages.fetch_add(messages, Relaxed);
        s.bytes.fetch_add(bytes, Relaxed);
    } else {
        s.errors.fetch_add(messages, Relaxed);
    }
}

/// A queue's broker max offset (from a pull) and the group's consumed offset; the lag is the
/// distance between them.
pub(crate) fn queue_offsets(
    topic: &str,
    broker: &str,
    group: &str,
    queue: i32,
    max_offset: Option<i64>,
    consumed_offset: i64,
) {
    let s = series(Kind::Queue, topic, broker, group, queue);
    if let Some(m) = max_offset {
        s.max_offset.store(m, Relaxed);
    }
    s.consumed_offset.store(consumed_offset, Relaxed);
}

/// The metric families, by name.
pub const NAMES: &[&str] = &[
    "rmq_messages_sent_total",
    "rmq_bytes_sent_total",
    "rmq_send_errors_total",
    "rmq_send_retries_total",
    "rmq_sends_in_flight",
    "rmq_send_latency_seconds_count",
    "rmq_messages_consumed_total",
    "rmq_bytes_consumed_total",
    "rmq_consume_failures_total",
    "rmq_consume_lag",
];

fn all_nodes() -> Vec<&'static Node> {
    let mut nodes = Vec::new();
    for bucket in &TABLE {
        let mut p: *const Node = bucket.load(Acquire);
        while !p.is_null() {
            // SAFETY: published nodes are never freed.
            let n: &'static Node = unsafe { &*p };
            nodes.push(n);
            p = n.next;
        }
    }
    nodes.sort_by(|a, b| {
        (a.kind, &a.topic, &a.broker, &a.group, a.queue)
            .cmp(&(b.kind, &b.topic, &b.broker, &b.group, b.queue))
    });
    nodes
}

fn lag(s: &Series) -> u64 {
    (s.max_offset.load(Relaxed) - s.consumed_offset.load(Relaxed)).max(0) as u64
}

fn value_of(name: &str, n: &Node) -> Option<u64> {
    let s = &n.series;
    let v = match (n.kind, name) {
        (Kind::Send, "rmq_messages_sent_total") => s.messages.load(Relaxed),
        (Kind::Send, "rmq_bytes_sent_total") => s.bytes.load(Relaxed),
        (Kind::Send, "rmq_send_errors_total") => s.errors.load(Relaxed),
        (Kind::Send, "rmq_send_retries_total") => s.retries.load(Relaxed),
        (Kind::Send, "rmq_sends_in_flight") => s.in_flight.load(Relaxed).max(0) as u64,
        (Kind::Send, "rmq_send_latency_seconds_count") => {
            s.latency_buckets.iter().map(|b| b.load(Relaxed)).sum()
        }
        (Kind::Consume, "rmq_messages_consumed_total") => s.messages.load(Relaxed),
        (Kind::Consume, "rmq_bytes_consumed_total") => s.bytes.load(Relaxed),
        (Kind::Consume, "rmq_consume_failures_total") => s.errors.load(Relaxed),
        (Kind::Queue, "rmq_consume_lag") => lag(s),
        _ => return None,
    };
    Some(v)
}

/// The current value of the metric `name` (one of `NAMES`) for `topic`, summed over every
/// broker (or only `broker`), group and queue; `None` for an unknown name. A topic nothing
/// happened to yet reads 0.
pub fn value(name: &str, topic: &str, broker: Option<&str>) -> Option<u64> {
    if !NAMES.contains(&name) {
        return None;
    }
    Some(
        all_nodes()
            .into_iter()
            .filter(|n| &*n.topic == topic && broker.map_or(true, |b| &*n.broker == b))
            .filter_map(|n| value_of(name, n))
            .sum(),
    )
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(n: &Node) -> String {
    let mut l = format!(
        "topic=\"{}\",broker=\"{}\"",
        escape(&n.topic),
        escape(&n.broker)
    );
    if n.kind != Kind::Send {
        let _ = write!(l, ",group=\"{}\"", escape(&n.group));
    }
    if n.kind == Kind::Queue {
        let _ = write!(l, ",queue=\"{}\"", n.queue);
    }
    l
}

/// Every series in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus_text() -> String {
    let nodes = all_nodes();
    let mut out = String::new();
    let families: &[(&str, &str, &str, Kind)] = &[
        (
            "rmq_messages_sent_total",
            "counter",
            "Messages the brokers stored, by topic and broker.",
            Kind::Send,
        ),
        (
            "rmq_bytes_sent_total",
            "counter",
            "Body bytes the brokers stored (as sent: compressed, or the encoded batch).",
            Kind::Send,
        ),
        (
            "rmq_send_errors_total",
            "counter",
            "Send attempts that failed.",
            Kind::Send,
        ),
        (
            "rmq_send_retries_total",
            "counter",
            "Send attempts after the first of their send.",
            Kind::Send,
        ),
        (
            "rmq_sends_in_flight",
            "gauge",
            "Send attempts waiting for their broker's answer.",
            Kind::Send,
        ),
        (
            "rmq_messages_consumed_total",
            "counter",
            "Messages consumed, by topic, broker and group.",
            Kind::Consume,
        ),
        (
            "rmq_bytes_consumed_total",
            "counter",
            "Body bytes of the messages consumed.",
            Kind::Consume,
        ),
        (
            "rmq_consume_failures_total",
            "counter",
            "Messages handed back for a later retry.",
            Kind::Consume,
        ),
        (
            "rmq_consume_lag",
            "gauge",
            "Messages of a queue stored but not yet consumed by the group (as of the last pull).",
            Kind::Queue,
        ),
    ];
    for (name, kind_word, help, kind) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind_word}");
        for n in nodes.iter().filter(|n| n.kind == *kind) {
            let v = value_of(name, n).unwrap_or(0);
            let _ = writeln!(out, "{name}{{{}}} {v}", labels(n));
        }
    }
    let name = "rmq_send_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from writing a send attempt to its broker's answer."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for n in nodes.iter().filter(|n| n.kind == Kind::Send) {
        let l = labels(n);
        let s = &n.series;
        let mut cumulative = 0;
        for (i, b) in s.latency_buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = match LATENCY_BOUNDS_MS.get(i) {
                Some(ms) => format!("{}", *ms as f64 / 1000.0),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{le}\"}} {cumulative}");
        }
        let sum = s.latency_sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{l}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{l}}} {cumulative}");
    }
    let name = "rmq_trace_records_dropped_total";
    let _ = writeln!(
        out,
        "# HELP {name} Message trace records dropped because the trace queue was full."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {}", crate::trace::dropped());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_made_once_and_counted_exactly_across_threads() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for i in 0..1000 {
                        let a = send_attempt("MetricsUnitT", "b1", i % 10 == 0);
                        a.finish(Duration::from_millis(3), Some((1, 10)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v = |n| value(n, "MetricsUnitT", Some("b1")).unwrap();
        assert_eq!(v("rmq_messages_sent_total"), 8000);
        assert_eq!(v("rmq_bytes_sent_total"), 80000);
        assert_eq!(v("rmq_send_retries_total"), 800);
        assert_eq!(v("rmq_sends_in_flight"), 0);
        assert_eq!(v("rmq_send_latency_seconds_count"), 8000);
        let made = all_nodes()
            .into_iter()
            .filter(|n| &*n.topic == "MetricsUnitT")
            .count();
        assert_eq!(made, 1);
        let text = prometheus_text();
        assert!(
            text.contains("rmq_messages_sent_total{topic=\"MetricsUnitT\",broker=\"b1\"} 8000"),
            "{text}"
        );
        assert!(text.contains(
            "rmq_send_latency_seconds_bucket{topic=\"MetricsUnitT\",broker=\"b1\",le=\"0.005\"} 8000"
        ));
        assert!(text.contains(
            "rmq_send_latency_seconds_bucket{topic=\"MetricsUnitT\",broker=\"b1\",le=\"0.002\"} 0"
        ));
    }

    #[test]
    fn failures_lag_and_labels() {
        drop(send_attempt("MetricsUnitF", "b\"x", false));
        assert_eq!(
            value("rmq_send_errors_total", "MetricsUnitF", None),
            Some(1)
        );
        assert_eq!(value("rmq_sends_in_flight", "MetricsUnitF", None), Some(0));
        consumed("MetricsUnitF", "b2", "G", 3, 30, true);
        consumed("MetricsUnitF", "b2", "G", 2, 20, false);
        queue_offsets("MetricsUnitF", "b2", "G", 1, Some(10), 4);
        queue_offsets("MetricsUnitF", "b2", "G", 2, Some(5), 5);
        let v = |n| value(n, "MetricsUnitF", Some("b2")).unwrap();
        assert_eq!(v("rmq_messages_consumed_total"), 3);
        assert_eq!(v("rmq_consume_failures_total"), 2);
        assert_eq!(v("rmq_consume_lag"), 6);
        assert_eq!(value("no_such_metric", "MetricsUnitF", None), None);
        let text = prometheus_text();
        assert!(text.contains("broker=\"b\\\"x\""), "{text}");
        assert!(text.contains(
            "rmq_consume_lag{topic=\"MetricsUnitF\",broker=\"b2\",group=\"G\",queue=\"1\"} 6"
        ));
    }
}
