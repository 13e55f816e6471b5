//! The configuration reference, `docs/configuration.md`, rendered from the key table. A test keeps
//! the committed file equal to what the table renders; `cargo run --example gen_config_doc` (or
//! `make config-doc`) rewrites it.
use std::fmt::Write;

use super::{ValueKind, CONFIG_KEYS};

/// Where the reference lives, relative to the repository root.
pub const PATH: &str = "docs/configuration.md";

/// The whole reference as Markdown.
pub fn render() -> String {
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\
         \n\
         <!-- Generated from the key table in src/config.rs by `cargo run --example \
         gen_config_doc`; a test fails when this file differs from the table. Do not edit. -->\n\
         \n\
         Every rmq client is configured with the string keys below, the same in every language: \
         C `rmq_config_set`, the Python and Go maps, the Rust `Config::set`. `rmq_config_keys()` \
         lists them at run time.\n\
         \n\
         - An unknown key is refused with `RMQ_ERR_UNKNOWN_CONFIG_KEY` naming the key.\n\
         - A value of the wrong kind or out of range is refused with \
         `RMQ_ERR_INVALID_CONFIG_VALUE` naming the key, the value and what is allowed. Values are \
         trimmed of surrounding white space first. (Python raises `rmq.ConfigError` for both; Go \
         returns an error matching `rmq.ErrUnknownConfigKey` / `rmq.ErrInvalidConfigValue`; Rust \
         `Error::UnknownConfigKey` / `Error::InvalidConfigValue`.)\n\
         - Keys that depend on each other (a compression level and its codec) are checked \
         together when the producer is created, with the same error naming the key.\n\
         - An unset key reads as its default.\n\
         \n\
         | key | kind | default | meaning |\n\
         |---|---|---|---|\n",
    );
    for k in CONFIG_KEYS {
        let kind = match k.kind {
            ValueKind::Text => "text".to_string(),
            ValueKind::Bool => "`true` or `false`".to_string(),
            ValueKind::Integer { min, max } => format!("integer {min} to {max}"),
            ValueKind::OneOf(words) => {
                let words: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
                format!("one of {}", words.join(", "))
            }
        };
        let default = if k.default.is_empty() {
            "(none)".to_string()
        } else {
            format!("`{}`", k.default)
        };
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            k.name, kind, default, k.description
        )
        .expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    /// The committed reference is what the table renders.
    #[test]
    fn docs_configuration_md_is_generated_from_the_table() {
        let committed = include_str!("../../docs/configuration.md");
        assert!(
            committed == super::render(),
            "docs/configuration.md differs from the key table in src/config.rs; regenerate it \
             with `cargo run --example gen_config_doc` (or `make config-doc`)"
        );
    }
}
