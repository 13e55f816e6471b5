//! Executors: small thread pools where user code runs (send callbacks, broker-request
//! processors, and later consume listeners and transaction checkers), never on the thread that
//! reads a socket and never on a caller's thread. Each kind of work has its own executor, so a
//! slow listener does not hold up send callbacks.
//!
//! Jobs carry an owner id (a producer, a consumer). A thread running a job knows its owner
//! (`current_owner`), so destroying an object from inside its own callback is refused instead of
//! waiting for itself; and a thread that must wait for another owner's jobs runs them itself
//! (`run_one_of`) rather than wait for a thread it is occupying.
//!
//! `Completion` fires a callback exactly once: with the result, or with `Error::Cancelled` when
//! the task holding it panics or is dropped.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

type Task = Box<dyn FnOnce() + Send>;

struct Job {
    owner: u64,
    task: Task,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    closed: bool,
}

struct Pool {
    id: u64,
    name: String,
    max_threads: usize,
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// A pool of up to `threads` threads, started as work arrives. Cheap to clone; the threads end
/// once every clone is gone (or `close` is called) and the queue is empty.
#[derive(Clone)]
pub struct Executor {
    pool: Arc<Pool>,
    _closer: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Pool>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        close(&self.0);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a job owner (never reused in the process).
pub fn new_owner_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// (executor id, owner of the running job) on executor threads.
    static RUNNING: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    /// Jobs `execute` was given inside `batched`, handed over when it returns.
    static BATCH: RefCell<Option<Vec<(Executor, Job)>>> = const { RefCell::new(None) };
}

/// Runs `f`; the jobs that `Executor::execute` is given meanwhile on this thread reach their
/// executors when `f` returns (or unwinds), all at once: one lock and at most one wake-up per
/// executor, instead of one per job. A reader that completes many requests from one read wraps
/// their completions in this. Nested calls join the outermost batch.
pub fn batched<R>(f: impl FnOnce() -> R) -> R {
    let outermost = BATCH
        .try_with(|b| {
            let mut b = b.borrow_mut();
            if b.is_some() {
                false
            } else {
                *b = Some(Vec::new());
                true
            }
        })
        .unwrap_or(false);
    if !outermost {
        return f();
    }
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let jobs = BATCH
                .try_with(|b| b.borrow_mut().take())
                .ok()
                .flatten()
                .unwrap_or_default();
            hand_over(jobs);
        }
    }
    let _flush = Flush;
    f()
}

/// Queues batched jobs, grouped by executor in their order.
fn hand_over(jobs: Vec<(Executor, Job)>) {
    let mut jobs = jobs.into_iter().peekable();
    while let Some((executor, job)) = jobs.next() {
        let mut group = vec![job];
        while let Some((next, _)) = jobs.peek() {
            if !Arc::ptr_eq(&next.pool, &executor.pool) {
                break;
            }
            group.push(jobs.next().expect("peeked").1);
        }
        for job in executor.try_spawn_all(group) {
            run_job(executor.pool.id, job);
        }
    }
}

/// The owner of the job running on this thread, if this is an executor thread inside a job.
pub fn current_owner() -> Option<u64> {
    RUNNING.with(|r| r.get()).map(|(_, owner)| owner)
}

impl Executor {
    pub fn new(name: impl Into<String>, threads: usize) -> Executor {
        let pool = Arc::new(Pool {
            id: new_owner_id(),
            name: name.into(),
            max_threads: threads.max(1),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        Executor {
            _closer: Arc::new(CloseOnDrop(Arc::clone(&pool))),
            pool,
        }
    }

    pub fn name(&self) -> &str {
        &self.pool.name
    }

    /// Queues `task` for `owner`. Fails only when no thread can run it: the executor was closed,
    /// or it has no thread and none can be started.
    pub fn spawn(&self, owner: u64, task: impl FnOnce() + Send + 'static) -> Result<()> {
        self.try_spawn(Job {
            owner,
            task: Box::new(task),
        })
        .map_err(|(e, _)| e)
    }

    /// Runs `task` on the executor, or on the calling thread when the executor cannot take it
    /// (closed, or no thread could be started): a callback owed must run somewhere.
    pub fn execute(&self, owner: u64, task: impl FnOnce() + Send + 'static) {
        let job = Job {
            owner,
            task: Box::new(task),
        };
        let mut job = Some(job);
        let _ = BATCH.try_with(|b| {
            if let Some(batch) = b.borrow_mut().as_mut() {
                batch.push((self.clone(), job.take().expect("not taken yet")));
            }
        });
        // Not batching (or thread-local storage is going away): now.
        if let Some(job) = job {
            self.execute_now(job);
        }
    }

    fn execute_now(&self, job: Job) {
        if let Err((_, job)) = self.try_spawn(job) {
            run_job(self.pool.id, job);
        }
    }

    /// Queues `jobs` under one lock with at most one wake-up (one idle thread, or one new
    /// thread); the thread woken runs them one after the other, unless other threads free up
    /// meanwhile. Gives back the jobs no thread can run.
    fn try_spawn_all(&self, jobs: Vec<Job>) -> Vec<Job> {
        let pool = &self.pool;
        let mut q = pool.queue.lock();
        if q.closed {
            return jobs;
        }
        let n = jobs.len();
        q.jobs.extend(jobs);
        if q.idle > 0 {
            drop(q);
            pool.ready.notify_one();
            return Vec::new();
        }
        if q.threads > 0 && q.threads >= pool.max_threads {
            return Vec::new();
        }
        drop(q);
        // No thread is idle and one more may start: try_spawn's path, with the jobs queued.
        let mut q = pool.queue.lock();
        let mut back = Vec::new();
        if q.threads < pool.max_threads {
            q.threads += 1;
            let k = q.threads;
            drop(q);
            let worker = Arc::clone(pool);
            let started = std::thread::Builder::new()
                .name(format!("{}-{k}", pool.name))
                .spawn(move || work(worker));
            if started.is_err() {
                let mut q = pool.queue.lock();
                q.threads -= 1;
                if q.threads == 0 {
                    // Nobody would ever run them: take ours back (the newest n).
                    let keep = q.jobs.len().saturating_sub(n);
                    back.extend(q.jobs.drain(keep..));
                }
            }
        }
        back
    }

    fn try_spawn(&self, job: Job) -> std::result::Result<(), (Error, Job)> {
        let pool = &self.pool;
        let mut q = pool.queue.lock();
        if q.closed {
            let e = Error::Cancelled(format!("executor {} is shut down", pool.name));
            return Err((e, job));
        }
        q.jobs.push_back(job);
        if q.idle > 0 {
            drop(q);
            pool.ready.notify_one();
            return Ok(());
        }
        if q.threads < pool.max_threads {
            q.threads += 1;
            let n = q.threads;
            drop(q);
            let worker = Arc::clone(pool);
            let started = std::thread::Builder::new()
                .name(format!("{}-{n}", pool.name))
                .spawn(move || work(worker));
            if let Err(e) = started {
                let mut q = pool.queue.lock();
                q.threads -= 1;
                if q.threads == 0 {
                    // Nobody would ever run the job: take it back and report.
                    if let Some(job) = q.jobs.pop_back() {
                        let e = Error::Resource(format!(
                            "cannot start a thread for {}: {e}",
                            pool.name
                        ));
                        return Err((e, job));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on the executor and awaits its value; `Error::Cancelled` if it panicked or the
    /// executor shut down first.
    pub async fn call<T: Send + 'static>(
        &self,
        owner: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.spawn(owner, move || {
            let _ = tx.send(f());
        })?;
        rx.await.map_err(|_| {
            Error::Cancelled(format!(
                "the task on {} panicked or was dropped",
                self.pool.name
            ))
        })
    }

    /// Runs one queued job of `owner` on the calling thread; false if none is queued.
    pub fn run_one_of(&self, owner: u64) -> bool {
        let job = {
            let mut q = self.pool.queue.lock();
            let Some(i) = q.jobs.iter().position(|j| j.owner == owner) else {
                return false;
            };
            q.jobs.remove(i)
        };
        match job {
            Some(job) => {
                run_job(self.pool.id, job);
                true
            }
            None => false,
        }
    }

    /// Whether the calling thread is one of this executor's.
    pub fn is_current(&self) -> bool {
        RUNNING
            .with(|r| r.get())
            .is_some_and(|(id, _)| id == self.pool.id)
    }

    /// Refuses new jobs; queued ones still run, then the threads end.
    pub fn close(&self) {
        close(&self.pool);
    }

    /// Threads started so far (for tests and diagnostics).
    pub fn thread_count(&self) -> usize {
        self.pool.queue.lock().threads
    }
}

fn close(pool: &Pool) {
    pool.queue.lock().closed = true;
    pool.ready.notify_all();
}

fn run_job(pool_id: u64, job: Job) {
    let outer = RUNNING.with(|r| r.replace(Some((pool_id, job.owner))));
    // A panicking job must not take the thread, or the jobs queued behind it, down.
    let _ = catch_unwind(AssertUnwindSafe(job.task));
    RUNNING.with(|r| r.set(outer));
}

fn work(pool: Arc<Pool>) {
    loop {
        let job = {
            let mut q = pool.queue.lock();
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break Some(job);
                }
                if q.closed {
                    break None;
                }
                q.idle += 1;
                // Idle threads stay: starting one costs more than a parked thread.
                pool.ready.wait(&mut q);
                q.idle -= 1;
            }
        };
        match job {
            Some(job) => run_job(pool.id, job),
            None => {
                pool.queue.lock().threads -= 1;
                return;
            }
        }
    }
}

/// A one-shot callback that always fires: `complete` with a result, or on drop (a panicking or
/// cancelled task) with `Error::Cancelled`.
pub struct Completion<T> {
    f: Option<Box<dyn FnOnce(Result<T>) + Send>>,
}

impl<T> Completion<T> {
    pub fn new(f: impl FnOnce(Result<T>) + Send + 'static) -> Completion<T> {
        Completion {
            f: Some(Box::new(f)),
        }
    }

    pub fn complete(mut self, result: Result<T>) {
        if let Some(f) = self.f.take() {
            f(result);
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            f(Err(Error::Cancelled(
                "the operation ended before it completed (its task panicked or was dropped)".into(),
            )));
        }
    }
}

/// Counts callbacks owed to an owner, so it can wait until each has run, and bounds them.
#[derive(Default)]
pub struct Outstanding {
    count: Mutex<usize>,
    drained: Condvar,
    /// Signalled each time one is done, for `add_bounded` waiters.
    freed: Condvar,
}

impl Outstanding {
    pub fn add(&self) {
        *self.count.lock() += 1;
    }

    /// Counts one more if fewer than `max` are owed. When full it waits for one to be done
    /// until `wait_until` (None: it does not wait), giving up early once `stopped()` holds.
    /// True if counted.
    pub fn add_bounded(
        &self,
        max: usize,
        wait_until: Option<Instant>,
        stopped: impl Fn() -> bool,
    ) -> bool {
        let mut n = self.count.lock();
        loop {
            if *n < max {
                *n += 1;
                return true;
            }
            let Some(deadline) = wait_until else {
                return false;
            };
            if stopped() || Instant::now() >= deadline {
                return false;
            }
            self.freed.wait_until(&mut n, deadline);
        }
    }

    /// Wakes every `add_bounded` waiter, so they look at `stopped` again.
    pub fn wake_waiters(&self) {
        let _n = self.count.lock();
        self.freed.notify_all();
    }

    pub fn done(&self) {
        let mut n = self.count.lock();
        *n -= 1;
        if *n == 0 {
            self.drained.notify_all();
        }
        self.freed.notify_one();
    }

    pub fn get(&self) -> usize {
        *self.count.lock()
    }

    /// Waits until nothing is owed. On a thread of `executor` (one that may be needed to run
    /// the owed callbacks) it runs `owner`'s queued jobs itself while it waits.
    pub fn wait(&self, executor: &Executor, owner: u64) {
        let helping = executor.is_current();
        loop {
            if helping && executor.run_one_of(owner) {
                continue;
            }
            let mut n = self.count.lock();
            if *n == 0 {
                return;
            }
            if helping {
                // The owed jobs are not queued yet (still on the network); look again soon.
                self.drained.wait_for(&mut n, Duration::from_millis(5));
            } else {
                self.drained.wait(&mut n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_jobs_and_returns_values() {
        let ex = Executor::new("test-exec", 2);
        let v = crate::runtime::handle()
            .block_on(ex.call(1, || 6 * 7))
            .unwrap();
        assert_eq!(v, 42);
    }

    #[test]
    fn a_panicking_job_reports_cancelled_and_the_thread_goes_on() {
        let ex = Executor::new("test-panic", 1);
        let r = crate::runtime::handle().block_on(ex.call(1, || -> i32 { panic!("boom") }));
        assert!(matches!(r, Err(Error::Cancelled(_))), "{r:?}");
        let v = crate::runtime::handle().block_on(ex.call(1, || 1)).unwrap();
        assert_eq!(v, 1);
        assert_eq!(ex.thread_count(), 1);
    }

    #[test]
    fn a_dropped_completion_fires_once_with_cancelled() {
        let (tx, rx) = mpsc::channel();
        let c: Completion<i32> = Completion::new(move |r| tx.send(r.is_err()).unwrap());
        let task = std::thread::spawn(move || {
            let _held = c;
            panic!("the task owning the completion dies");
        });
        assert!(task.join().is_err());
        assert!(rx.recv().unwrap());
        assert!(rx.try_recv().is_err(), "fired exactly once");
    }

    #[test]
    fn a_blocked_executor_does_not_hold_up_another() {
        let slow = Executor::new("test-slow", 1);
        let fast = Executor::new("test-fast", 1);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        slow.spawn(1, move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
        })
        .unwrap();
        let t0 = Instant::now();
        let (tx, rx) = mpsc::channel();
        fast.spawn(2, move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        release_tx.send(()).unwrap();
    }

    #[test]
    fn waiting_on_an_executor_thread_runs_the_owed_jobs_itself() {
        let ex = Executor::new("test-help", 1);
        let owed = Arc::new(Outstanding::default());
        let (tx, rx) = mpsc::channel();
        let (ex2, owed2) = (ex.clone(), Arc::clone(&owed));
        ex.spawn(1, move || {
            // Owner 2's callbacks queue behind this job on the only thread.
            for _ in 0..3 {
                owed2.add();
                let o = Arc::clone(&owed2);
                ex2.spawn(2, move || o.done()).unwrap();
            }
            owed2.wait(&ex2, 2);
            tx.send(current_owner()).unwrap();
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Some(1));
        assert_eq!(owed.get(), 0);
    }

    #[test]
    fn batched_jobs_are_handed_over_together_when_the_batch_ends() {
        let ex = Executor::new("test-batch", 1);
        let (tx, rx) = mpsc::channel();
        batched(|| {
            for i in 0..3 {
                let tx = tx.clone();
                ex.execute(1, move || tx.send(i).unwrap());
            }
            // Nested batches join the outer one.
            let tx = tx.clone();
            batched(|| ex.execute(1, move || tx.send(3).unwrap()));
            // Still held by the batch: not queued, so not run.
            assert!(rx.try_recv().is_err());
            assert_eq!(ex.pool.queue.lock().jobs.len(), 0);
        });
        let got: Vec<i32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3], "in order");
        // Outside a batch, execute queues at once.
        ex.execute(1, move || tx.send(4).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 4);
    }

    #[test]
    fn a_closed_executor_refuses_work() {
        let ex = Executor::new("test-closed", 1);
        ex.close();
        assert!(matches!(ex.spawn(1, || {}), Err(Error::Cancelled(_))));
    }
}
