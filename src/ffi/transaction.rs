//! rmq_transaction_producer_*: transactional messages.
//!
//! The local-transaction callback gets a temporary rmq_message_t (the message as sent) and a
//! temporary rmq_send_result_t; the checker gets a temporary rmq_received_message_t. Each handle
//! is registered just before the call and removed just after it, so one kept past the callback
//! is RMQ_ERR_INVALID_HANDLE, never a dangling pointer.
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use parking_lot::Mutex;

use super::boundary::*;
use super::config::{rmq_config_t, CONFIGS};
use super::consumer::{rmq_received_message_t, RECEIVED};
use super::handles::Registry;
use super::message::{rmq_message_t, FfiMessage, MESSAGES};
use super::producer::{rmq_send_result_t, with_result, RESULTS};
use super::status::*;
use crate::producer::{LocalTransactionState, TransactionProducer};
use crate::protocol::message::MessageExt;

/// A transaction producer (Java's TransactionMQProducer). Every rmq_transaction_producer_
/// function may be called from any thread, concurrently.
pub struct rmq_transaction_producer_t {
    _private: [u8; 0],
}

/// How a local transaction ended: what the local-transaction callback and the checker return.
pub type rmq_transaction_state_t = i32;
/// Commit: the message is delivered.
pub const RMQ_TRANSACTION_COMMIT: rmq_transaction_state_t = 0;
/// Roll back: the message is dropped and never delivered.
pub const RMQ_TRANSACTION_ROLLBACK: rmq_transaction_state_t = 1;
/// Not known yet: the broker asks the checker later (after its transactionTimeOut, then at its
/// transactionCheckInterval). Any value other than the three counts as this.
pub const RMQ_TRANSACTION_UNKNOWN: rmq_transaction_state_t = 2;

/// Static NUL-terminated name of a transaction state, as Java names them ("COMMIT_MESSAGE",
/// "ROLLBACK_MESSAGE", "UNKNOW"); "UNKNOW" for any other value, as such a value counts.
#[no_mangle]
pub extern "C" fn rmq_transaction_state_name(state: rmq_transaction_state_t) -> *const c_char {
    match state {
        RMQ_TRANSACTION_COMMIT => c"COMMIT_MESSAGE".as_ptr(),
        RMQ_TRANSACTION_ROLLBACK => c"ROLLBACK_MESSAGE".as_ptr(),
        _ => c"UNKNOW".as_ptr(),
    }
}

fn state_of(state: rmq_transaction_state_t) -> LocalTransactionState {
    match state {
        RMQ_TRANSACTION_COMMIT => LocalTransactionState::Commit,
        RMQ_TRANSACTION_ROLLBACK => LocalTransactionState::Rollback,
        _ => LocalTransactionState::Unknown,
    }
}

fn state_to_c(state: LocalTransactionState) -> rmq_transaction_state_t {
    match state {
        LocalTransactionState::Commit => RMQ_TRANSACTION_COMMIT,
        LocalTransactionState::Rollback => RMQ_TRANSACTION_ROLLBACK,
        LocalTransactionState::Unknown => RMQ_TRANSACTION_UNKNOWN,
    }
}

/// The local transaction of one rmq_transaction_producer_send: runs on the thread that called
/// it, once, after the broker stored the half message, with:
/// - `message`: the message as sent (a copy of the caller's, with the properties TRAN_MSG,
///   PGROUP and __transactionId__); borrowed until the callback returns (then the handle is
///   invalid). It may be read with the rmq_message_ getters.
/// - `result`: the half message's send result (rmq_send_result_transaction_id, _msg_id, ...);
///   borrowed until the callback returns; keep it with rmq_send_result_clone.
/// - `arg`: the `arg` given to rmq_transaction_producer_send, untouched.
///
/// Returns how the local transaction ended. It must not call rmq_transaction_producer_destroy
/// of its own producer.
pub type rmq_local_transaction_t = Option<
    unsafe extern "C" fn(
        message: *const rmq_message_t,
        result: *const rmq_send_result_t,
        arg: *mut c_void,
    ) -> rmq_transaction_state_t,
>;

/// The checker: a broker asks for the state of a transaction of the producer's group whose end
/// it did not get (the producer that sent it may have died; any producer of the group may be
/// asked). `message` is the half message (rmq_received_message_msg_id is the transaction id),
/// borrowed until the checker returns. `user_data` is the one given to
/// rmq_transaction_producer_create.
///
/// Thread: one of the producer's own check threads ("rmq-txn-check-N";
/// producer.transaction-check-threads of them, 1 by default: calls then run one at a time),
/// never an I/O thread or the application's thread, and never while the library holds a lock.
/// With more threads several calls run at once, so `user_data` must be safe to use
/// concurrently. The answer (RMQ_TRANSACTION_UNKNOWN included) is sent to the broker when the
/// checker returns; the broker asks again about an unknown one later. It must not call
/// rmq_transaction_producer_destroy of its own producer (RMQ_ERR_INVALID_STATE).
pub type rmq_transaction_checker_t = Option<
    unsafe extern "C" fn(
        message: *const rmq_received_message_t,
        user_data: *mut c_void,
    ) -> rmq_transaction_state_t,
>;

struct FfiTransactionProducer {
    producer: TransactionProducer,
}

static TRANSACTION_PRODUCERS: Registry<FfiTransactionProducer> =
    Registry::new("transaction producer");

fn producer_of(
    handle: *const rmq_transaction_producer_t,
) -> FfiResult<Arc<FfiTransactionProducer>> {
    let p = TRANSACTION_PRODUCERS.get(handle)?;
    if p.producer.is_forked() {
        return Err(crate::Error::Forked.into());
    }
    Ok(p)
}

/// The C checker and its user_data, run from the producer's check threads.
struct CChecker {
    callback: unsafe extern "C" fn(*const rmq_received_message_t, *mut c_void) -> i32,
    user_data: *mut c_void,
}

// SAFETY: user_data goes back only to the caller's own checker, and the header makes the caller
// responsible for its use from several threads at once.
unsafe impl Send for CChecker {}
unsafe impl Sync for CChecker {}

impl CChecker {
    fn call(&self, m: &MessageExt) -> LocalTransactionState {
        let handle: *const rmq_received_message_t =
            RECEIVED.insert::<rmq_received_message_t>(Arc::new(m.clone()));
        struct Lent(*const rmq_received_message_t);
        impl Drop for Lent {
            fn drop(&mut self) {
                RECEIVED.remove(self.0);
            }
        }
        let lent = Lent(handle);
        // SAFETY: the caller supplied this checker for exactly this use; the handle lives until
        // it returns.
        let state = unsafe { (self.callback)(lent.0, self.user_data) };
        state_of(state)
    }
}

/// Creates a transaction producer from `config` (borrowed for the call; the producer copies
/// it). `producer.group` and `name-server` must be set; producer.transaction-check-threads sets
/// the checker's threads. `checker` must not be NULL; `user_data` is passed to it untouched and
/// must stay valid until rmq_transaction_producer_destroy has returned.
/// Ownership: on success *out_producer is owned by the caller; free it with
/// rmq_transaction_producer_destroy.
#[no_mangle]
pub unsafe extern "C" fn rmq_transaction_producer_create(
    config: *const rmq_config_t,
    checker: rmq_transaction_checker_t,
    user_data: *mut c_void,
    out_producer: *mut *mut rmq_transaction_producer_t,
) -> rmq_status_t {
    guard(|| {
        let out = out_ptr(out_producer, "out_producer")?;
        let Some(callback) = checker else {
            return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "checker is NULL"));
        };
        let cfg = CONFIGS.get(config)?;
        let producer_config = cfg.lock().producer_config()?;
        let checker = CChecker {
            callback,
            user_data,
        };
        let producer = TransactionProducer::new(producer_config, move |m| checker.call(m))?;
        *out = TRANSACTION_PRODUCERS.insert(Arc::new(FfiTransactionProducer { producer }));
        Ok(())
    })
}

/// Starts the producer: from now on brokers may call the checker. A second start, or a start
/// after shutdown, fails with RMQ_ERR_INVALID_STATE.
#[no_mangle]
pub extern "C" fn rmq_transaction_producer_start(
    producer: *mut rmq_transaction_producer_t,
) -> rmq_status_t {
    guard(|| {
        producer_of(producer)?.producer.start()?;
        Ok(())
    })
}

/// Sends `message` (borrowed for the call) in a transaction: stores it as a half message
/// (consumers do not see it) and waits for the broker, calls `execute` (must not be NULL) on
/// this thread with the message as sent and `arg`, then ends the transaction as `execute`
/// returned: commit delivers the message, rollback drops it, unknown leaves it to the checker.
/// A half message stored with a status other than RMQ_SEND_OK is rolled back without calling
/// `execute`. The end is sent oneway; if it is lost, the broker asks the checker. A message
/// with a delay is refused (RMQ_ERR_INVALID_ARGUMENT). Blocks.
/// On RMQ_OK, *out_state (if not NULL) says how the transaction ended, and *out_result (if not
/// NULL) is the half message's send result (rmq_send_result_transaction_id gives the
/// transaction id), owned by the caller: free it with rmq_send_result_destroy. On any other
/// status nothing was written and `execute` did not run (the send failed).
#[no_mangle]
pub unsafe extern "C" fn rmq_transaction_producer_send(
    producer: *mut rmq_transaction_producer_t,
    message: *const rmq_message_t,
    execute: rmq_local_transaction_t,
    arg: *mut c_void,
    out_state: *mut rmq_transaction_state_t,
    out_result: *mut *mut rmq_send_result_t,
) -> rmq_status_t {
    guard(|| {
        let Some(execute) = execute else {
            return Err(FfiError::new(RMQ_ERR_NULL_POINTER, "execute is NULL"));
        };
        let p = producer_of(producer)?;
        // A copy: the lock is released before anything is sent.
        let msg = MESSAGES.get(message)?.lock().message.clone();
        let r = p
            .producer
            .send_in_transaction_blocking(&msg, |sent, result| {
                let m: *const rmq_message_t =
                    MESSAGES.insert::<rmq_message_t>(Arc::new(Mutex::new(FfiMessage {
                        message: sent.clone(),
                        stored: None,
                    })));
                let res: *const rmq_send_result_t = RESULTS.insert(Arc::new(result.clone()));
                struct Lent(*const rmq_message_t, *const rmq_send_result_t);
                impl Drop for Lent {
                    fn drop(&mut self) {
                        MESSAGES.remove(self.0);
                        RESULTS.remove(self.1);
                    }
                }
                let lent = Lent(m, res);
                // SAFETY: the caller supplied this callback for exactly this use; the handles live
                // until it returns.
                state_of(unsafe { execute(lent.0, lent.1, arg) })
            })?;
        if !out_state.is_null() {
            *out_state = state_to_c(r.state);
        }
        if !out_result.is_null() {
            *out_result = RESULTS.insert(Arc::new(r.send_result));
        }
        Ok(())
    })
}

/// Stops the producer: no checker call starts afterwards (one running goes on; destroy waits
/// for it), the brokers are told the group is gone, and the client instance closes its
/// connections when this was its last client. Idempotent. Blocks for at most
/// client.api-timeout.
#[no_mangle]
pub extern "C" fn rmq_transaction_producer_shutdown(
    producer: *mut rmq_transaction_producer_t,
) -> rmq_status_t {
    guard(|| {
        producer_of(producer)?.producer.shutdown();
        Ok(())
    })
}

/// Shuts the producer down if needed, waits until a checker call still running has returned
/// (so the checker never runs after this returns and its user_data may be freed), and frees the
/// producer. Called from the producer's own checker it would wait for itself: it fails with
/// RMQ_ERR_INVALID_STATE and the handle stays valid. In a child process after fork() it frees
/// the handle without touching the parent's connections. NULL is a no-op (RMQ_OK); a stale
/// handle is RMQ_ERR_INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn rmq_transaction_producer_destroy(
    producer: *mut rmq_transaction_producer_t,
) -> rmq_status_t {
    guard(|| {
        if producer.is_null() {
            return Ok(());
        }
        let p = TRANSACTION_PRODUCERS.get(producer)?;
        if p.producer.in_own_callback() {
            p.producer.close()?;
        }
        let Some(p) = TRANSACTION_PRODUCERS.remove(producer) else {
            return Ok(()); // destroyed meanwhile by another thread
        };
        if p.producer.is_forked() {
            // The parent's sockets and threads: dropping would reach into them.
            std::mem::forget(p);
            return Ok(());
        }
        p.producer.close()?;
        Ok(())
    })
}

/// Borrowed view of the transaction id of a send in a transaction (the message's UNIQ_KEY, as
/// the broker uses it), valid until the result is destroyed. Always set for the result of
/// rmq_transaction_producer_send; RMQ_ERR_NOT_FOUND when a broker gave none (ordinary sends).
#[no_mangle]
pub unsafe extern "C" fn rmq_send_result_transaction_id(
    result: *const rmq_send_result_t,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> rmq_status_t {
    guard(|| {
        with_result(result, |r| match &r.transaction_id {
            Some(id) => write_str(id, out, out_len),
            None => Err(FfiError::new(
                RMQ_ERR_NOT_FOUND,
                "not the result of a send in a transaction",
            )),
        })
    })
}
