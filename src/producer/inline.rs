//! The start of an async send without a task: when the route is cached and the connection to
//! the broker is open (every send but the first few), the calling thread makes the first attempt
//! itself. It queues the request on the connection with a completion that the reading thread
//! calls with the answer (or the connection's sweep with a timeout), and that completion hands
//! the outcome to the callback executor. Only a retry, rare, continues in a task
//! (`send_attempts`, the same loop as every other send).
use std::sync::Arc;
use std::time::Instant;

use super::send::{Next, PreparedSend, RetryPolicy};
use super::{shut_down_error, Producer, SendResult, Target};
use crate::client::{ClientInstance, MessageQueue};
use crate::error::Result;
use crate::executor::Completion;
use crate::protocol::code::response;

/// One attempt, as `after_attempt` records it.
pub(crate) struct Attempt<'a> {
    pub mq: &'a MessageQueue,
    pub began: Instant,
    pub metric: crate::metrics::SendAttempt,
    /// The broker address the request went to, when it went.
    pub store_host: Option<Arc<str>>,
}

/// An async send `start_inline` could not start: the caller runs it in a task, first on
/// `picked` when a queue was already chosen for it.
pub(super) struct GivenBack {
    pub prepared: PreparedSend,
    pub target: Target,
    pub completion: Completion<SendResult>,
    pub picked: Option<MessageQueue>,
}

impl Producer {
    /// Makes the first attempt of an async send from the calling thread (None), or gives the
    /// send back when that needs I/O first (no cached route, no open connection): the caller
    /// then runs the whole send in a task.
    pub(super) fn start_inline(
        &self,
        instance: &Arc<ClientInstance>,
        prepared: PreparedSend,
        target: Target,
        completion: Completion<SendResult>,
    ) -> Option<GivenBack> {
        let Some(info) = instance.cached_publish_info(&prepared.topic) else {
            return Some(GivenBack {
                prepared,
                target,
                completion,
                picked: None,
            });
        };
        let mq = match &target {
            Target::Any => match self.pick_queue(&info, None) {
                Ok(mq) => mq.clone(),
                Err(_) => {
                    return Some(GivenBack {
                        prepared,
                        target,
                        completion,
                        picked: None,
                    })
                }
            },
            Target::Queue(mq) => mq.clone(),
        };
        // From here the round robin has moved on to `mq`: a send given back makes its first
        // attempt there, or every give-back would skip a queue (and, with queues alternating
        // between brokers, a broker).
        let Ok(addr) = instance.master_of(&mq) else {
            return Some(GivenBack {
                prepared,
                target,
                completion,
                picked: Some(mq),
            });
        };
        let Some(conn) = instance.remoting().existing(&addr) else {
            return Some(GivenBack {
                prepared,
                target,
                completion,
                picked: Some(mq),
            });
        };
        let deadline = Instant::now() + self.inner.config.send_timeout;
        let mut budget = self.budget(RetryPolicy::Async, &target, deadline);
        let attempt_deadline = match budget.begin_attempt() {
            Ok(time) => Instant::now() + time,
            Err(e) => {
                completion.complete(Err(e));
                return None;
            }
        };
        let began = Instant::now();
        let metric = crate::metrics::send_attempt(&prepared.topic, &mq.broker_name, false);
        let cmd = prepared.request(&self.inner.group, &mq);
        let this = self.clone();
        let instance = Arc::clone(instance);
        // Runs once, on the thread that reads the answer (or closes the connection, or sweeps
        // the timeouts): records the attempt and hands the outcome on; never runs user code.
        conn.invoke_with_callback(&cmd, attempt_deadline, self.inner.id, move |answer| {
            if this.inner.cancel.is_fired() {
                drop(metric);
                completion.complete(Err(shut_down_error()));
                return;
            }
            // GO_AWAY: the broker is shutting down gracefully and did not process the request.
            // As the awaited path does (`RemotingClient::invoke`), it goes once more, to the same
            // queue over a new connection, without counting as an attempt.
            let go_away = matches!(&answer, Ok(r) if r.code == response::GO_AWAY);
            let (next, first) = if go_away {
                drop(metric);
                budget.refund_attempt();
                (Next::Retry, Some(mq))
            } else {
                let result = this.attempt_result(&prepared, &mq, &addr, answer);
                let attempt = Attempt {
                    mq: &mq,
                    began,
                    metric,
                    store_host: Some(addr.clone()),
                };
                (
                    this.after_attempt(&prepared, attempt, result, &mut budget),
                    None,
                )
            };
            match next {
                Next::Done(r) => completion.complete(r),
                Next::Retry => {
                    let handle = instance.shared().handle().clone();
                    handle.spawn(async move {
                        let retried =
                            this.send_attempts(&instance, &prepared, &target, &info, budget, first);
                        let outcome: Result<SendResult> = tokio::select! {
                            biased;
                            _ = this.inner.cancel.fired() => Err(shut_down_error()),
                            r = retried => r,
                        };
                        completion.complete(outcome);
                    });
                }
            }
        });
        None
    }
}
