//! Requests the broker initiates on a client connection (transaction check-back, consumer ids
//! changed, running info, ...). Until a component registers for a code, it is answered with
//! REQUEST_CODE_NOT_SUPPORTED, as the Java client does, never with silence.
use super::command::RemotingCommand;
use crate::protocol::code::response;

pub trait RequestProcessor: Send + Sync {
    /// Handles a broker request; returns the response to send (ignored for oneway requests).
    fn process(&self, remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand>;
}

/// Answers every request as unsupported.
pub struct UnsupportedProcessor;

impl RequestProcessor for UnsupportedProcessor {
    fn process(&self, _remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        Some(not_supported(&request))
    }
}

pub fn not_supported(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(
        request,
        response::REQUEST_CODE_NOT_SUPPORTED,
        Some(format!(" request type {} not supported", request.code)),
    )
}
