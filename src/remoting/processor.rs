//! Requests the broker initiates on a client connection (transaction check-back, consumer ids
//! changed, running info, ...).
//!
//! The connection hands each one to a `RequestHandler` on the thread that read it, which may be
//! a user thread waiting for its own reply, so a handler only queues the work. The client
//! instance's `ProcessorRegistry` runs the processor registered for the request code on its
//! executor and writes the response from there. A code nobody registered is answered with
//! REQUEST_CODE_NOT_SUPPORTED, as the Java client does, never with silence.
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::command::RemotingCommand;
use super::connection::Connection;
pub use super::connection::RequestHandler;
use crate::executor::Executor;
use crate::protocol::code::response;

pub trait RequestProcessor: Send + Sync {
    /// Handles a broker request; returns the response to send (ignored for oneway requests).
    fn process(&self, remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand>;
}

/// Answers every request as unsupported, at once (no user code runs).
pub struct UnsupportedProcessor;

impl RequestProcessor for UnsupportedProcessor {
    fn process(&self, _remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        Some(not_supported(&request))
    }
}

impl RequestHandler for UnsupportedProcessor {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) {
        if !request.is_oneway() {
            let _ = conn.send_command(&not_supported(&request));
        }
    }
}

pub fn not_supported(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(
        request,
        response::REQUEST_CODE_NOT_SUPPORTED,
        Some(format!(" request type {} not supported", request.code)),
    )
}

/// Processors by request code, run on an executor of their own.
pub struct ProcessorRegistry {
    processors: RwLock<HashMap<i32, Arc<dyn RequestProcessor>>>,
    executor: Executor,
}

/// Owner id of broker-request jobs on the executor.
const BROKER_REQUESTS: u64 = 0;

impl ProcessorRegistry {
    pub fn new(executor: Executor) -> ProcessorRegistry {
        ProcessorRegistry {
            processors: RwLock::new(HashMap::new()),
            executor,
        }
    }

    /// Registers (or replaces) the processor of `code`.
    pub fn register(&self, code: i32, processor: Arc<dyn RequestProcessor>) {
        self.processors.write().insert(code, processor);
    }

    pub fn unregister(&self, code: i32) {
        self.processors.write().remove(&code);
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    fn processor(&self, code: i32) -> Arc<dyn RequestProcessor> {
        match self.processors.read().get(&code) {
            Some(p) => Arc::clone(p),
            None => Arc::new(UnsupportedProcessor),
        }
    }

    /// Runs the processor of `request` on the calling thread and returns what would be written
    /// back (nothing for a oneway request). The fuzz targets drive requests through this.
    pub(crate) fn process_now(
        &self,
        remote_addr: &str,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        run(&*self.processor(request.code), remote_addr, request)
    }
}

/// A processor's answer to `request`, dropped when the request is oneway.
fn run(
    processor: &dyn RequestProcessor,
    remote_addr: &str,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let oneway = request.is_oneway();
    processor.process(remote_addr, request).filter(|_| !oneway)
}

impl RequestHandler for ProcessorRegistry {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) {
        let processor = self.processor(request.code);
        let oneway = request.is_oneway();
        let refusal =
            (!oneway).then(|| RemotingCommand::response_to(&request, response::SYSTEM_ERROR, None));
        let conn2 = Arc::clone(conn);
        let queued = self.executor.spawn(BROKER_REQUESTS, move || {
            if let Some(response) = run(&*processor, conn2.addr(), request) {
                let _ = conn2.send_command(&response);
            }
        });
        if let (Err(e), Some(mut refusal)) = (queued, refusal) {
            // No thread can run it: say so rather than leave the broker waiting.
            refusal.remark = Some(e.to_string());
            let _ = conn.send_command(&refusal);
        }
    }
}
