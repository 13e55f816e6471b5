//! ACL request signing, as brokers with ACL 1.0 (plain_acl) or ACL 2.0 (5.3+ authentication)
//! check it.
//!
//! Every request carries three custom-header fields besides its own: `AccessKey`, the optional
//! `SecurityToken`, and `Signature` = Base64(HmacSHA1(key = secret key, content)), where the
//! content is the values of every other header field (AccessKey and SecurityToken included),
//! concatenated in the order of their keys (Java's `TreeMap`, so UTF-16 order), as UTF-8, then the
//! body's bytes. The broker rebuilds the same content from the fields it received (ACL 2.0 looks
//! the secret up as the password of the user named by AccessKey) and compares.
use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::command::{ExtFields, RemotingCommand};

pub const ACCESS_KEY: &str = "AccessKey";
pub const SECURITY_TOKEN: &str = "SecurityToken";
pub const SIGNATURE: &str = "Signature";

/// An access key and its secret (and an optional security token). `Debug` never shows the
/// secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key: String,
    secret_key: String,
    security_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key: &str, secret_key: &str, security_token: Option<&str>) -> Credentials {
        Credentials {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            security_token: security_token.filter(|t| !t.is_empty()).map(str::to_string),
        }
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// `cmd` with AccessKey, SecurityToken (if any) and its Signature added to its fields. Fields
    /// of those names already in `cmd` are replaced.
    pub fn sign(&self, cmd: &RemotingCommand) -> RemotingCommand {
        let mut fields: Vec<(Cow<'static, str>, String)> = Vec::new();
        cmd.ext_fields.for_each(&mut |k, v| {
            if k != ACCESS_KEY && k != SECURITY_TOKEN && k != SIGNATURE {
                fields.push((Cow::Owned(k.to_string()), v.to_string()));
            }
        });
        fields.push((Cow::Borrowed(ACCESS_KEY), self.access_key.clone()));
        if let Some(token) = &self.security_token {
            fields.push((Cow::Borrowed(SECURITY_TOKEN), token.clone()));
        }
        let signature = self.signature(&fields, &cmd.body);
        fields.push((Cow::Borrowed(SIGNATURE), signature));
        RemotingCommand {
            code: cmd.code,
            language: cmd.language,
            version: cmd.version,
            opaque: cmd.opaque,
            flag: cmd.flag,
            remark: cmd.remark.clone(),
            ext_fields: ExtFields::Owned(fields),
            body: cmd.body.clone(),
        }
    }

    /// Base64(HmacSHA1(secret, values sorted by key + body)).
    fn signature(&self, fields: &[(Cow<'static, str>, String)], body: &[u8]) -> String {
        let mut sorted: Vec<&(Cow<'static, str>, String)> = fields.iter().collect();
        // Java's TreeMap<String, ...> orders keys by UTF-16 code units.
        sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        let mut mac = Hmac::<Sha1>::new_from_slice(self.secret_key.as_bytes())
            .expect("HMAC takes keys of any length");
        for (_, value) in sorted {
            mac.update(value.as_bytes());
        }
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// What to check when a broker refuses a request for an ACL reason; None for other answers.
/// 5.x brokers answer NO_PERMISSION. 4.x brokers (PlainAccessValidator) answer SYSTEM_ERROR with
/// the exception as the remark: "org.apache.rocketmq.acl.common.AclException: <reason>, <frame>".
pub fn refusal_hint(code: i32, remark: &str) -> Option<&'static str> {
    use crate::protocol::code::response::{NO_PERMISSION, SYSTEM_ERROR};
    let acl_exception = code == SYSTEM_ERROR && remark.contains("AclException");
    if code != NO_PERMISSION && !acl_exception {
        return None;
    }
    let r = remark.to_ascii_lowercase();
    if r.contains("username cannot be null")
        || r.contains("authentication field is null")
        || r.contains("accesskey is null")
        || r.contains("no accesskey is configured")
    {
        Some("the broker requires ACL authentication: set client.access-key and client.secret-key")
    } else if r.contains("signature") {
        Some("the request signature did not verify: client.secret-key is not the secret of client.access-key")
    } else if r.contains("not found") || r.contains("no acl config") || r.contains("is disabled") {
        Some("the broker does not accept client.access-key as a user")
    } else if r.contains("no permission")
        || r.contains("decision is deny")
        || r.contains("no default permission for")
        || r.contains("need admin permission")
    {
        Some("the ACL user lacks this right on the broker (client.access-key)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for nothing?"
        let c = Credentials::new("", "Jefe", None);
        let fields = vec![(Cow::Borrowed("a"), "what do ya want ".to_string())];
        let sig = c.signature(&fields, b"for nothing?");
        // effcdf6ae5eb2fa2d27416d5f184df9c259a7c79
        assert_eq!(sig, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn values_are_signed_in_key_order_then_the_body() {
        let c = Credentials::new("ak", "sk", Some("tok"));
        let cmd = RemotingCommand::request(
            310,
            vec![
                (Cow::Borrowed("topic"), "T".to_string()),
                (Cow::Borrowed("b"), "2".to_string()),
            ],
        )
        .with_body(Bytes::from_static(b"body"));
        let signed = c.sign(&cmd);
        let got: Vec<(String, String)> = signed.ext_fields.to_vec();
        let sig = got.iter().find(|(k, _)| k == SIGNATURE).unwrap().1.clone();
        // AccessKey < SecurityToken < b < topic: "ak" "tok" "2" "T", then the body
        let mut mac = Hmac::<Sha1>::new_from_slice(b"sk").unwrap();
        mac.update(b"aktok2Tbody");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, expected);
        assert!(got.contains(&(ACCESS_KEY.into(), "ak".into())));
        assert!(got.contains(&(SECURITY_TOKEN.into(), "tok".into())));
        assert_eq!(signed.opaque, cmd.opaque);
        assert_eq!(signed.body, cmd.body);
    }

    #[test]
    fn refusals_name_the_key_to_check() {
        let hint = |r| refusal_hint(16, r).unwrap_or("");
        assert!(
            hint("username cannot be null.").contains("client.access-key and client.secret-key")
        );
        assert!(hint("check signature failed.").contains("client.secret-key is not"));
        assert!(hint("User:x is not found.").contains("does not accept"));
        assert!(hint("User:x has no permission to access Topic:T").contains("lacks this right"));
        assert_eq!(refusal_hint(16, "topic is not writable"), None);
        assert_eq!(refusal_hint(1, "check signature failed."), None);
        // 4.x: SYSTEM_ERROR carrying the AclException
        let v4 = |r: &str| {
            refusal_hint(
                1,
                &format!(
                    "org.apache.rocketmq.acl.common.AclException: {r}, org.apache.Frame(F.java:1)"
                ),
            )
            .unwrap_or("")
        };
        assert!(v4("Check signature failed for accessKey=a").contains("client.secret-key is not"));
        assert!(v4("No accessKey is configured").contains("set client.access-key"));
        assert!(v4("No acl config for x").contains("does not accept"));
        assert!(v4("No default permission for topic=T").contains("lacks this right"));
        assert!(
            v4("Need admin permission for request code=17, but accessKey=a is not")
                .contains("lacks this right")
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let text = format!("{:?}", Credentials::new("ak", "very-secret", Some("tok")));
        assert!(text.contains("ak"), "{text}");
        assert!(
            !text.contains("very-secret") && !text.contains("tok\""),
            "{text}"
        );
    }
}
