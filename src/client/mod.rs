//! The client instance: routes, name servers, heartbeats, shared connections, and the registry
//! that shares one instance among the clients with the same client id.
pub mod instance;
pub mod namesrv;
pub mod registry;
pub mod route;
pub(crate) mod route_log;

pub use instance::ClientInstance;
pub use route::{MessageQueue, TopicPublishInfo};
