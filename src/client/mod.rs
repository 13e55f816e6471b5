//! The client instance: routes, name servers, heartbeats, shared connections.
pub mod instance;
pub mod namesrv;
pub mod route;

pub use instance::ClientInstance;
pub use route::{MessageQueue, TopicPublishInfo};
