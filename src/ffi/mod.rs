//! The C ABI (`include/rmq.h`). The only module with `extern "C"`; it converts between C values
//! and the core types and holds no protocol logic.
//!
//! Conventions (repeated in the header):
//! - Every fallible function returns `rmq_status_t`; on failure the calling thread's last error
//!   (`rmq_last_error_message`) says why. Out-parameters come last and are written only on
//!   success.
//! - Handles are opaque tokens checked against a registry on every call: NULL, destroyed or
//!   wrong-type handles fail with `RMQ_ERR_INVALID_HANDLE`/`RMQ_ERR_NULL_POINTER`, never crash.
//! - Strings going in are NUL-terminated UTF-8; bytes are pointer + length (NULL + 0 is empty).
//!   Strings coming out are borrowed `{pointer, length}` views, not NUL-terminated.
//! - No panic crosses the boundary (`RMQ_ERR_PANIC`).
//! - Callbacks run on the client instance's callback executor (`rmq-callback-N`), never on an I/O thread and
//!   never while the library holds a lock.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod batch;
mod boundary;
mod callback;
mod completion_queue;
mod config;
mod consumer;
mod delay;
mod handles;
mod lite_pull;
mod log;
mod message;
mod metrics;
mod ordered;
mod orderly;
mod poll;
mod producer;
mod request;
mod send_result;
mod status;
mod transaction;
mod version;

pub use batch::*;
pub use boundary::*;
pub use completion_queue::*;
pub use config::*;
pub use consumer::*;
pub use delay::*;
pub use lite_pull::*;
pub use log::*;
pub use message::*;
pub use metrics::*;
pub use ordered::*;
pub use orderly::*;
pub use poll::*;
pub use producer::*;
pub use request::*;
pub use send_result::*;
pub use status::*;
pub use transaction::*;
pub use version::*;
