//! Network faults between the client and the real name server and broker, made by a TCP fault
//! proxy (tests/fault_proxy): a delay, a blackhole, a response frame cut short (then closed, or
//! stalled), a reset, and GO_AWAY. Each row runs sync sends and 1000 async sends in flight
//! through the fault and checks that:
//! - every call returns, a failing one within the send timeout plus a slack (no hang);
//! - every async callback fires exactly once (counted per send);
//! - after shutdown the process has as many fds (the proxies' own left out) and no more rmq
//!   threads than before the producer;
//! - once the fault clears, the producer sends again.
//!
//! The consumer row: a push consumer behind the proxy whose connections are reset and whose
//! responses are cut short while it consumes; it gets every message sent, read back by id.
//!
//! The proxy in front of the name server rewrites the broker address in route answers to the
//! broker proxy's, so all the client's traffic crosses the proxies. The rows run one at a time
//! (a lock), so the fd and thread counts are this row's alone.
mod common;
mod fault_proxy;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{eventually, namesrv, unique};
use fault_proxy::{is_proxy_fd, FaultProxy, Mode};
use rmq::{Config, ConsumeResult, Error, Message, Producer, PushConsumer};

/// The producer's send timeout (producer.send-message-timeout), retries included.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// What a failing call may take beyond TIMEOUT on a busy machine: scheduling, not protocol.
const SLACK: Duration = Duration::from_millis(2000);
const ASYNC_SENDS: usize = 1000;
const SYNC_SENDS: usize = 3;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The name-server and broker proxies of one row, and its topic.
struct Rig {
    ns: FaultProxy,
    broker: FaultProxy,
    topic: String,
}

/// Creates the row's topic with a producer that talks to the cluster directly, learns the
/// broker's address from it, and puts proxies in front of both.
fn rig(prefix: &str) -> Rig {
    let topic = unique(prefix);
    let direct = producer_with(&namesrv(), &[]);
    let r = direct
        .send_blocking(&Message::new(&topic, "creates the topic"))
        .expect("a direct send creates the topic");
    let broker_addr = direct
        .instance()
        .unwrap()
        .master_addr(&r.queue.broker_name)
        .expect("the route names the broker")
        .to_string();
    direct.shutdown();
    let broker = FaultProxy::start(&broker_addr);
    let ns = FaultProxy::rewriting(&namesrv(), vec![(broker_addr, broker.addr())]);
    Rig { ns, broker, topic }
}

fn producer_with(namesrv: &str, extra: &[(&str, &str)]) -> Producer {
    let mut c = Config::new();
    c.set("name-server", namesrv).unwrap();
    c.set("producer.group", &unique("FaultProxyGroup")).unwrap();
    c.set("instance-name", &unique("faultproxy")).unwrap();
    c.set(
        "producer.send-message-timeout",
        &TIMEOUT.as_millis().to_string(),
    )
    .unwrap();
    c.set("producer.max-in-flight-async-sends", "2000").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c.producer_config().unwrap()).unwrap();
    p.start().unwrap();
    p
}

/// A producer behind the proxies that has sent once through them.
fn proxied_producer(rig: &Rig) -> Producer {
    let p = producer_with(&rig.ns.addr(), &[]);
    p.send_blocking(&Message::new(&rig.topic, "warm-up"))
        .expect("a send through the proxies");
    assert!(
        rig.broker.accepted() >= 1,
        "the send went through the broker proxy"
    );
    p
}

/// The process's fds that are not the proxies', and its rmq threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    fds: usize,
    threads: usize,
}

fn usage() -> Usage {
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|fd| !is_proxy_fd(*fd))
        .count();
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("rmq"))
        .count();
    Usage { fds, threads }
}

/// Shuts `p` down and checks that its fds and threads are gone (they go within a few seconds:
/// threads exit and the proxies' ends close asynchronously).
fn shutdown_without_leaks(p: Producer, before: Usage) {
    p.shutdown();
    drop(p);
    let settled = eventually(Duration::from_secs(10), || {
        let now = usage();
        (now.fds <= before.fds && now.threads <= before.threads).then_some(now)
    });
    assert!(
        settled.is_some(),
        "fds or threads leaked: before {before:?}, after {:?}",
        usage()
    );
}

/// Outcome counts of a run of sends.
#[derive(Debug, Default)]
struct Outcomes {
    ok: usize,
    timeouts: usize,
    other: Vec<String>,
    /// Async runs: per send, whether it was accepted and how often its callback fired.
    calls: Vec<(bool, Arc<Vec<AtomicU32>>)>,
}

impl Outcomes {
    fn add(&mut self, r: Result<(), Error>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(Error::Timeout(_)) => self.timeouts += 1,
            Err(e) => self.other.push(e.to_string()),
        }
    }

    fn failed(&self) -> usize {
        self.timeouts + self.other.len()
    }

    /// Every accepted send's callback fired exactly once, the others' never.
    fn assert_each_callback_once(&self) {
        for (i, (accepted, calls)) in self.calls.iter().enumerate() {
            let c = calls[i].load(Ordering::Acquire);
            assert_eq!(
                c,
                u32::from(*accepted),
                "callback of send {i} fired {c} times"
            );
        }
    }
}

/// `n` sync sends; each must return, a failure within TIMEOUT + SLACK.
fn sync_sends(p: &Producer, topic: &str, n: usize) -> Outcomes {
    let mut out = Outcomes::default();
    for i in 0..n {
        let began = Instant::now();
        let r = p.send_blocking(&Message::new(topic, format!("sync {i}")));
        let took = began.elapsed();
        if r.is_err() {
            assert!(took <= TIMEOUT + SLACK, "a failed sync send took {took:?}");
        }
        out.add(r.map(|_| ()));
    }
    out
}

/// `n` async sends, all in flight at once, and `during` run once they are: every callback
/// must fire exactly once, all within TIMEOUT + SLACK of the last send.
fn async_sends(p: &Producer, topic: &str, n: usize, during: impl FnOnce()) -> Outcomes {
    let calls: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let (tx, rx) = mpsc::channel();
    let mut out = Outcomes::default();
    let mut accepted = vec![false; n];
    for (i, acc) in accepted.iter_mut().enumerate() {
        let (calls, tx) = (Arc::clone(&calls), tx.clone());
        let sent = p.send_with_callback(&Message::new(topic, format!("async {i}")), move |r| {
            calls[i].fetch_add(1, Ordering::AcqRel);
            let _ = tx.send(r.map(|_| ()));
        });
        match sent {
            Ok(()) => *acc = true,
            Err(e) => out.add(Err(e)), // refused up front: no callback, by contract
        }
    }
    drop(tx);
    during();
    let expected = accepted.iter().filter(|a| **a).count();
    let deadline = Instant::now() + TIMEOUT + SLACK;
    for _ in 0..expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = rx.recv_timeout(left).unwrap_or_else(|_| {
            let fired = calls
                .iter()
                .filter(|c| c.load(Ordering::Acquire) > 0)
                .count();
            panic!("only {fired} of {expected} callbacks fired within the timeout and slack")
        });
        out.add(r);
    }
    out.calls = accepted
        .into_iter()
        .map(|a| (a, Arc::clone(&calls)))
        .collect();
    out.assert_each_callback_once();
    out
}

/// The producer sends again (the fault has cleared): a send succeeds within 10 s.
fn works_again(p: &Producer, topic: &str) {
    let ok = eventually(Duration::from_secs(10), || {
        p.send_blocking(&Message::new(topic, "after the fault"))
            .ok()
    });
    assert!(
        ok.is_some(),
        "the producer does not send after the fault cleared"
    );
}

/// A row: sync sends, then 1000 async sends, under the fault `start` sets up; `during` runs
/// while the async sends are in flight; `clear` ends the fault.
fn row(
    prefix: &str,
    start: impl FnOnce(&Rig),
    during: impl FnOnce(&Rig),
    clear: impl FnOnce(&Rig),
) -> (Outcomes, Outcomes) {
    let _serial = serial();
    let rig = rig(prefix);
    let before = usage();
    let p = proxied_producer(&rig);
    start(&rig);
    let sync = sync_sends(&p, &rig.topic, SYNC_SENDS);
    let asynchronous = async_sends(&p, &rig.topic, ASYNC_SENDS, || during(&rig));
    clear(&rig);
    works_again(&p, &rig.topic);
    eprintln!(
        "{prefix}: sync {sync:?}; async ok {} timeouts {} other {} (first: {:?})",
        asynchronous.ok,
        asynchronous.timeouts,
        asynchronous.other.len(),
        asynchronous.other.first()
    );
    shutdown_without_leaks(p, before);
    // Shutdown cancels what is pending: no callback may fire a second time on the way.
    asynchronous.assert_each_callback_once();
    (sync, asynchronous)
}

#[test]
fn a_blackhole_times_out_every_call_and_the_producer_recovers() {
    let (sync, asynchronous) = row(
        "ProxyBlackhole",
        |r| r.broker.set_mode(Mode::Blackhole),
        |_| {},
        |r| r.broker.set_mode(Mode::Pass),
    );
    assert_eq!(sync.ok, 0, "nothing answers in a blackhole: {sync:?}");
    assert_eq!(asynchronous.ok, 0);
    assert_eq!(asynchronous.failed(), ASYNC_SENDS);
}

#[test]
fn a_delay_beyond_the_timeout_times_out_and_the_producer_recovers() {
    let (sync, asynchronous) = row(
        "ProxyDelayLong",
        |r| {
            r.broker
                .set_mode(Mode::Delay(2 * TIMEOUT.as_millis() as u64))
        },
        |_| {},
        |r| r.broker.set_mode(Mode::Pass),
    );
    assert_eq!(sync.ok, 0, "{sync:?}");
    assert_eq!(asynchronous.ok, 0);
    assert_eq!(asynchronous.failed(), ASYNC_SENDS);
}

#[test]
fn a_short_delay_slows_sends_down_without_failing_sync_ones() {
    let (sync, asynchronous) = row(
        "ProxyDelayShort",
        |r| r.broker.set_mode(Mode::Delay(100)),
        |_| {},
        |r| r.broker.set_mode(Mode::Pass),
    );
    assert_eq!(sync.ok, SYNC_SENDS, "{sync:?}");
    // 100 ms per frame, one frame after the other: the first async sends are answered in
    // time, most of the 1000 are not; what counts is that each one was answered once.
    assert_eq!(asynchronous.ok + asynchronous.failed(), ASYNC_SENDS);
}

#[test]
fn a_reset_fails_or_retries_what_is_in_flight_and_the_producer_reconnects() {
    let (sync, asynchronous) = row(
        "ProxyReset",
        |r| r.broker.reset_all(),
        |r| r.broker.reset_all(),
        |_| {},
    );
    // After a reset the next send dials again.
    assert_eq!(sync.ok, SYNC_SENDS, "{sync:?}");
    assert_eq!(asynchronous.ok + asynchronous.failed(), ASYNC_SENDS);
}

#[test]
fn a_response_cut_short_then_closed_fails_or_retries_and_the_producer_recovers() {
    let (sync, asynchronous) = row(
        "ProxyTruncateClose",
        |r| r.broker.truncate_next_response(true),
        |r| r.broker.truncate_next_response(true),
        |_| {},
    );
    assert_eq!(sync.ok + sync.failed(), SYNC_SENDS);
    assert_eq!(asynchronous.ok + asynchronous.failed(), ASYNC_SENDS);
}

#[test]
fn a_response_cut_short_then_stalled_times_out_and_the_producer_recovers() {
    let mut truncated = 0;
    let (sync, _) = row(
        "ProxyTruncateStall",
        |r| r.broker.truncate_next_response(false),
        |_| {},
        |r| truncated = r.broker.truncated(),
    );
    assert_eq!(truncated, 1);
    assert!(
        sync.ok < SYNC_SENDS,
        "the stalled connection answers nothing: {sync:?}"
    );
}

#[test]
fn go_away_moves_requests_to_a_new_connection_and_fails_none() {
    let _serial = serial();
    let rig = rig("ProxyGoAway");
    let before = usage();
    let p = proxied_producer(&rig);

    let accepted = rig.broker.accepted();
    rig.broker.go_away();
    let sync = sync_sends(&p, &rig.topic, SYNC_SENDS);
    assert_eq!(sync.ok, SYNC_SENDS, "{sync:?}");
    assert!(
        rig.broker.go_aways() >= 1,
        "the broker proxy answered GO_AWAY"
    );
    assert!(
        rig.broker.accepted() > accepted,
        "the client opened a new connection"
    );
    // The old connection, drained, is closed by the client.
    assert!(
        eventually(Duration::from_secs(5), || (rig.broker.open_links() == 1)
            .then_some(()))
        .is_some(),
        "{} broker connections open, 1 expected",
        rig.broker.open_links()
    );

    // 1000 async sends that all meet GO_AWAY on the connection they were written to.
    let go_aways = rig.broker.go_aways();
    rig.broker.go_away();
    let asynchronous = async_sends(&p, &rig.topic, ASYNC_SENDS, || {});
    assert_eq!(
        asynchronous.ok,
        ASYNC_SENDS,
        "{:?}",
        asynchronous.other.first()
    );
    assert!(rig.broker.go_aways() > go_aways);
    // Name server and broker: the connections that went away left the table.
    assert!(p.instance().unwrap().remoting().connection_count() <= 2);
    works_again(&p, &rig.topic);
    shutdown_without_leaks(p, before);
    asynchronous.assert_each_callback_once();
}

#[test]
fn a_push_consumer_behind_resets_and_cut_responses_loses_nothing() {
    let _serial = serial();
    let rig = rig("ProxyConsumer");
    let direct = producer_with(&namesrv(), &[]);
    let mut sent = HashSet::new();
    let mut send = |n: usize| {
        for i in 0..n {
            let r = direct
                .send_blocking(&Message::new(&rig.topic, format!("c{i}")))
                .expect("direct sends");
            sent.insert(r.msg_id.to_string());
        }
    };
    send(100);

    let mut c = Config::new();
    c.set("name-server", &rig.ns.addr()).unwrap();
    c.set("consumer.group", &unique("FaultProxyConsumer"))
        .unwrap();
    c.set("instance-name", &unique("faultproxyc")).unwrap();
    c.set("consumer.consume-from-where", "first").unwrap();
    c.set("consumer.rebalance-interval", "1000").unwrap();
    let consumer = PushConsumer::new(c.consumer_config().unwrap()).unwrap();
    consumer.subscribe(&rig.topic, "*").unwrap();
    let got: Arc<Mutex<HashSet<String>>> = Arc::default();
    let g = Arc::clone(&got);
    consumer
        .set_listener(move |msgs| {
            let mut g = g.lock().unwrap();
            for m in msgs {
                g.insert(m.msg_id().to_string());
            }
            ConsumeResult::Success
        })
        .unwrap();
    consumer.start().unwrap();
    let consumed = |n: usize| {
        eventually(Duration::from_secs(30), || {
            (got.lock().unwrap().len() >= n).then_some(())
        })
        .is_some()
    };
    // The warm-up message of rig() is in the topic too.
    assert!(consumed(100), "consumed {}", got.lock().unwrap().len());

    rig.broker.reset_all();
    send(100);
    assert!(
        consumed(200),
        "after a reset: consumed {}",
        got.lock().unwrap().len()
    );

    rig.broker.truncate_next_response(true);
    send(100);
    rig.broker.reset_all();
    send(100);
    let all = eventually(Duration::from_secs(15), || {
        let g = got.lock().unwrap();
        sent.is_subset(&g).then_some(())
    });
    let missing = sent.difference(&got.lock().unwrap()).count();
    assert!(
        all.is_some(),
        "{missing} of {} messages never consumed",
        sent.len()
    );
    assert_eq!(rig.broker.truncated(), 1, "a response was cut short");
    assert!(
        rig.broker.accepted() >= 3,
        "the consumer reconnected after each fault"
    );
    consumer.shutdown().unwrap();
    direct.shutdown();
}

/// Per-send callback counts of the C ABI row, handed to the callback as user data.
struct CCalls {
    calls: Vec<AtomicU32>,
    done: mpsc::SyncSender<i32>,
}

/// The C ABI's send callback: counts the call and reports the status.
unsafe extern "C" fn c_send_callback(
    params: *const rmq::ffi::rmq_send_callback_params_t,
    user_data: *mut std::ffi::c_void,
) {
    // SAFETY: user_data is the (index, &CCalls) box made for this send; params is valid for
    // the call, as the header promises.
    let (i, calls) = *unsafe { Box::from_raw(user_data.cast::<(usize, *const CCalls)>()) };
    let calls = unsafe { &*calls };
    calls.calls[i].fetch_add(1, Ordering::AcqRel);
    let _ = calls.done.try_send(unsafe { (*params).status });
}

/// The same rows through the C ABI (rmq_producer_send_async with a C callback), called from
/// here because the proxy lives in this harness: 1000 async sends into a blackhole, then 1000
/// through resets; every accepted send's callback runs exactly once, with RMQ_OK or an error
/// status, within the timeout and slack, and the fds and threads go with the producer.
#[test]
fn c_abi_async_callbacks_fire_once_through_a_blackhole_and_resets() {
    use rmq::ffi::*;
    use std::ffi::CString;
    let _serial = serial();
    let rig = rig("ProxyCAbi");
    let before = usage();
    let set = |cfg, k: &str, v: &str| {
        let (k, v) = (CString::new(k).unwrap(), CString::new(v).unwrap());
        // SAFETY: a live config and NUL-terminated strings borrowed for the call.
        assert_eq!(
            unsafe { rmq_config_set(cfg, k.as_ptr(), v.as_ptr()) },
            RMQ_OK
        );
    };
    // SAFETY: the calls below follow the header's ownership rules: the config is destroyed
    // after the producer is made, the message after the sends, the producer last.
    unsafe {
        let cfg = rmq_config_create();
        set(cfg, "name-server", &rig.ns.addr());
        set(cfg, "producer.group", &unique("FaultProxyCGroup"));
        set(cfg, "instance-name", &unique("faultproxyc"));
        set(
            cfg,
            "producer.send-message-timeout",
            &TIMEOUT.as_millis().to_string(),
        );
        set(cfg, "producer.max-in-flight-async-sends", "2000");
        let mut producer = std::ptr::null_mut();
        assert_eq!(rmq_producer_create(cfg, &mut producer), RMQ_OK);
        rmq_config_destroy(cfg);
        assert_eq!(rmq_producer_start(producer), RMQ_OK);
        let msg = rmq_message_create();
        let topic = CString::new(rig.topic.clone()).unwrap();
        assert_eq!(rmq_message_set_topic(msg, topic.as_ptr()), RMQ_OK);
        assert_eq!(rmq_message_set_body(msg, b"c".as_ptr(), 1), RMQ_OK);
        assert_eq!(
            rmq_producer_send_sync(producer, msg, std::ptr::null_mut()),
            RMQ_OK
        );

        for fault in ["blackhole", "reset"] {
            if fault == "blackhole" {
                rig.broker.set_mode(Mode::Blackhole);
            }
            let (tx, rx) = mpsc::sync_channel(ASYNC_SENDS);
            // Leaked: a callback that came late (a failing run) must still find it.
            let calls: &'static CCalls = Box::leak(Box::new(CCalls {
                calls: (0..ASYNC_SENDS).map(|_| AtomicU32::new(0)).collect(),
                done: tx,
            }));
            let mut accepted = 0;
            for i in 0..ASYNC_SENDS {
                let ud = Box::into_raw(Box::new((i, calls as *const CCalls)));
                if rmq_producer_send_async(producer, msg, Some(c_send_callback), ud.cast())
                    == RMQ_OK
                {
                    accepted += 1;
                } else {
                    drop(Box::from_raw(ud));
                }
            }
            if fault == "reset" {
                rig.broker.reset_all();
            }
            let deadline = Instant::now() + TIMEOUT + SLACK;
            let mut ok = 0;
            for _ in 0..accepted {
                let left = deadline.saturating_duration_since(Instant::now());
                let status = rx
                    .recv_timeout(left)
                    .expect("every callback within the bound");
                ok += usize::from(status == RMQ_OK);
            }
            let fired = calls.calls.iter().map(|c| c.load(Ordering::Acquire));
            assert!(
                fired.clone().all(|c| c == 1),
                "a callback did not fire exactly once"
            );
            assert_eq!(accepted, ASYNC_SENDS);
            if fault == "blackhole" {
                assert_eq!(ok, 0, "nothing answers in a blackhole");
                rig.broker.set_mode(Mode::Pass);
            }
            eprintln!("C ABI {fault}: {ok} of {accepted} ok");
            let works = eventually(Duration::from_secs(10), || {
                (rmq_producer_send_sync(producer, msg, std::ptr::null_mut()) == RMQ_OK)
                    .then_some(())
            });
            assert!(
                works.is_some(),
                "the producer sends again after the {fault}"
            );
        }
        rmq_message_destroy(msg);
        assert_eq!(rmq_producer_shutdown(producer), RMQ_OK);
        rmq_producer_destroy(producer);
    }
    let settled = eventually(Duration::from_secs(10), || {
        let now = usage();
        (now.fds <= before.fds && now.threads <= before.threads).then_some(now)
    });
    assert!(
        settled.is_some(),
        "fds or threads leaked: before {before:?}, after {:?}",
        usage()
    );
}
