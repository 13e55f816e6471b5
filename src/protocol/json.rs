//! fastjson tolerance: Java peers write maps with `Long` keys unquoted (`{0:"127.0.0.1:10911"}`),
//! which strict parsers reject. This pre-pass quotes bare object keys and leaves everything else
//! alone, so serde_json can do the real parsing.
use std::borrow::Cow;

pub fn quote_bare_keys(input: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut stack: Vec<u8> = Vec::new();
    let mut expect_key = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
        } else {
            match c {
                b'"' => {
                    in_string = true;
                    expect_key = false;
                }
                b'{' => {
                    stack.push(b'{');
                    expect_key = true;
                }
                b'[' => {
                    stack.push(b'[');
                    expect_key = false;
                }
                b'}' | b']' => {
                    stack.pop();
                    expect_key = false;
                }
                b',' => expect_key = stack.last() == Some(&b'{'),
                b':' => expect_key = false,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if expect_key => {
                    let start = i;
                    while i < input.len() && input[i] != b':' && !input[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    let buf = out.get_or_insert_with(|| input[..start].to_vec());
                    buf.push(b'"');
                    buf.extend_from_slice(&input[start..i]);
                    buf.push(b'"');
                    expect_key = false;
                    continue;
                }
                _ => {}
            }
        }
        if let Some(buf) = out.as_mut() {
            buf.push(c);
        }
        i += 1;
    }
    match out {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(input),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_numeric_keys_only_where_keys_are() {
        let src = br#"{"brokerAddrs":{0:"127.0.0.1:10911", 1 :"a:b"},"list":[1,2,{3:"x,{4:5}"}]}"#;
        let fixed = quote_bare_keys(src);
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["brokerAddrs"]["0"], "127.0.0.1:10911");
        assert_eq!(v["brokerAddrs"]["1"], "a:b");
        assert_eq!(v["list"][2]["3"], "x,{4:5}");
        assert_eq!(v["list"][0], 1);
    }

    #[test]
    fn standard_json_is_untouched() {
        let src = br#"{"a":{"0":"x"},"b":"{1:2}","c":[-1]}"#;
        assert!(matches!(quote_bare_keys(src), Cow::Borrowed(_)));
    }
}
