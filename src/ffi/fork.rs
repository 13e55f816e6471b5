//! fork() while other threads make rmq_ calls: the handle registries are locked around the fork,
//! so the child gets them whole and unlocked, never held by a thread it does not have.
use std::sync::Once;

use super::config::CONFIGS;
use super::message::MESSAGES;
use super::producer::{PRODUCERS, RESULTS};

static INSTALL: Once = Once::new();

pub(crate) fn install_handlers() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers only lock and unlock the registries' own locks.
        unsafe { libc::pthread_atfork(Some(before), Some(after), Some(after)) };
    });
}

extern "C" fn before() {
    CONFIGS.lock_for_fork();
    MESSAGES.lock_for_fork();
    PRODUCERS.lock_for_fork();
    RESULTS.lock_for_fork();
}

extern "C" fn after() {
    // SAFETY: `before` locked them for this fork.
    unsafe {
        RESULTS.unlock_after_fork();
        PRODUCERS.unlock_after_fork();
        MESSAGES.unlock_after_fork();
        CONFIGS.unlock_after_fork();
    }
}
