//! Heap allocations per sync send of a 1 KiB message, counted by a global allocator that wraps
//! the system one, against a real cluster (RMQ_NAMESRV, default 127.0.0.1:9876; topic
//! BENCH_TOPIC, default RmqBenchSync; BENCH_COUNT sends, default 2000).
//!
//! Three paths, each with its own producer, warmed up first (route, connection) so that only
//! the steady state is measured:
//!   * rust api: `Producer::send_blocking`;
//!   * c abi: `rmq_producer_send_sync` with a result, its message id read, `rmq_send_result_destroy`
//!     (what C, Python and Go callers pay per send);
//!   * c abi, no result: `rmq_producer_send_sync` with a NULL result (as benches/c/sync_send.c).
//!
//! Every thread of the process is counted (the library's I/O and timer threads too), so a
//! heartbeat or route refresh falling inside the window adds a little. Numbers, not pass/fail.
//! BENCH_TRACE=1 turns message trace on for the rust api path.
//!
//!   cargo bench --bench sync_send_allocs
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, CString};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rmq::ffi::*;
use rmq::{Message, Producer, ProducerConfig};

/// Counts allocation calls (alloc, alloc_zeroed, realloc) and the bytes they ask for (a realloc
/// counts its new size). Frees are not counted.
struct CountingAlloc;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(bytes: usize) {
    CALLS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes as u64, Relaxed);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(p, layout, new_size)
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const WARM_UP: usize = 500;
const BODY_SIZE: usize = 1024;

/// Runs `send` `WARM_UP` times, then `count` times while counting, and prints the per-send
/// figures on one greppable line.
fn measure(path: &str, count: usize, mut send: impl FnMut()) {
    for _ in 0..WARM_UP {
        send();
    }
    let (calls, bytes) = (CALLS.load(Relaxed), BYTES.load(Relaxed));
    for _ in 0..count {
        send();
    }
    let calls = (CALLS.load(Relaxed) - calls) as f64 / count as f64;
    let bytes = (BYTES.load(Relaxed) - bytes) as f64 / count as f64;
    println!("allocations per sync send ({path}): {calls:.1} ({bytes:.0} bytes)");
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn rust_api(namesrv: &str, topic: &str, count: usize) {
    let mut config = ProducerConfig::new(namesrv, "RmqAllocBenchRustGroup").expect("config");
    if env_or("BENCH_TRACE", "0") == "1" {
        // Message trace on: the send path's hand-off plus the background batching and sending
        // of the trace messages (every thread is counted).
        config.client.trace_topic = Some("RMQ_SYS_TRACE_TOPIC".to_string());
    }
    let producer = Producer::new(config).expect("producer");
    producer.start().expect("start");
    let msg = Message::new(topic, vec![b'x'; BODY_SIZE]);
    measure("rust api", count, || {
        if let Err(e) = producer.send_blocking(&msg) {
            panic!("send to {namesrv} failed: {e}");
        }
    });
    producer.shutdown();
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string owned by this thread.
    unsafe { std::ffi::CStr::from_ptr(rmq_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn check(what: &str, status: rmq_status_t) {
    assert!(status == RMQ_OK, "{what}: {}", last_error());
}

fn c_str(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn c_abi(namesrv: &str, topic: &str, count: usize) {
    let (ns, topic) = (c_str(namesrv), c_str(topic));
    let body = vec![b'x'; BODY_SIZE];
    // SAFETY: every pointer passed is either a live handle of this library or a NUL-terminated
    // string / byte buffer that outlives the call.
    unsafe {
        let config = rmq_config_create();
        check(
            "name-server",
            rmq_config_set(config, c"name-server".as_ptr(), ns.as_ptr()),
        );
        check(
            "producer.group",
            rmq_config_set(
                config,
                c"producer.group".as_ptr(),
                c"RmqAllocBenchCGroup".as_ptr(),
            ),
        );
        let mut producer = ptr::null_mut();
        check("create", rmq_producer_create(config, &mut producer));
        rmq_config_destroy(config);
        check("start", rmq_producer_start(producer));
        let msg = rmq_message_create();
        check("topic", rmq_message_set_topic(msg, topic.as_ptr()));
        check("body", rmq_message_set_body(msg, body.as_ptr(), body.len()));
        measure("c abi", count, || {
            let mut result = ptr::null_mut();
            check("send", rmq_producer_send_sync(producer, msg, &mut result));
            let (mut id, mut len): (*const c_char, usize) = (ptr::null(), 0);
            check("msg id", rmq_send_result_msg_id(result, &mut id, &mut len));
            assert!(len > 0);
            rmq_send_result_destroy(result);
        });
        measure("c abi, no result", count, || {
            check(
                "send",
                rmq_producer_send_sync(producer, msg, ptr::null_mut()),
            );
        });
        rmq_message_destroy(msg);
        rmq_producer_destroy(producer);
    }
}

fn main() {
    let namesrv = env_or("RMQ_NAMESRV", "127.0.0.1:9876");
    let topic = env_or("BENCH_TOPIC", "RmqBenchSync");
    let count: usize = env_or("BENCH_COUNT", "2000")
        .parse()
        .expect("BENCH_COUNT is a number");
    println!(
        "sync_send_allocs: {count} sync sends of {BODY_SIZE} B to {topic} at {namesrv} per path, \
         after {WARM_UP} warm-up sends; heap allocations of all threads"
    );
    rust_api(&namesrv, &topic, count);
    c_abi(&namesrv, &topic, count);
}
