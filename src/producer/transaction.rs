//! Transactional messages, as Java's `TransactionMQProducer`.
//!
//! A send in a transaction stores a half message (TRAN_MSG=true, PGROUP=<group>, sysFlag
//! TRANSACTION_PREPARED) that consumers do not see, runs the caller's local transaction on the
//! calling thread, and tells the broker that stored it how it ended with END_TRANSACTION
//! (oneway): commit makes the message visible, rollback drops it, unknown leaves it to the
//! broker's check. A broker that did not hear a final answer within its transactionTimeOut asks
//! any producer of the group with CHECK_TRANSACTION_STATE; the instance's processor hands the
//! check to that group's checker, which runs on the producer's own check threads
//! (`producer.transaction-check-threads`), never on the thread that read the request, and the
//! answer goes back as END_TRANSACTION with fromTransactionCheck=true. A checker that panics is
//! answered as unknown (as Java answers a checker that throws), so the broker asks again later.
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::selector::panic_text;
use super::send::RetryPolicy;
use super::{Producer, SendResult, SendStatus, Target};
use crate::client::{namespace, ClientInstance};
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::executor::{self, Executor};
use crate::protocol::header::AUTO_CREATE_TOPIC_KEY;
use crate::protocol::message::{
    decode_offset_msg_id, decode_stored_messages, Message, MessageExt,
    PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX,
};
use crate::protocol::transaction::{
    end_transaction, EndTransaction, PROPERTY_PRODUCER_GROUP, PROPERTY_TRANSACTION_PREPARED,
    TRANSACTION_COMMIT_TYPE, TRANSACTION_NOT_TYPE, TRANSACTION_ROLLBACK_TYPE,
};
use crate::remoting::processor::RequestProcessor;
use crate::remoting::RemotingCommand;
use crate::runtime;

/// The user property Java sets on a message sent in a transaction: its transaction id.
pub const PROPERTY_TRANSACTION_ID: &str = "__transactionId__";

/// How a local transaction ended, as the local-transaction callback or the checker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTransactionState {
    /// Deliver the message.
    Commit,
    /// Drop the message; it is never delivered.
    Rollback,
    /// Not known yet: the broker asks the group's checker later.
    Unknown,
}

impl LocalTransactionState {
    /// Java's names: COMMIT_MESSAGE, ROLLBACK_MESSAGE, UNKNOW.
    pub fn java_name(self) -> &'static str {
        match self {
            LocalTransactionState::Commit => "COMMIT_MESSAGE",
            LocalTransactionState::Rollback => "ROLLBACK_MESSAGE",
            LocalTransactionState::Unknown => "UNKNOW",
        }
    }

    fn end_type(self) -> i32 {
        match self {
            LocalTransactionState::Commit => TRANSACTION_COMMIT_TYPE,
            LocalTransactionState::Rollback => TRANSACTION_ROLLBACK_TYPE,
            LocalTransactionState::Unknown => TRANSACTION_NOT_TYPE,
        }
    }
}

/// The outcome of a send in a transaction: the half message's send result (its
/// `transaction_id` is always set) and how the local transaction ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionSendResult {
    pub send_result: SendResult,
    pub state: LocalTransactionState,
}

impl TransactionSendResult {
    pub fn transaction_id(&self) -> &str {
        self.send_result
            .transaction_id
            .as_deref()
            .unwrap_or(&self.send_result.msg_id)
    }
}

/// The checker: given the half message the broker asks about (topic without the namespace,
/// `msg_id()` = the transaction id), says how its local transaction ended.
pub type TransactionChecker = dyn Fn(&MessageExt) -> LocalTransactionState + Send + Sync;

/// Checker calls in progress, so a closing producer can wait for the last one and none starts
/// after it.
#[derive(Default)]
struct Gate {
    /// (closed, calls running)
    state: Mutex<(bool, usize)>,
    idle: Condvar,
}

impl Gate {
    fn enter(&self) -> bool {
        let mut s = self.state.lock();
        if s.0 {
            return false;
        }
        s.1 += 1;
        true
    }

    fn leave(&self) {
        let mut s = self.state.lock();
        s.1 -= 1;
        if s.1 == 0 {
            self.idle.notify_all();
        }
    }

    fn close(&self) {
        self.state.lock().0 = true;
    }

    /// No call starts after this; returns when the running ones have returned.
    fn close_and_wait(&self) {
        let mut s = self.state.lock();
        s.0 = true;
        while s.1 > 0 {
            self.idle.wait(&mut s);
        }
    }
}

/// A transaction producer's part in its client instance: the checker and where it runs.
struct CheckerEntry {
    /// Owner id of the check jobs (so a checker cannot wait for itself).
    owner: u64,
    /// The group as the broker knows it (namespaced).
    group: Arc<str>,
    namespace: String,
    checker: Arc<TransactionChecker>,
    executor: Executor,
    instance: Mutex<Weak<ClientInstance>>,
    gate: Gate,
    /// The producer, for its message trace (weak: the instance holding this entry is the
    /// producer's).
    producer: Weak<super::Inner>,
}

/// One CHECK_TRANSACTION_STATE, decoded.
struct Check {
    /// The broker connection it came on; the answer goes back there.
    addr: String,
    msg: MessageExt,
    tran_state_table_offset: i64,
    commit_log_offset: i64,
    transaction_id: Option<String>,
    broker_name: Option<String>,
}

impl CheckerEntry {
    /// Runs on a check thread: the checker, then the answer.
    fn run(&self, check: Check) {
        if !self.gate.enter() {
            return; // the producer is closing: the broker asks again later
        }
        let mut msg = check.msg.clone();
        if !self.namespace.is_empty() {
            let topic = namespace::unwrap(&self.namespace, msg.message.topic()).into_owned();
            // a part of a topic the broker stored: valid
            let _ = msg.message.set_topic(&topic);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.checker)(&msg)));
        self.gate.leave();
        let (state, remark) = match outcome {
            Ok(state) => (state, None),
            Err(p) => {
                let why = format!("the transaction checker panicked: {}", panic_text(&*p));
                crate::log_warn!(
                    "rmq::producer",
                    "{why}; answering unknown for transaction {}, the broker will ask again",
                    check.msg.msg_id()
                );
                (LocalTransactionState::Unknown, Some(why))
            }
        };
        let Some(instance) = self.instance.lock().upgrade() else {
            return;
        };
        if instance.is_shut_down() {
            return;
        }
        let msg_id = check.msg.msg_id();
        if let Some(t) = self.producer.upgrade().as_ref().and_then(|p| p.trace.get()) {
            t.record(crate::trace::EndTransaction::event(
                &check.msg.message,
                msg_id,
                &check.addr,
                state.java_name(),
                true,
            ));
        }
        let cmd = end_transaction(&EndTransaction {
            topic: check.msg.message.topic(),
            producer_group: &self.group,
            tran_state_table_offset: check.tran_state_table_offset,
            commit_log_offset: check.commit_log_offset,
            commit_or_rollback: state.end_type(),
            from_transaction_check: true,
            msg_id,
            transaction_id: Some(check.transaction_id.as_deref().unwrap_or(msg_id)),
            broker_name: check
                .broker_name
                .as_deref()
                .unwrap_or(&check.msg.broker_name),
            remark,
        });
        let sent = runtime::block_on(
            instance.shared(),
            "transaction check answer",
            instance.remoting().invoke_oneway(&check.addr, cmd),
        )
        .and_then(|r| r);
        if let Err(e) = sent {
            crate::log_warn!(
                "rmq::producer",
                "answering the check of transaction {msg_id} ({}) to {} failed; the broker will ask again: {e}",
                state.java_name(),
                check.addr
            );
        }
    }
}

/// The checkers of one client instance's transaction producers, by group, and the processor of
/// CHECK_TRANSACTION_STATE that finds them.
#[derive(Default)]
pub struct TransactionCheckers {
    by_group: Mutex<HashMap<Arc<str>, Arc<CheckerEntry>>>,
}

impl TransactionCheckers {
    pub(crate) fn processor(this: &Arc<TransactionCheckers>) -> Arc<dyn RequestProcessor> {
        Arc::new(CheckProcessor(Arc::clone(this)))
    }

    fn add(&self, entry: Arc<CheckerEntry>) {
        self.by_group.lock().insert(Arc::clone(&entry.group), entry);
    }

    fn remove(&self, entry: &Arc<CheckerEntry>) {
        let mut by_group = self.by_group.lock();
        if by_group
            .get(&entry.group)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            by_group.remove(&entry.group);
        }
    }

    fn get(&self, group: &str) -> Option<Arc<CheckerEntry>> {
        self.by_group.lock().get(group).cloned()
    }
}

/// CHECK_TRANSACTION_STATE (oneway; no response): decodes the half message and queues the check
/// on the group's check threads.
struct CheckProcessor(Arc<TransactionCheckers>);

impl RequestProcessor for CheckProcessor {
    fn process(&self, remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let msg = match decode_stored_messages(request.body.clone()) {
            Ok(msgs) if !msgs.is_empty() => msgs.into_iter().next()?,
            Ok(_) => {
                crate::log_warn!(
                    "rmq::producer",
                    "transaction check from {remote_addr} carries no message; ignored"
                );
                return None;
            }
            Err(e) => {
                crate::log_warn!(
                    "rmq::producer",
                    "transaction check from {remote_addr} does not decode; ignored: {e}"
                );
                return None;
            }
        };
        let group = msg
            .message
            .property(PROPERTY_PRODUCER_GROUP)
            .unwrap_or("")
            .to_string();
        let Some(entry) = self.0.get(&group) else {
            crate::log_warn!(
                "rmq::producer",
                "transaction check from {remote_addr} for group '{group}', which has no transaction producer here; ignored"
            );
            return None;
        };
        let check = Check {
            addr: remote_addr.to_string(),
            tran_state_table_offset: request
                .ext_parse("tranStateTableOffset")
                .unwrap_or(msg.queue_offset),
            commit_log_offset: request
                .ext_parse("commitLogOffset")
                .unwrap_or(msg.commit_log_offset),
            transaction_id: request.ext("transactionId").map(str::to_string),
            broker_name: request.ext("bname").map(str::to_string),
            msg,
        };
        let job = Arc::clone(&entry);
        if let Err(e) = entry.executor.spawn(entry.owner, move || job.run(check)) {
            crate::log_debug!(
                "rmq::producer",
                "transaction check for group '{group}' dropped: {e}"
            );
        }
        None
    }
}

struct Inner {
    producer: Producer,
    entry: Arc<CheckerEntry>,
}

impl Inner {
    fn shutdown(&self) {
        self.entry.gate.close();
        if let Some(instance) = self.producer.instance() {
            instance.transaction_checkers().remove(&self.entry);
        }
        self.entry.executor.close();
        self.producer.shutdown();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.producer.is_forked() {
            self.shutdown();
        }
    }
}

/// A producer of transactional messages (Java's `TransactionMQProducer`). Cheap to clone;
/// clones share one producer. Its group must not be used by another producer of the same
/// client instance.
#[derive(Clone)]
pub struct TransactionProducer {
    inner: Arc<Inner>,
}

impl TransactionProducer {
    /// A producer whose `checker` answers the brokers' checks of its group's transactions. The
    /// checker runs on the producer's check threads (`producer.transaction-check-threads`,
    /// named `rmq-txn-check-N`), several at once when there are several threads.
    pub fn new(
        config: ProducerConfig,
        checker: impl Fn(&MessageExt) -> LocalTransactionState + Send + Sync + 'static,
    ) -> Result<TransactionProducer> {
        let threads = config.transaction_check_threads;
        let producer = Producer::new(config)?;
        let entry = Arc::new(CheckerEntry {
            owner: executor::new_owner_id(),
            group: Arc::clone(&producer.inner.group),
            namespace: producer.namespace().unwrap_or("").to_string(),
            checker: Arc::new(checker),
            executor: Executor::new("rmq-txn-check", threads),
            instance: Mutex::new(Weak::new()),
            gate: Gate::default(),
            producer: Arc::downgrade(&producer.inner),
        });
        Ok(TransactionProducer {
            inner: Arc::new(Inner { producer, entry }),
        })
    }

    /// The producer underneath, for ordinary sends, `view_message` and `query_message`.
    pub fn producer(&self) -> &Producer {
        &self.inner.producer
    }

    /// Starts the producer and registers its checker with the client instance. As Java does,
    /// it also looks up the route of the auto-create template topic (TBW102) in the background,
    /// so that the brokers learn about the group from its heartbeats, and can ask it to check,
    /// before it sends anything.
    pub fn start(&self) -> Result<()> {
        self.inner.producer.start()?;
        let Some(instance) = self.inner.producer.instance() else {
            return Err(Error::InvalidState("producer has been shut down".into()));
        };
        *self.inner.entry.instance.lock() = Arc::downgrade(&instance);
        instance
            .transaction_checkers()
            .add(Arc::clone(&self.inner.entry));
        // Announce the group at once, as Java's start does: an instance shared with clients
        // started earlier would otherwise name it only at its next periodic heartbeat, and the
        // broker gives up on a transaction after transactionCheckMax checks that found no
        // producer of its group.
        let inst = Arc::clone(&instance);
        instance.shared().handle().spawn(async move {
            if inst.cached_publish_info(AUTO_CREATE_TOPIC_KEY).is_none() {
                let deadline = Instant::now() + inst.config().api_timeout;
                if let Err(e) = inst.update_route(AUTO_CREATE_TOPIC_KEY, deadline).await {
                    crate::log_debug!(
                        "rmq::producer",
                        "no route of {AUTO_CREATE_TOPIC_KEY} at start; brokers learn about the group from its sends: {e}"
                    );
                }
            }
            inst.send_heartbeats().await;
        });
        Ok(())
    }

    /// Stops the producer: no checker call starts afterwards (calls already running go on),
    /// and the producer shuts down (`Producer::shutdown`). Idempotent.
    pub fn shutdown(&self) {
        if !self.inner.producer.is_forked() {
            self.inner.shutdown();
        }
    }

    /// `shutdown`, then waits until the checker calls still running have returned. Refused with
    /// `Error::InvalidState` from the producer's own checker, which would wait for itself.
    pub fn close(&self) -> Result<()> {
        if self.in_own_callback() {
            return Err(Error::InvalidState(
                "a transaction producer cannot be closed or destroyed from its own checker; do \
                 it from another thread"
                    .into(),
            ));
        }
        self.shutdown();
        self.inner.entry.gate.close_and_wait();
        self.inner.producer.close()
    }

    /// Whether the calling thread is running this producer's checker.
    pub fn in_own_callback(&self) -> bool {
        executor::current_owner() == Some(self.inner.entry.owner)
            || self.inner.producer.in_own_callback()
    }

    pub fn is_forked(&self) -> bool {
        self.inner.producer.is_forked()
    }

    /// The half message: a copy of `msg` with TRAN_MSG and PGROUP, encoded once.
    fn prepare_half(&self, msg: &Message) -> Result<(Message, super::PreparedSend)> {
        if msg.has_delay() {
            return Err(Error::InvalidArgument(
                "a message sent in a transaction cannot have a delay or a delivery time".into(),
            ));
        }
        let mut half = msg.clone();
        half.put_property(PROPERTY_TRANSACTION_PREPARED, "true");
        half.put_property(PROPERTY_PRODUCER_GROUP, &self.inner.producer.inner.group);
        let prepared = self.inner.producer.prepare(&half)?.into_half_message();
        Ok((half, prepared))
    }

    /// Sends `msg` as a half message and waits for the broker to store it, runs `execute` (the
    /// local transaction) on the calling thread with the message as sent and the send result,
    /// and ends the transaction as `execute` says. A panic in `execute` counts as
    /// `Unknown` (the broker then asks the checker). A half message the broker stored with a
    /// status other than SEND_OK is rolled back without calling `execute`. A failure to deliver
    /// the end (a oneway request) is logged, not returned: the broker then asks the checker.
    /// Blocks; from async code use `send_in_transaction`.
    pub fn send_in_transaction_blocking(
        &self,
        msg: &Message,
        execute: impl FnOnce(&Message, &SendResult) -> LocalTransactionState,
    ) -> Result<TransactionSendResult> {
        let producer = &self.inner.producer;
        let instance = producer.running()?;
        let (mut half, prepared) = self.prepare_half(msg)?;
        let result = runtime::block_on(
            instance.shared(),
            "send in transaction",
            producer.send_prepared(&instance, &prepared, RetryPolicy::Sync, &Target::Any),
        )??;
        let (result, state, remark) = local(&mut half, result, execute);
        runtime::block_on(
            instance.shared(),
            "end transaction",
            self.end(&instance, &half, &prepared.topic, &result, state, remark),
        )?;
        Ok(TransactionSendResult {
            send_result: result,
            state,
        })
    }

    /// As `send_in_transaction_blocking`, awaited; `execute` runs on the awaiting task.
    pub async fn send_in_transaction(
        &self,
        msg: &Message,
        execute: impl FnOnce(&Message, &SendResult) -> LocalTransactionState,
    ) -> Result<TransactionSendResult> {
        let producer = &self.inner.producer;
        let instance = producer.running()?;
        let (mut half, prepared) = self.prepare_half(msg)?;
        let result = producer
            .send_prepared(&instance, &prepared, RetryPolicy::Sync, &Target::Any)
            .await?;
        let (result, state, remark) = local(&mut half, result, execute);
        self.end(&instance, &half, &prepared.topic, &result, state, remark)
            .await;
        Ok(TransactionSendResult {
            send_result: result,
            state,
        })
    }

    /// END_TRANSACTION (oneway) to the master that stored the half message `half`. A failure is
    /// logged: the broker checks the transaction later.
    async fn end(
        &self,
        instance: &ClientInstance,
        half: &Message,
        wire_topic: &str,
        result: &SendResult,
        state: LocalTransactionState,
        remark: Option<String>,
    ) {
        let sent = async {
            let (_, commit_log_offset) = decode_offset_msg_id(&result.offset_msg_id)?;
            let addr = instance.master_of(&result.queue)?;
            if let Some(t) = self.inner.producer.inner.trace.get() {
                t.record(crate::trace::EndTransaction::event(
                    half,
                    &result.msg_id,
                    &addr,
                    state.java_name(),
                    false,
                ));
            }
            let cmd = end_transaction(&EndTransaction {
                topic: wire_topic,
                producer_group: &self.inner.producer.inner.group,
                tran_state_table_offset: result.queue_offset,
                commit_log_offset,
                commit_or_rollback: state.end_type(),
                from_transaction_check: false,
                msg_id: &result.msg_id,
                transaction_id: result.transaction_id.as_deref(),
                broker_name: &result.queue.broker_name,
                remark,
            });
            instance.remoting().invoke_oneway(&addr, cmd).await
        }
        .await;
        if let Err(e) = sent {
            crate::log_warn!(
                "rmq::producer",
                "ending transaction {} ({}) failed; the broker will check it: {e}",
                result.msg_id,
                state.java_name()
            );
        }
    }
}

/// Runs the local transaction, as Java: only for a half message stored with SEND_OK (else
/// rollback), a panic counts as unknown. The message gets the transaction id property first.
fn local(
    half: &mut Message,
    mut result: SendResult,
    execute: impl FnOnce(&Message, &SendResult) -> LocalTransactionState,
) -> (SendResult, LocalTransactionState, Option<String>) {
    if result.transaction_id.is_none() {
        result.transaction_id = Some(result.msg_id.clone());
    }
    if result.status != SendStatus::SendOk {
        let why = format!(
            "the half message was stored with {:?}; rolled back",
            result.status
        );
        return (result, LocalTransactionState::Rollback, Some(why));
    }
    let id = result.transaction_id.clone().unwrap_or_default();
    half.put_property(PROPERTY_TRANSACTION_ID, &id);
    if half
        .property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        .is_none()
    {
        half.put_property(PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX, &result.msg_id);
    }
    match catch_unwind(AssertUnwindSafe(|| execute(half, &result))) {
        Ok(state) => (result, state, None),
        Err(p) => {
            let why = format!("the local transaction panicked: {}", panic_text(&*p));
            crate::log_warn!(
                "rmq::producer",
                "{why}; transaction {id} ends as unknown, the broker will check it"
            );
            (result, LocalTransactionState::Unknown, Some(why))
        }
    }
}
