//! "Did you mean ...?" for names a user mistyped (configuration keys).

/// Edit distance (insertions, deletions, substitutions) between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate nearest to `given` when it is near enough to be a likely typo: within a third
/// of its length, or the candidate ends with what was given (a key without its "producer."
/// or "client." prefix).
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_lc = given.to_ascii_lowercase().replace('_', "-");
    candidates
        .into_iter()
        .map(|c| {
            let d = if c.ends_with(&format!(".{given_lc}")) {
                0
            } else {
                distance(&given_lc, c)
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ", did you mean 'KEY'?" for an unknown configuration key, or "" when none is near.
pub fn config_key_hint(given: &str) -> String {
    match nearest(given, crate::config::CONFIG_KEYS.iter().map(|k| k.name)) {
        Some(k) => format!("; did you mean '{k}'?"),
        None => "; rmq_config_keys() lists the keys".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_missing_prefixes() {
        assert_eq!(
            nearest("nameserver", ["name-server", "producer.group"]),
            Some("name-server")
        );
        assert_eq!(
            nearest("producer.grup", ["name-server", "producer.group"]),
            Some("producer.group")
        );
        assert_eq!(
            nearest("send-message-timeout", ["producer.send-message-timeout"]),
            Some("producer.send-message-timeout")
        );
        assert_eq!(
            nearest("SEND_MESSAGE_TIMEOUT", ["producer.send-message-timeout"]),
            Some("producer.send-message-timeout")
        );
        assert_eq!(nearest("colour", ["name-server", "producer.group"]), None);
        assert!(config_key_hint("producer.grup").contains("'producer.group'"));
    }
}
