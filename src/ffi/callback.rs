//! What C callbacks need besides the core's executors: the `void *user_data` they carry.
//!
//! Callbacks run on the client instance's executors (threads named `rmq-callback-N`), never on
//! an I/O thread and never while the library holds a lock.

/// A C `void *user_data` carried to an executor thread. The header makes the caller responsible
/// for its thread safety.
pub(crate) struct UserData(pub *mut std::ffi::c_void);
// SAFETY: the pointer is only handed back to the caller's own callback; see above.
unsafe impl Send for UserData {}
