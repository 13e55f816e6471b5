//! Handles: C sees a `T *`, but the value is an id looked up in a per-type registry, never
//! dereferenced. A destroyed, forged or wrong-type handle is an error, not a crash, and ids are
//! never reused, so a stale handle cannot alias a newer object.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::boundary::{FfiError, FfiResult};
use super::status::{RMQ_ERR_INVALID_HANDLE, RMQ_ERR_NULL_POINTER};

/// Ids start well above the zero page and step like aligned pointers, so Go's and sanitizers'
/// pointer sanity checks accept them.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0x10_0000);

pub(crate) struct Registry<T> {
    kind: &'static str,
    live: Mutex<Option<HashMap<usize, Arc<T>>>>,
}

impl<T> Registry<T> {
    pub const fn new(kind: &'static str) -> Registry<T> {
        Registry {
            kind,
            live: Mutex::new(None),
        }
    }

    pub fn insert<H>(&self, value: Arc<T>) -> *mut H {
        let id = NEXT_ID.fetch_add(16, Ordering::Relaxed);
        self.live
            .lock()
            .unwrap()
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
        self.live
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|m| m.get(&(handle as usize)).cloned())
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
        self.live
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|m| m.remove(&(handle as usize)))
    }
}
