//! The library's logging: silent unless asked, never on the caller's hot path.
//!
//! Records (level, target, message) go into a bounded queue and are delivered by one thread of
//! their own ("rmq-log") to the sink: a user's logger (`set_sink`, the C `rmq_set_logger`), or
//! standard error when only `RMQ_LOG_LEVEL` or `client.log-level` asked for logs. A full queue
//! drops the record and counts it (`dropped`); the log thread reports drops as a warning. No
//! lock is held while the sink runs, and the I/O thread never waits for it.
//!
//! The level that passes is the highest of: the sink's level, the `RMQ_LOG_LEVEL` environment
//! variable (read once) and any `client.log-level` a client was configured with. With no sink
//! and neither of the other two, nothing is formatted at all (one atomic load per log point).
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Severity of a record; the numbers are those of the C ABI (RMQ_LOG_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn from_u8(v: u8) -> Option<Level> {
        Some(match v {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// "off" is `Ok(None)`; case-insensitive; "warning" is accepted for "warn".
    pub fn parse(s: &str) -> Result<Option<Level>, String> {
        Ok(Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => return Ok(None),
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => {
                return Err(format!(
                    "'{s}' is not a log level (off, error, warn, info, debug, trace)"
                ))
            }
        }))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One log record as the sink receives it.
#[derive(Debug, Clone)]
pub struct Record {
    pub level: Level,
    /// Where it comes from: "rmq::remoting", "rmq::client", "rmq::producer", ...
    pub target: &'static str,
    pub message: String,
}

/// Receives records on the "rmq-log" thread.
pub type Sink = Arc<dyn Fn(&Record) + Send + Sync>;

/// Records waiting for the log thread; beyond this they are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 4096;
/// The environment variable that asks for logs without code changes.
pub const ENV_VAR: &str = "RMQ_LOG_LEVEL";

/// The level that passes (0: none). Checked before anything is formatted.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

struct State {
    sink: Option<(Sink, u8)>,
    /// Highest client.log-level configured in this process.
    config_level: u8,
    /// The log thread is inside the sink (set_sink waits for it to come out).
    delivering: bool,
}

/// The queue's sending end, made with the log thread on first need; lock-free for callers.
static SENDER: OnceLock<SyncSender<Record>> = OnceLock::new();

static STATE: Mutex<State> = Mutex::new(State {
    sink: None,
    config_level: 0,
    delivering: false,
});
static DELIVERED: Condvar = Condvar::new();

thread_local! {
    static ON_LOG_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn env_level() -> u8 {
    static ENV: OnceLock<u8> = OnceLock::new();
    *ENV.get_or_init(|| match std::env::var(ENV_VAR) {
        Ok(v) => match Level::parse(&v) {
            Ok(l) => l.map_or(0, |l| l as u8),
            Err(e) => {
                // The user asked for logs through the environment: say why nothing comes.
                eprintln!("rmq: {ENV_VAR}: {e}; logging stays off");
                0
            }
        },
        Err(_) => 0,
    })
}

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Recomputes MAX_LEVEL and starts the log thread when something is to be delivered.
fn refresh(state: &mut State) {
    let sink_level = state.sink.as_ref().map_or(0, |(_, l)| *l);
    let level = sink_level.max(state.config_level).max(env_level());
    if level > 0 && SENDER.get().is_none() {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let spawned = std::thread::Builder::new()
            .name("rmq-log".into())
            .spawn(move || run(rx));
        if spawned.is_err() {
            // No thread, no logs; the next change tries again.
            MAX_LEVEL.store(0, Ordering::Release);
            return;
        }
        // Only refresh sets it, under STATE's lock, so this is the first and only set.
        let _ = SENDER.set(tx);
    }
    MAX_LEVEL.store(level, Ordering::Release);
}

/// Installs (`Some`) or removes (`None`) the sink, which receives records up to `level`. When it
/// returns, the previous sink is not running and never runs again (unless called from the sink
/// itself, on the log thread).
pub fn set_sink(sink: Option<(Sink, Level)>) {
    let mut state = lock();
    state.sink = sink.map(|(s, l)| (s, l as u8));
    refresh(&mut state);
    if !ON_LOG_THREAD.with(|c| c.get()) {
        while state.delivering {
            state = DELIVERED.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Raises the process's level to at least `level` (the client.log-level key).
pub fn raise_config_level(level: Level) {
    let mut state = lock();
    if (level as u8) > state.config_level {
        state.config_level = level as u8;
        refresh(&mut state);
    }
}

/// Records dropped because the queue was full, since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Whether a record of `level` would be delivered (what the macros check first).
#[inline]
pub fn enabled(level: Level) -> bool {
    (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Queues a record; never blocks. Use the macros, which check `enabled` first.
pub fn submit(level: Level, target: &'static str, args: fmt::Arguments<'_>) {
    let Some(sender) = SENDER.get() else {
        return;
    };
    let record = Record {
        level,
        target,
        message: fmt::format(args),
    };
    match sender.try_send(record) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn stderr_sink(r: &Record) {
    eprintln!(
        "rmq {:5} {}: {}",
        r.level.name().to_uppercase(),
        r.target,
        r.message
    );
}

fn run(rx: Receiver<Record>) {
    ON_LOG_THREAD.with(|c| c.set(true));
    let mut reported_drops = 0;
    let mut reported_at: Option<std::time::Instant> = None;
    while let Ok(record) = rx.recv() {
        deliver(&record);
        let drops = DROPPED.load(Ordering::Relaxed);
        // at most one report a second while records keep being dropped
        if drops != reported_drops && reported_at.map_or(true, |t| t.elapsed().as_secs() >= 1) {
            reported_at = Some(std::time::Instant::now());
            let note = Record {
                level: Level::Warn,
                target: "rmq::log",
                message: format!(
                    "{} log records dropped: the logger did not keep up ({} in total)",
                    drops - reported_drops,
                    drops
                ),
            };
            reported_drops = drops;
            deliver(&note);
        }
    }
}

/// Hands one record to the current sink, outside the lock.
fn deliver(record: &Record) {
    let sink = {
        let mut state = lock();
        let asked = state.config_level.max(env_level());
        let sink = match &state.sink {
            Some((s, l)) if record.level as u8 <= asked.max(*l) => Some(Arc::clone(s)),
            Some(_) => None,
            // Asked for by the environment or client.log-level only: standard error.
            None if record.level as u8 <= asked => Some(Arc::new(stderr_sink) as Sink),
            None => None,
        };
        if sink.is_none() {
            return;
        }
        state.delivering = true;
        sink
    };
    if let Some(sink) = sink {
        // A panicking sink must not end the log thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(record)));
    }
    lock().delivering = false;
    DELIVERED.notify_all();
}

/// `rmq_log!(Level::Info, "rmq::client", "format {}", args)`.
#[macro_export]
macro_rules! rmq_log {
    ($level:expr, $target:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::submit($level, $target, format_args!($($arg)+));
        }
    };
}

#[macro_export]
macro_rules! log_warn {
    ($target:expr, $($arg:tt)+) => { $crate::rmq_log!($crate::log::Level::Warn, $target, $($arg)+) };
}

#[macro_export]
macro_rules! log_info {
    ($target:expr, $($arg:tt)+) => { $crate::rmq_log!($crate::log::Level::Info, $target, $($arg)+) };
}

#[macro_export]
macro_rules! log_debug {
    ($target:expr, $($arg:tt)+) => { $crate::rmq_log!($crate::log::Level::Debug, $target, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("DEBUG"), Ok(Some(Level::Debug)));
        assert_eq!(Level::parse("warning"), Ok(Some(Level::Warn)));
        assert_eq!(Level::parse("off"), Ok(None));
        assert!(Level::parse("loud")
            .unwrap_err()
            .contains("not a log level"));
        for v in 1..=5 {
            assert_eq!(Level::from_u8(v).unwrap() as u8, v);
        }
        assert_eq!(Level::from_u8(6), None);
    }
}
