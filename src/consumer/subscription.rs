//! Subscriptions: a topic with a tag expression (`*`, `a || b`) or an SQL92 expression, as the
//! heartbeat's SubscriptionData carries it, and the client-side tag re-check.
use serde_json::json;

use crate::error::{Error, Result};
use crate::protocol::message::validate_topic;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpressionType {
    Tag,
    Sql92,
}

impl ExpressionType {
    pub fn name(self) -> &'static str {
        match self {
            ExpressionType::Tag => "TAG",
            ExpressionType::Sql92 => "SQL92",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub topic: String,
    pub expression: String,
    pub kind: ExpressionType,
    /// The tags of a tag expression; empty for `*` (and for SQL92).
    pub tags: Vec<String>,
    /// Java `String.hashCode` of each tag: the broker filters by these.
    pub codes: Vec<i32>,
    /// When it was built (ms); the broker refuses pulls newer than its heartbeat copy.
    pub version: i64,
}

impl Subscription {
    pub fn new(topic: &str, expression: &str, kind: ExpressionType) -> Result<Subscription> {
        validate_topic(topic)?;
        let expression = expression.trim();
        let (expression, tags) = match kind {
            ExpressionType::Tag if expression.is_empty() || expression == "*" => {
                ("*".to_string(), Vec::new())
            }
            ExpressionType::Tag => {
                let tags: Vec<String> = expression
                    .split("||")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                if tags.is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "tag expression '{expression}' names no tag"
                    )));
                }
                (expression.to_string(), tags)
            }
            ExpressionType::Sql92 => {
                if expression.is_empty() {
                    return Err(Error::InvalidArgument("SQL92 expression is empty".into()));
                }
                (expression.to_string(), Vec::new())
            }
        };
        Ok(Subscription {
            topic: topic.to_string(),
            codes: tags.iter().map(|t| java_string_hash(t)).collect(),
            tags,
            expression,
            kind,
            version: crate::protocol::ids::now_ms(),
        })
    }

    pub fn is_all(&self) -> bool {
        self.kind == ExpressionType::Tag && self.tags.is_empty()
    }

    /// The client-side check after a pull: the broker filters tags by hash only, so a
    /// colliding tag must be dropped here. SQL92 is evaluated by the broker alone.
    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self.kind {
            ExpressionType::Sql92 => true,
            ExpressionType::Tag if self.tags.is_empty() => true,
            ExpressionType::Tag => tag.is_some_and(|t| self.tags.iter().any(|s| s == t)),
        }
    }

    /// SubscriptionData JSON of the heartbeat.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "classFilterMode": false,
            "topic": self.topic,
            "subString": self.expression,
            "tagsSet": self.tags,
            "codeSet": self.codes,
            "subVersion": self.version,
            "expressionType": self.kind.name(),
        })
    }
}

/// Java's `String.hashCode`: `31*h + c` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_hash_is_javas() {
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash(""), 0);
        // Non-ASCII: UTF-16 units, not UTF-8 bytes ("é" is one unit, 0xE9).
        assert_eq!(java_string_hash("é"), 0xE9);
        // A supplementary character is two units (a surrogate pair).
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn tag_expressions_parse() {
        let s = Subscription::new("T", " a || b ||  ", ExpressionType::Tag).unwrap();
        assert_eq!(s.tags, vec!["a", "b"]);
        assert!(s.matches(Some("a")) && s.matches(Some("b")));
        assert!(!s.matches(Some("c")) && !s.matches(None));
        let all = Subscription::new("T", "*", ExpressionType::Tag).unwrap();
        assert!(all.is_all() && all.matches(None));
        assert!(Subscription::new("T", "||", ExpressionType::Tag).is_err());
        assert!(Subscription::new("bad topic", "*", ExpressionType::Tag).is_err());
        let sql = Subscription::new("T", "a > 1", ExpressionType::Sql92).unwrap();
        assert!(sql.matches(None));
        assert_eq!(sql.to_json()["expressionType"], "SQL92");
    }
}
