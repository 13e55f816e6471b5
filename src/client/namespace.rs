//! Namespaces (`client.namespace`): client-side wrapping of topics and groups as
//! `<namespace>%<name>` on the wire, as the Java client's `namespace` does. Retry and DLQ names
//! keep their prefix outside (`%RETRY%<namespace>%<group>`); system topics and groups are never
//! wrapped; a name that already carries the namespace is left as it is. Results are unwrapped, so
//! callers see the names they used.
use std::borrow::Cow;

use crate::error::{Error, Result};

const SEPARATOR: char = '%';
const RETRY_PREFIX: &str = "%RETRY%";
const DLQ_PREFIX: &str = "%DLQ%";

/// Topics and groups of the broker itself.
const SYSTEM_NAMES: &[&str] = &[
    "TBW102",
    "SCHEDULE_TOPIC_XXXX",
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
    "DEFAULT_PRODUCER",
    "DEFAULT_CONSUMER",
    "TOOLS_CONSUMER",
    "SCHEDULE_CONSUMER",
    "FILTERSRV_CONSUMER",
    "__MONITOR_CONSUMER",
    "CLIENT_INNER_PRODUCER",
    "SELF_TEST_P_GROUP",
    "SELF_TEST_C_GROUP",
];

fn is_system(name: &str) -> bool {
    SYSTEM_NAMES.contains(&name) || name.starts_with("rmq_sys_") || name.starts_with("CID_RMQ_SYS_")
}

/// The retry or DLQ prefix of `name` ("" for none) and the rest.
fn split_prefix(name: &str) -> (&str, &str) {
    for prefix in [RETRY_PREFIX, DLQ_PREFIX] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return (prefix, rest);
        }
    }
    ("", name)
}

/// Checks a namespace: letters, digits, '_' and '-', at most 64 characters.
pub fn validate(namespace: &str) -> Result<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "namespace '{namespace}' must be 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'"
        )))
    }
}

/// `name` as the broker knows it in `namespace`.
pub fn wrap<'a>(namespace: &str, name: &'a str) -> Cow<'a, str> {
    if namespace.is_empty() || name.is_empty() || is_system(name) {
        return Cow::Borrowed(name);
    }
    let (prefix, rest) = split_prefix(name);
    if rest
        .strip_prefix(namespace)
        .is_some_and(|r| r.starts_with(SEPARATOR))
    {
        return Cow::Borrowed(name);
    }
    Cow::Owned(format!("{prefix}{namespace}{SEPARATOR}{rest}"))
}

/// `name` without `namespace`, when it carries it; otherwise unchanged.
pub fn unwrap<'a>(namespace: &str, name: &'a str) -> Cow<'a, str> {
    if namespace.is_empty() {
        return Cow::Borrowed(name);
    }
    let (prefix, rest) = split_prefix(name);
    match rest
        .strip_prefix(namespace)
        .and_then(|r| r.strip_prefix(SEPARATOR))
    {
        Some(bare) if prefix.is_empty() => Cow::Borrowed(bare),
        Some(bare) => Cow::Owned(format!("{prefix}{bare}")),
        None => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_like_the_java_client() {
        assert_eq!(wrap("ns", "Orders"), "ns%Orders");
        assert_eq!(wrap("ns", "ns%Orders"), "ns%Orders", "already wrapped");
        assert_eq!(wrap("ns", "%RETRY%G"), "%RETRY%ns%G");
        assert_eq!(wrap("ns", "%DLQ%G"), "%DLQ%ns%G");
        assert_eq!(wrap("ns", "%RETRY%ns%G"), "%RETRY%ns%G");
        assert_eq!(wrap("ns", "TBW102"), "TBW102");
        assert_eq!(wrap("ns", "rmq_sys_wheel_timer"), "rmq_sys_wheel_timer");
        assert_eq!(wrap("ns", "CID_RMQ_SYS_TRANS"), "CID_RMQ_SYS_TRANS");
        assert_eq!(wrap("", "Orders"), "Orders");
        assert_eq!(wrap("ns", "nsx%Orders"), "ns%nsx%Orders");

        assert_eq!(unwrap("ns", "ns%Orders"), "Orders");
        assert_eq!(unwrap("ns", "%RETRY%ns%G"), "%RETRY%G");
        assert_eq!(unwrap("ns", "%DLQ%ns%G"), "%DLQ%G");
        assert_eq!(unwrap("ns", "other%Orders"), "other%Orders");
        assert_eq!(unwrap("ns", "nsOrders"), "nsOrders");
        assert_eq!(unwrap("", "ns%Orders"), "ns%Orders");
        for name in ["Orders", "%RETRY%G", "%DLQ%G"] {
            assert_eq!(unwrap("ns", &wrap("ns", name)), name);
        }
    }

    #[test]
    fn namespace_names_are_checked() {
        validate("MQ_INST_1-x").unwrap();
        for bad in ["", "a%b", "a b", "a|b", &"n".repeat(65)] {
            assert!(
                matches!(validate(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
