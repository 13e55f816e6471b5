//! Handles: C sees a `T *`, but the value is an id looked up in a per-type registry, never
//! dereferenced. A destroyed, forged or wrong-type handle is an error, not a crash, and ids are
//! never reused, so a stale handle cannot alias a newer object.
//!
//! The registry is split into shards by id, each behind its own read-write lock, so concurrent
//! calls on different handles (or reads of the same one) do not contend on one process-wide lock.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use parking_lot::{Mutex, RwLock};

use super::boundary::{FfiError, FfiResult};
use super::status::{RMQ_ERR_INVALID_HANDLE, RMQ_ERR_NULL_POINTER};

/// Ids start well above the zero page and step like aligned pointers, so Go's and sanitizers'
/// pointer sanity checks accept them.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0x10_0000);
const ID_STEP: usize = 16;
const SHARDS: usize = 32;

type Shard<T> = RwLock<Option<HashMap<usize, Arc<T>>>>;

pub(crate) struct Registry<T: 'static> {
    kind: &'static str,
    shards: [Shard<T>; SHARDS],
    guarded: Once,
}

/// Registries lock and unlock their shards around fork(), so the child gets every table whole
/// and unlocked, never held by a thread it does not have.
trait ForkGuarded: Sync {
    fn lock_for_fork(&self);
    /// # Safety
    /// Only after `lock_for_fork`, in the parent or the child of that fork.
    unsafe fn unlock_after_fork(&self);
}

static GUARDED: Mutex<Vec<&'static dyn ForkGuarded>> = Mutex::new(Vec::new());
static AT_FORK: Once = Once::new();

extern "C" fn before_fork() {
    let all = GUARDED.lock();
    for r in all.iter() {
        r.lock_for_fork();
    }
    std::mem::forget(all);
}

extern "C" fn after_fork() {
    // SAFETY: `before_fork` locked the list and every registry in it for this fork.
    unsafe {
        let all = &*GUARDED.data_ptr();
        for r in all.iter().rev() {
            r.unlock_after_fork();
        }
        GUARDED.force_unlock();
    }
}

impl<T: Send + Sync + 'static> Registry<T> {
    pub const fn new(kind: &'static str) -> Registry<T> {
        Registry {
            kind,
            shards: [const { RwLock::new(None) }; SHARDS],
            guarded: Once::new(),
        }
    }

    fn join_fork_guard(&'static self) {
        self.guarded.call_once(|| {
            AT_FORK.call_once(|| {
                // SAFETY: the handlers only take and release the registries' own locks.
                unsafe {
                    libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork))
                };
            });
            GUARDED.lock().push(self);
        });
    }

    fn shard(&self, id: usize) -> &Shard<T> {
        &self.shards[(id / ID_STEP) % SHARDS]
    }

    pub fn insert<H>(&'static self, value: Arc<T>) -> *mut H {
        self.join_fork_guard();
        let id = NEXT_ID.fetch_add(ID_STEP, Ordering::Relaxed);
        self.shard(id)
            .write()
            .get_or_insert_with(HashMap::new)
            .insert(id, value);
        id as *mut H
    }

    pub fn get<H>(&self, handle: *const H) -> FfiResult<Arc<T>> {
        if handle.is_null() {
            return Err(FfiError::new(
                RMQ_ERR_NULL_POINTER,
                format!("{} handle is NULL", self.kind),
            ));
        }
        let id = handle as usize;
        self.shard(id)
            .read()
            .as_ref()
            .and_then(|m| m.get(&id).cloned())
            .ok_or_else(|| {
                FfiError::new(
                    RMQ_ERR_INVALID_HANDLE,
                    format!(
                        "{:p} is not a live {} handle (destroyed, never created, or another type)",
                        handle, self.kind
                    ),
                )
            })
    }

    /// Removes the handle; `None` for NULL or unknown handles.
    pub fn remove<H>(&self, handle: *const H) -> Option<Arc<T>> {
        if handle.is_null() {
            return None;
        }
        let id = handle as usize;
        self.shard(id).write().as_mut().and_then(|m| m.remove(&id))
    }
}

impl<T: Send + Sync + 'static> ForkGuarded for Registry<T> {
    fn lock_for_fork(&self) {
        for shard in &self.shards {
            std::mem::forget(shard.write());
        }
    }

    unsafe fn unlock_after_fork(&self) {
        for shard in &self.shards {
            shard.force_unlock_write();
        }
    }
}
