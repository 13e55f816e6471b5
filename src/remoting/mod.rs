//! The remoting layer: frame codec, connections, the per-address pool,
//! broker-initiated requests.
pub mod acl;
pub mod addr;
pub mod client;
pub mod codec;
pub mod command;
pub mod connection;
mod json_header;
mod json_scan;
pub mod processor;
pub mod tls;

pub use client::RemotingClient;
pub use command::{RemotingCommand, SerializeType};
