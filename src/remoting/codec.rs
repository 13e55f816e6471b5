//! Frame and header encoding/decoding: pure functions over bytes, no sockets, no runtime.
//!
//! Frame: `u32 frameLength` (excludes itself) | `u32 type<<24 | headerLength` | header | body.
//! Responses come in the peer's serialization, not ours, so decoding accepts both on every frame.
use std::borrow::Cow;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

use super::command::{int_text, ExtFields, LanguageCode, RemotingCommand, SerializeType};
use crate::error::{Error, Result};

/// Netty's LengthFieldBasedFrameDecoder limit (16 MiB) counts the 4-byte length prefix.
pub const MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024 - 4;

/// Encodes the frame prefix and header; the body is left to the caller so it can be written
/// without a copy (vectored write). The length field accounts for `cmd.body`.
pub fn encode_head(cmd: &RemotingCommand, ser: SerializeType) -> Result<BytesMut> {
    encode_head_as(cmd, ser, cmd.language)
}

/// `encode_head` with `language` in place of the command's own (client.language).
pub fn encode_head_as(
    cmd: &RemotingCommand,
    ser: SerializeType,
    language: LanguageCode,
) -> Result<BytesMut> {
    let mut out = BytesMut::with_capacity(256);
    out.put_u64(0); // placeholder for both length fields
    match ser {
        SerializeType::Json => write_json_header(cmd, language, &mut out),
        SerializeType::RocketMq => write_binary_header(cmd, language, &mut out)?,
    }
    let header_len = out.len() - 8;
    if header_len > 0xFF_FFFF {
        return Err(Error::Protocol(format!(
            "header of {header_len} bytes is too large"
        )));
    }
    let frame_len = 4 + header_len + cmd.body.len();
    if frame_len > MAX_FRAME_LENGTH {
        return Err(Error::Protocol(format!(
            "frame of {frame_len} bytes exceeds the {MAX_FRAME_LENGTH}-byte limit"
        )));
    }
    out[0..4].copy_from_slice(&(frame_len as u32).to_be_bytes());
    out[4..8].copy_from_slice(&(((ser as u32) << 24) | header_len as u32).to_be_bytes());
    Ok(out)
}

/// Whole frame in one buffer (copies the body); for tests and small commands.
pub fn encode_frame(cmd: &RemotingCommand, ser: SerializeType) -> Result<BytesMut> {
    let mut out = encode_head(cmd, ser)?;
    out.extend_from_slice(&cmd.body);
    Ok(out)
}

/// Takes one complete frame off the front of `src`, or returns `Ok(None)` if more bytes are
/// needed. The body is a zero-copy slice of the read buffer.
pub fn decode_frame(src: &mut BytesMut) -> Result<Option<RemotingCommand>> {
    if src.len() < 4 {
        return Ok(None);
    }
    let frame_len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if !(4..=MAX_FRAME_LENGTH).contains(&frame_len) {
        // "HTTP/1.1 400 ..." read as a length: the peer is a web server, not RocketMQ.
        if src.starts_with(b"HTTP") {
            return Err(Error::Protocol(
                "the peer answered in HTTP, not the RocketMQ remoting protocol (is this the \
                 address of a name server or broker, or of a web console or proxy?)"
                    .into(),
            ));
        }
        return Err(Error::Protocol(format!("illegal frame length {frame_len}")));
    }
    if src.len() < 4 + frame_len {
        src.reserve(4 + frame_len - src.len());
        return Ok(None);
    }
    let mut frame = src.split_to(4 + frame_len).freeze();
    frame.advance(4);
    decode_frame_body(frame).map(Some)
}

/// Decodes a frame without its 4-byte length prefix.
pub fn decode_frame_body(mut frame: Bytes) -> Result<RemotingCommand> {
    if frame.len() < 4 {
        return Err(Error::Protocol(
            "frame shorter than its header length field".into(),
        ));
    }
    let field = frame.get_u32();
    let header_len = (field & 0xFF_FFFF) as usize;
    if header_len > frame.len() {
        return Err(Error::Protocol(format!(
            "header length {header_len} exceeds frame remainder {}",
            frame.len()
        )));
    }
    let header = frame.split_to(header_len);
    let body = frame;
    let mut cmd = match (field >> 24) as u8 {
        0 => read_json_header(&header)?,
        1 => read_binary_header(header)?,
        t => return Err(Error::Protocol(format!("unknown serialization type {t}"))),
    };
    cmd.body = body;
    Ok(cmd)
}

// ---- JSON header --------------------------------------------------------------------------

/// Writes the header as fastjson would: keys sorted, nulls omitted, all ext values strings.
fn write_json_header(cmd: &RemotingCommand, language: LanguageCode, out: &mut BytesMut) {
    out.put_slice(b"{\"code\":");
    put_int(out, cmd.code as i64);
    if !cmd.ext_fields.is_empty() {
        out.put_slice(b",\"extFields\":{");
        let mut first = true;
        let mut write = |k: &str, v: &str| {
            if !first {
                out.put_u8(b',');
            }
            first = false;
            put_json_str(out, k);
            out.put_u8(b':');
            put_json_str(out, v);
        };
        match &cmd.ext_fields {
            // fastjson sorts keys; typed headers already visit theirs in order
            ExtFields::Owned(fields) => {
                let mut sorted: Vec<&(Cow<'static, str>, String)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                sorted.into_iter().for_each(|(k, v)| write(k, v));
            }
            other => other.for_each(&mut write),
        }
        out.put_u8(b'}');
    }
    out.put_slice(b",\"flag\":");
    put_int(out, cmd.flag as i64);
    out.put_slice(b",\"language\":");
    put_json_str(out, language.name());
    out.put_slice(b",\"opaque\":");
    put_int(out, cmd.opaque as i64);
    if let Some(remark) = &cmd.remark {
        out.put_slice(b",\"remark\":");
        put_json_str(out, remark);
    }
    out.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    put_int(out, cmd.version as i64);
    out.put_u8(b'}');
}

fn put_int(out: &mut BytesMut, v: i64) {
    out.put_slice(int_text(v, &mut [0u8; 20]).as_bytes());
}

pub(crate) fn put_json_str(out: &mut BytesMut, s: &str) {
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.put_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(b"\\u00");
                out.put_u8(HEX[(b >> 4) as usize]);
                out.put_u8(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

#[derive(Deserialize)]
struct JsonHeader {
    code: i32,
    #[serde(default)]
    language: Option<serde_json::Value>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

fn read_json_header(header: &Bytes) -> Result<RemotingCommand> {
    if let Some(cmd) = super::json_header::read(header) {
        return Ok(cmd);
    }
    let h: JsonHeader = serde_json::from_slice(header)
        .map_err(|e| Error::Protocol(format!("bad JSON header: {e}")))?;
    let language = match h.language {
        Some(serde_json::Value::String(name)) => {
            LanguageCode::from_name(&name).unwrap_or(LanguageCode(7))
        }
        Some(serde_json::Value::Number(n)) => LanguageCode(n.as_u64().unwrap_or(7) as u8),
        _ => LanguageCode::JAVA,
    };
    let mut fields = Vec::new();
    for (k, v) in h.ext_fields.unwrap_or_default() {
        let value = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        // As the in-place reader: an empty key or value is no field.
        if !k.is_empty() && !value.is_empty() {
            fields.push((Cow::Owned(k), value));
        }
    }
    let ext_fields = ExtFields::Owned(fields);
    Ok(RemotingCommand {
        code: h.code,
        language,
        version: h.version,
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark,
        ext_fields,
        body: Bytes::new(),
    })
}

// ---- ROCKETMQ binary header ---------------------------------------------------------------

/// Whether the command's code and version fit the binary header's 16-bit fields.
pub fn fits_binary_header(cmd: &RemotingCommand) -> bool {
    let short = i16::MIN as i32..=i16::MAX as i32;
    short.contains(&cmd.code) && short.contains(&cmd.version)
}

fn write_binary_header(
    cmd: &RemotingCommand,
    language: LanguageCode,
    out: &mut BytesMut,
) -> Result<()> {
    if !fits_binary_header(cmd) {
        return Err(Error::Protocol(format!(
            "code {} / version {} do not fit the 16-bit binary header; use JSON",
            cmd.code, cmd.version
        )));
    }
    out.put_i16(cmd.code as i16);
    out.put_u8(language.0);
    out.put_i16(cmd.version as i16);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    match cmd.remark.as_deref() {
        Some(r) if !r.is_empty() => {
            out.put_i32(r.len() as i32);
            out.put_slice(r.as_bytes());
        }
        _ => out.put_i32(0),
    }
    let len_pos = out.len();
    out.put_i32(0);
    let mut long_key = None;
    cmd.ext_fields.for_each(&mut |k, v| {
        // Java skips null entries; an empty string would decode as null on the other side too.
        if k.is_empty() || v.is_empty() {
            return;
        }
        if k.len() > i16::MAX as usize {
            long_key = Some(k.len());
            return;
        }
        out.put_i16(k.len() as i16);
        out.put_slice(k.as_bytes());
        out.put_i32(v.len() as i32);
        out.put_slice(v.as_bytes());
    });
    if let Some(len) = long_key {
        return Err(Error::Protocol(format!(
            "a header field name of {len} bytes does not fit the binary header; use JSON"
        )));
    }
    let map_len = (out.len() - len_pos - 4) as i32;
    out[len_pos..len_pos + 4].copy_from_slice(&map_len.to_be_bytes());
    Ok(())
}

fn read_binary_header(mut h: Bytes) -> Result<RemotingCommand> {
    let short = |what: &str| Error::Protocol(format!("binary header truncated at {what}"));
    if h.len() < 17 {
        return Err(short("fixed fields"));
    }
    let code = h.get_i16() as i32;
    let language = LanguageCode(h.get_u8());
    let version = h.get_i16() as i32;
    let opaque = h.get_i32();
    let flag = h.get_i32();
    let remark_len = h.get_i32();
    let remark = read_str(&mut h, remark_len, "remark")?;
    if h.len() < 4 {
        return Err(short("extFields length"));
    }
    let map_len = h.get_i32();
    if map_len < 0 || map_len as usize > h.len() {
        return Err(Error::Protocol(format!("bad extFields length {map_len}")));
    }
    let map = h.split_to(map_len as usize);
    // Read in place on lookup: no string per field on the reply path.
    let ext_fields = ExtFields::raw(map).map_err(Error::Protocol)?;
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
    })
}

/// Java's readStr: length 0 means null; a length beyond the buffer is an error.
fn read_str(buf: &mut Bytes, len: i32, what: &str) -> Result<Option<String>> {
    if len == 0 {
        return Ok(None);
    }
    if len < 0 || len as usize > buf.len() {
        return Err(Error::Protocol(format!("bad {what} length {len}")));
    }
    let raw = buf.split_to(len as usize);
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| Error::Protocol(format!("{what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_request() -> RemotingCommand {
        RemotingCommand {
            code: 105,
            language: LanguageCode::RUST,
            version: 479,
            opaque: 1,
            flag: 0,
            remark: None,
            ext_fields: vec![(Cow::Borrowed("topic"), "T".to_string())].into(),
            body: Bytes::new(),
        }
    }

    /// The worked example of the protocol fact sheet, byte for byte.
    #[test]
    fn binary_header_matches_reference_vector() {
        let bytes = encode_frame(&route_request(), SerializeType::RocketMq).unwrap();
        let expected: Vec<u8> = vec![
            0x00, 0x00, 0x00, 0x25, 0x01, 0x00, 0x00, 0x21, 0x00, 0x69, 0x0c, 0x01, 0xdf, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x0c, 0x00, 0x05, b't', b'o', b'p', b'i', b'c', 0x00, 0x00, 0x00, 0x01, b'T',
        ];
        assert_eq!(&bytes[..], &expected[..]);
    }

    #[test]
    fn json_header_matches_reference_vector() {
        let bytes = encode_frame(&route_request(), SerializeType::Json).unwrap();
        let header = br#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"RUST","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        assert_eq!(header.len(), 0x7b);
        assert_eq!(&bytes[..8], &[0, 0, 0, 0x7f, 0, 0, 0, 0x7b]);
        assert_eq!(&bytes[8..], &header[..]);
    }

    #[test]
    fn both_serializations_round_trip_with_body() {
        for ser in [SerializeType::Json, SerializeType::RocketMq] {
            let mut cmd = route_request();
            cmd.remark = Some("line\n\"quoted\" \u{1} ünï".into());
            cmd.flag = 3;
            cmd.opaque = -7;
            cmd.ext_fields.push((Cow::Borrowed("b"), "x\\y".into()));
            cmd.body = Bytes::from_static(b"\x00\x01binary\xff");
            let mut buf = encode_frame(&cmd, ser).unwrap();
            buf.extend_from_slice(b"\x00\x00"); // start of a next frame stays in the buffer
            let decoded = decode_frame(&mut buf).unwrap().unwrap();
            assert_eq!(buf.len(), 2);
            assert_eq!(decoded.code, cmd.code);
            assert_eq!(decoded.opaque, -7);
            assert_eq!(decoded.flag, 3);
            assert_eq!(decoded.remark, cmd.remark);
            assert_eq!(decoded.ext("topic"), Some("T"));
            assert_eq!(decoded.ext("b"), Some("x\\y"));
            assert_eq!(decoded.body, cmd.body);
            assert_eq!(decoded.language, LanguageCode::RUST);
        }
    }

    #[test]
    fn an_http_answer_is_named() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..]);
        let err = decode_frame(&mut buf).unwrap_err().to_string();
        assert!(err.contains("answered in HTTP"), "{err}");
    }

    #[test]
    fn decode_waits_for_complete_frame() {
        let full = encode_frame(&route_request(), SerializeType::Json).unwrap();
        for cut in 0..full.len() {
            let mut partial = BytesMut::from(&full[..cut]);
            assert!(
                decode_frame(&mut partial).unwrap().is_none(),
                "cut at {cut}"
            );
            assert_eq!(partial.len(), cut);
        }
    }

    #[test]
    fn decodes_java_style_json_response() {
        // What a 5.x broker writes: numeric-looking values as strings, no remark, extra keys.
        let header = br#"{"code":0,"extFields":{"queueId":"3","msgId":"7F00000100002A9F0000000000000000","queueOffset":"12"},"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        let mut frame = BytesMut::new();
        frame.put_u32(4 + header.len() as u32);
        frame.put_u32(header.len() as u32);
        frame.put_slice(header);
        let cmd = decode_frame(&mut frame).unwrap().unwrap();
        assert!(cmd.is_response());
        assert_eq!(cmd.opaque, 42);
        assert_eq!(cmd.language, LanguageCode::JAVA);
        assert_eq!(cmd.ext_parse::<i32>("queueId"), Some(3));
        assert_eq!(cmd.ext_parse::<i64>("queueOffset"), Some(12));
        assert!(cmd.body.is_empty());
    }

    #[test]
    fn binary_empty_strings_decode_as_absent() {
        let mut cmd = route_request();
        cmd.remark = Some(String::new());
        cmd.ext_fields.push((Cow::Borrowed("empty"), String::new()));
        let mut buf = encode_frame(&cmd, SerializeType::RocketMq).unwrap();
        let decoded = decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(decoded.remark, None);
        assert_eq!(decoded.ext("empty"), None);
    }

    /// Found by fuzzing (json_header): an empty key in extFields came out of the in-place
    /// reader as a field, where the binary reader and `ext` treat it as none.
    #[test]
    fn json_ext_fields_with_an_empty_key_or_value_are_no_fields() {
        for header in [
            &br#"{"code":0,"extFields":{"a":"1","":"0","b":""},"flag":1}"#[..],
            // an escape sends the header to the general reader
            br#"{"code":0,"extFields":{"a":"1","":"0","b":"","c":"\u0041"},"flag":1}"#,
        ] {
            let mut frame = BytesMut::new();
            frame.put_u32(4 + header.len() as u32);
            frame.put_u32(header.len() as u32);
            frame.put_slice(header);
            let cmd = decode_frame(&mut frame).unwrap().unwrap();
            let fields = cmd.ext_fields.to_vec();
            assert!(
                fields.iter().all(|(k, v)| !k.is_empty() && !v.is_empty()),
                "{fields:?}"
            );
            assert_eq!(cmd.ext("a"), Some("1"));
            assert_eq!(cmd.ext(""), None);
            assert_eq!(cmd.ext("b"), None);
        }
    }

    #[test]
    fn a_field_name_too_long_for_the_binary_header_is_an_error() {
        let mut cmd = route_request();
        cmd.ext_fields
            .push((Cow::Owned("k".repeat(40_000)), "v".into()));
        let err = encode_frame(&cmd, SerializeType::RocketMq).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        let mut json = encode_frame(&cmd, SerializeType::Json).unwrap();
        let back = decode_frame(&mut json).unwrap().unwrap();
        assert_eq!(back.ext(&"k".repeat(40_000)), Some("v"));
    }

    #[test]
    fn rejects_bad_frames() {
        let mut too_big = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        assert!(decode_frame(&mut too_big).is_err());
        let mut tiny = BytesMut::from(&[0, 0, 0, 1, 0][..]);
        assert!(decode_frame(&mut tiny).is_err());
        // header length beyond the frame
        let mut lying = BytesMut::from(&[0, 0, 0, 6, 0, 0, 0, 9, b'{', b'}'][..]);
        assert!(decode_frame(&mut lying).is_err());
        // unknown serialization type
        let mut weird = BytesMut::from(&[0, 0, 0, 6, 7, 0, 0, 2, b'{', b'}'][..]);
        assert!(decode_frame(&mut weird).is_err());
        // binary code that does not fit 16 bits
        let mut pop = route_request();
        pop.code = 200050;
        assert!(encode_frame(&pop, SerializeType::RocketMq).is_err());
        assert!(encode_frame(&pop, SerializeType::Json).is_ok());
    }
}
