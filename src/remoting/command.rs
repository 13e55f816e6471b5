//! RemotingCommand: the unit every request, response and broker-initiated call travels in.
use std::borrow::Cow;
use std::sync::atomic::{AtomicI32, Ordering};

use bytes::Bytes;

/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// MQVersion ordinal we announce. 475 (V5_3_1): >= 401 gets standard route JSON; > 475 would let a
/// gracefully stopping server answer GO_AWAY, which needs reconnect-and-resend we do not do yet.
pub const CLIENT_VERSION: i32 = 475;

/// LanguageCode byte; RUST is 12 (brokers >= 4.9.4 know it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageCode(pub u8);

impl LanguageCode {
    pub const JAVA: LanguageCode = LanguageCode(0);
    pub const RUST: LanguageCode = LanguageCode(12);

    const NAMES: [&'static str; 14] = [
        "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO",
        "PHP", "OMS", "RUST", "NODE_JS",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES.get(self.0 as usize).copied().unwrap_or("OTHER")
    }

    pub fn from_name(name: &str) -> Option<LanguageCode> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| LanguageCode(i as u8))
    }
}

/// Header serialization, the top byte of the header-length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializeType {
    Json = 0,
    RocketMq = 1,
}

/// Custom-header fields. Keys are usually static Java field names, so no allocation for them.
pub type ExtFields = Vec<(Cow<'static, str>, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Bytes,
}

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);

/// Process-wide request id; wraps like Java's AtomicInteger.
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

impl RemotingCommand {
    pub fn request(code: i32, ext_fields: ExtFields) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CLIENT_VERSION,
            opaque: next_opaque(),
            flag: 0,
            remark: None,
            ext_fields,
            body: Bytes::new(),
        }
    }

    /// A response to `request`: same opaque, response bit set.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CLIENT_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn ext_parse<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.ext(key).and_then(|v| v.trim().parse().ok())
    }

    pub fn remark_str(&self) -> &str {
        self.remark.as_deref().unwrap_or("")
    }
}
