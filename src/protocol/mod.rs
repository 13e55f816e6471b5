//! Protocol vocabulary: codes, request headers, JSON bodies, message encoding, ids.
pub mod code;
pub mod compression;
pub mod consumer;
pub mod header;
pub mod ids;
pub mod json;
pub mod message;
pub mod mq_map;
pub mod pop;
pub mod route;
pub mod transaction;
