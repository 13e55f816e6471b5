//! RemotingCommand: the unit every request, response and broker-initiated call travels in.
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};

/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// MQVersion ordinal we announce. 479 (V5_3_3): >= 401 gets standard route JSON; > 475 lets a
/// gracefully stopping server answer GO_AWAY, which `RemotingClient::invoke` handles (reconnect
/// and send once more).
pub const CLIENT_VERSION: i32 = 479;

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

    /// Every name a broker knows, by code.
    pub fn names() -> &'static [&'static str] {
        &Self::NAMES
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

/// Custom-header fields.
#[derive(Clone)]
pub enum ExtFields {
    /// Built field by field; keys are usually static Java field names.
    Owned(Vec<(Cow<'static, str>, String)>),
    /// A typed header that writes its fields straight into the frame, with no string per field
    /// (the send path). Write-only: `RemotingCommand::ext` does not see its fields.
    Typed(Arc<dyn TypedHeader>),
    /// The key/value map of a binary header as received, checked once and read in place.
    Raw(Bytes),
    /// The `extFields` object of a JSON header as received (checked by the reader: plain
    /// strings only), read in place.
    Json(Bytes),
}

/// A request header that hands its fields to the encoder as (key, value) text.
pub trait TypedHeader: Send + Sync + fmt::Debug {
    fn visit(&self, f: &mut dyn FnMut(&str, &str));
}

impl Default for ExtFields {
    fn default() -> Self {
        ExtFields::Owned(Vec::new())
    }
}

impl From<Vec<(Cow<'static, str>, String)>> for ExtFields {
    fn from(v: Vec<(Cow<'static, str>, String)>) -> Self {
        ExtFields::Owned(v)
    }
}

impl ExtFields {
    /// Calls `f` with every field that has a non-empty key and value, in order.
    pub fn for_each(&self, f: &mut dyn FnMut(&str, &str)) {
        match self {
            ExtFields::Owned(v) => v.iter().for_each(|(k, v)| f(k, v)),
            ExtFields::Typed(h) => h.visit(f),
            ExtFields::Raw(raw) => {
                for (k, v) in RawFields(raw.clone()) {
                    f(k_str(&k), k_str(&v));
                }
            }
            ExtFields::Json(obj) => super::json_scan::for_each_ext(obj, &mut |k, v| {
                if !k.is_empty() && !v.is_empty() {
                    f(k, v)
                }
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        let mut any = false;
        self.for_each(&mut |_, _| any = true);
        !any
    }

    /// Adds a field (a typed or received header is first turned into owned fields).
    pub fn push(&mut self, field: (Cow<'static, str>, String)) {
        if !matches!(self, ExtFields::Owned(_)) {
            let owned = self
                .to_vec()
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect();
            *self = ExtFields::Owned(owned);
        }
        if let ExtFields::Owned(v) = self {
            v.push(field);
        }
    }

    /// Every field as owned strings (tests, diagnostics).
    pub fn to_vec(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.for_each(&mut |k, v| out.push((k.to_string(), v.to_string())));
        out
    }

    fn get(&self, key: &str) -> Option<&str> {
        if key.is_empty() {
            // no field has an empty name (see `for_each`)
            return None;
        }
        match self {
            ExtFields::Owned(v) => v.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()),
            ExtFields::Typed(_) => None,
            ExtFields::Raw(raw) => {
                let mut rest: &[u8] = raw;
                while let Some((k, v, tail)) = split_raw_field(rest) {
                    rest = tail;
                    if k == key.as_bytes() && !v.is_empty() {
                        // Checked to be UTF-8 when the header was decoded.
                        return std::str::from_utf8(v).ok();
                    }
                }
                None
            }
            ExtFields::Json(obj) => super::json_scan::ext_get(obj, key),
        }
    }

    /// Checks a binary ext map: whole entries, UTF-8 keys and values. After this, lookups
    /// cannot fail halfway.
    pub fn raw(map: Bytes) -> Result<ExtFields, String> {
        let mut rest: &[u8] = &map;
        while !rest.is_empty() {
            let Some((k, v, tail)) = split_raw_field(rest) else {
                return Err("binary ext map has a truncated entry".into());
            };
            if std::str::from_utf8(k).is_err() || std::str::from_utf8(v).is_err() {
                return Err("binary ext map holds text that is not UTF-8".into());
            }
            rest = tail;
        }
        Ok(ExtFields::Raw(map))
    }
}

/// One entry of a binary ext map: `i16 keyLen | key | i32 valueLen | value`.
fn split_raw_field(buf: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut b = buf;
    if b.len() < 2 {
        return None;
    }
    let klen = b.get_i16();
    if klen < 0 || klen as usize > b.len() {
        return None;
    }
    let (k, mut b) = b.split_at(klen as usize);
    if b.len() < 4 {
        return None;
    }
    let vlen = b.get_i32();
    if vlen < 0 || vlen as usize > b.len() {
        return None;
    }
    let (v, tail) = b.split_at(vlen as usize);
    Some((k, v, tail))
}

/// Iterates a checked binary ext map, skipping entries with an empty key or value (Java reads
/// those as null).
struct RawFields(Bytes);

impl Iterator for RawFields {
    type Item = (Bytes, Bytes);
    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        loop {
            let (klen, vlen, total) = {
                let (k, v, tail) = split_raw_field(&self.0)?;
                (k.len(), v.len(), self.0.len() - tail.len())
            };
            let entry = self.0.split_to(total);
            let key = entry.slice(2..2 + klen);
            let value = entry.slice(2 + klen + 4..2 + klen + 4 + vlen);
            if klen > 0 && vlen > 0 {
                return Some((key, value));
            }
        }
    }
}

fn k_str(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.to_vec()).finish()
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.to_vec() == other.to_vec()
    }
}

/// Decimal text of `v` in a stack buffer, for typed headers.
pub fn int_text(v: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // SAFETY: only ASCII digits and '-' were written to buf[i..].
    unsafe { std::str::from_utf8_unchecked(&buf[i..]) }
}

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
    pub fn request(code: i32, ext_fields: impl Into<ExtFields>) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::RUST,
            version: CLIENT_VERSION,
            opaque: next_opaque(),
            flag: 0,
            remark: None,
            ext_fields: ext_fields.into(),
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
            ext_fields: ExtFields::default(),
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

    /// A custom-header field; empty values read as absent, as Java reads them as null.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    pub fn ext_parse<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.ext(key).and_then(|v| v.trim().parse().ok())
    }

    pub fn remark_str(&self) -> &str {
        self.remark.as_deref().unwrap_or("")
    }
}
