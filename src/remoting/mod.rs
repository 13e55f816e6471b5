//! The remoting layer: frame codec, connections and their reactor, the per-address pool,
//! broker-initiated requests.
pub mod client;
pub mod codec;
pub mod command;
pub mod connection;
mod json_header;
pub mod processor;
pub(crate) mod reactor;

pub use client::RemotingClient;
pub use command::{RemotingCommand, SerializeType};
