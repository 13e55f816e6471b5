//! Single-flight: concurrent callers that want the same thing (a topic's route, a connection to
//! an address) share one attempt instead of each making their own, and no lock is held while it
//! runs. Once the attempt ends, the next caller starts a fresh one.
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::error::{Error, Result};

type Outcome<V> = std::result::Result<V, Arc<Error>>;

pub struct SingleFlight<K, V> {
    running: Mutex<HashMap<K, Arc<OnceCell<Outcome<V>>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// The outcome of `attempt` for `key`: run here, or shared with a caller already running
    /// one. If the caller running it gives up (its future is dropped), a waiting one takes over.
    pub async fn run<F, Fut>(&self, key: &K, attempt: F) -> Result<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let cell = Arc::clone(
            self.running
                .lock()
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OnceCell::new())),
        );
        let outcome = cell
            .get_or_init(|| async { attempt().await.map_err(Arc::new) })
            .await
            .clone();
        let mut running = self.running.lock();
        if running.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            running.remove(key);
        }
        drop(running);
        outcome.map_err(|e| e.duplicate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_callers_share_one_attempt_and_later_ones_start_afresh() {
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let attempts = Arc::new(AtomicUsize::new(0));
        let rt = crate::runtime::handle();
        let run = |flights: Arc<SingleFlight<&'static str, usize>>, attempts: Arc<AtomicUsize>| async move {
            flights
                .run(&"k", || async {
                    let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok(n)
                })
                .await
        };
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|_| tokio::spawn(run(Arc::clone(&flights), Arc::clone(&attempts))))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap().unwrap());
            }
            out
        });
        assert!(results.iter().all(|&n| n == 1), "{results:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        let again = rt.block_on(run(Arc::clone(&flights), Arc::clone(&attempts)));
        assert_eq!(again.unwrap(), 2, "a finished attempt is not reused");
    }
}
