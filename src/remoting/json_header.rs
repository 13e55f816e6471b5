//! A zero-copy reader for the JSON headers brokers and name servers send (they answer in JSON
//! whatever serialization the request used). The fixed fields are parsed in one pass; the
//! `extFields` object is kept as a slice of the frame and looked up in place
//! (`ExtFields::Json`), so reading a reply allocates nothing. Anything unusual (escapes in ext
//! fields, non-string ext values) makes `read` return `None`, and the caller falls back to the
//! general serde reader.
use bytes::Bytes;

use super::command::{ExtFields, LanguageCode, RemotingCommand};
use super::json_scan::Cursor;

/// Parses a header (the body is left empty); `None` means "use the general reader".
pub(crate) fn read(header: &Bytes) -> Option<RemotingCommand> {
    let mut c = Cursor {
        buf: header,
        pos: 0,
    };
    let mut h = RemotingCommand {
        code: 0,
        language: LanguageCode::JAVA,
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: ExtFields::Json(Bytes::new()),
        body: Bytes::new(),
    };
    let mut has_code = false;
    c.eat(b'{')?;
    if c.eat(b'}').is_some() {
        return None;
    }
    loop {
        let key = c.plain_str()?;
        c.eat(b':')?;
        let null = c.peek()? == b'n' && c.literal(b"null");
        if !null {
            match key {
                b"code" => {
                    h.code = i32::try_from(c.int()?).ok()?;
                    has_code = true;
                }
                b"flag" => h.flag = i32::try_from(c.int()?).ok()?,
                b"opaque" => h.opaque = i32::try_from(c.int()?).ok()?,
                b"version" => h.version = i32::try_from(c.int()?).ok()?,
                b"language" => {
                    h.language = if c.peek()? == b'"' {
                        let name = std::str::from_utf8(c.plain_str()?).ok()?;
                        LanguageCode::from_name(name).unwrap_or(LanguageCode(7))
                    } else {
                        LanguageCode(u8::try_from(c.int()?).unwrap_or(7))
                    }
                }
                b"remark" => {
                    let text = c.raw_str()?;
                    h.remark = Some(serde_json::from_slice(text).ok()?);
                }
                b"extFields" => {
                    let start = c.peek().map(|_| c.pos)?;
                    c.ext_object()?;
                    h.ext_fields = ExtFields::Json(header.slice(start..c.pos));
                }
                _ => c.skip_value()?,
            }
        }
        if c.eat(b',').is_none() {
            c.eat(b'}')?;
            break;
        }
    }
    has_code.then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_broker_reply_without_copying_ext_fields() {
        let raw = Bytes::from_static(
            br#"{"code":0,"extFields":{"queueId":"3","msgId":"7F0000010000","queueOffset":"12","MSG_REGION":"DefaultRegion","TRACE_ON":"true","x":null},"flag":1,"language":"JAVA","opaque":-42,"serializeTypeCurrentRPC":"JSON","version":479}"#,
        );
        let h = read(&raw).unwrap();
        assert_eq!((h.code, h.flag, h.opaque, h.version), (0, 1, -42, 479));
        assert_eq!(h.language, LanguageCode::JAVA);
        assert_eq!(h.remark, None);
        assert_eq!(h.ext("queueId"), Some("3"));
        assert_eq!(h.ext("queueOffset"), Some("12"));
        assert_eq!(h.ext("x"), None);
        assert_eq!(h.ext("missing"), None);
        assert_eq!(h.ext_fields.to_vec().len(), 5);
        assert!(matches!(h.ext_fields, ExtFields::Json(_)), "read in place");
    }

    #[test]
    fn remarks_with_escapes_are_decoded() {
        let raw = Bytes::from_static(
            br#"{"code":1,"remark":"line \"two\"\n\u00e9","language":12,"opaque":7}"#,
        );
        let h = read(&raw).unwrap();
        assert_eq!(h.remark.as_deref(), Some("line \"two\"\n\u{e9}"));
        assert_eq!(h.language, LanguageCode::RUST);
    }

    #[test]
    fn unusual_headers_go_to_the_general_reader() {
        for raw in [
            &br#"{"code":0,"extFields":{"k":"a\"b"}}"#[..],
            br#"{"code":0,"extFields":{"k":5}}"#,
            br#"{"opaque":1}"#,
            br#"{"code":0,"#,
            br#"not json"#,
        ] {
            assert!(read(&Bytes::copy_from_slice(raw)).is_none(), "{raw:?}");
        }
        // unknown keys of any shape are skipped
        let h = read(&Bytes::from_static(
            br#"{"a":{"b":[1,{"c":"}"}]},"code":5,"z":true}"#,
        ))
        .unwrap();
        assert_eq!(h.code, 5);
    }
}
