//! The client instance: routes, name servers, heartbeats, shared connections, and the registry
//! that shares one instance among the clients with the same client id.
pub mod admin;
pub mod fault;
pub mod instance;
pub mod namespace;
pub mod namesrv;
pub mod nsaddr;
pub mod registry;
pub mod reply;
pub mod route;
pub(crate) mod route_log;

pub use instance::{ClientInstance, ConsumerMember};
pub use route::{MessageQueue, TopicPublishInfo};
