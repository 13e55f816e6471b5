//! Configuration: one table of string keys (named like the rocketmq-spring properties, without
//! the `rocketmq.` prefix) shared by the Rust API, the C ABI and, through it, Python and Go.
use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Integer { min: i64, max: i64 },
    Bool,
}

#[derive(Debug)]
pub struct ConfigKey {
    pub name: &'static str,
    /// Empty when the key has no default (it must then be set where it is required).
    pub default: &'static str,
    pub kind: ValueKind,
    pub description: &'static str,
}

const MS: ValueKind = ValueKind::Integer {
    min: 1,
    max: 3_600_000,
};

pub const NAME_SERVER: &str = "name-server";
pub const INSTANCE_NAME: &str = "instance-name";
pub const PRODUCER_GROUP: &str = "producer.group";
pub const SEND_MESSAGE_TIMEOUT: &str = "producer.send-message-timeout";
pub const RETRY_TIMES_WHEN_SEND_FAILED: &str = "producer.retry-times-when-send-failed";
pub const RETRY_TIMES_WHEN_SEND_ASYNC_FAILED: &str = "producer.retry-times-when-send-async-failed";
pub const RETRY_NEXT_SERVER: &str = "producer.retry-next-server";
pub const MAX_MESSAGE_SIZE: &str = "producer.max-message-size";
pub const HEARTBEAT_BROKER_INTERVAL: &str = "client.heartbeat-broker-interval";
pub const POLL_NAME_SERVER_INTERVAL: &str = "client.poll-name-server-interval";
pub const API_TIMEOUT: &str = "client.api-timeout";
pub const CONNECT_TIMEOUT: &str = "client.connect-timeout";
pub const CALLBACK_EXECUTOR_THREADS: &str = "client.callback-executor-threads";
pub const BROKER_REQUEST_THREADS: &str = "client.broker-request-threads";
pub const LOG_LEVEL: &str = "client.log-level";

pub static CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: NAME_SERVER,
        default: "",
        kind: ValueKind::Text,
        description: "Name server addresses, host:port, separated by ';'. Required.",
    },
    ConfigKey {
        name: INSTANCE_NAME,
        default: "DEFAULT",
        kind: ValueKind::Text,
        description: "Client instance name. Clients with the same client id (ip@instance-name) and name servers share one instance: connections, routes, heartbeats. DEFAULT becomes '<pid>#<hash of name-server>'.",
    },
    ConfigKey {
        name: PRODUCER_GROUP,
        default: "",
        kind: ValueKind::Text,
        description: "Producer group. Required for producers.",
    },
    ConfigKey {
        name: SEND_MESSAGE_TIMEOUT,
        default: "3000",
        kind: MS,
        description: "Total time budget of one send in ms, retries included.",
    },
    ConfigKey {
        name: RETRY_TIMES_WHEN_SEND_FAILED,
        default: "2",
        kind: ValueKind::Integer { min: 0, max: 16 },
        description: "Extra attempts of a sync send on another broker after a retriable failure.",
    },
    ConfigKey {
        name: RETRY_TIMES_WHEN_SEND_ASYNC_FAILED,
        default: "2",
        kind: ValueKind::Integer { min: 0, max: 16 },
        description: "Extra attempts of an async send after a transport failure (broker answers are not retried).",
    },
    ConfigKey {
        name: RETRY_NEXT_SERVER,
        default: "false",
        kind: ValueKind::Bool,
        description: "Retry on another broker when the store status is not SEND_OK (flush or slave timeouts).",
    },
    ConfigKey {
        name: MAX_MESSAGE_SIZE,
        default: "4194304",
        kind: ValueKind::Integer { min: 1, max: 16 * 1024 * 1024 - 64 * 1024 },
        description: "Largest message body accepted, in bytes.",
    },
    ConfigKey {
        name: HEARTBEAT_BROKER_INTERVAL,
        default: "30000",
        kind: MS,
        description: "Interval of heartbeats to brokers in ms.",
    },
    ConfigKey {
        name: POLL_NAME_SERVER_INTERVAL,
        default: "30000",
        kind: MS,
        description: "Interval of topic route refreshes from the name server in ms.",
    },
    ConfigKey {
        name: API_TIMEOUT,
        default: "3000",
        kind: MS,
        description: "Timeout in ms of route queries, heartbeats, unregistration and message views.",
    },
    ConfigKey {
        name: CONNECT_TIMEOUT,
        default: "3000",
        kind: MS,
        description: "TCP connect timeout in ms.",
    },
    ConfigKey {
        name: CALLBACK_EXECUTOR_THREADS,
        default: "1",
        kind: ValueKind::Integer { min: 1, max: 64 },
        description: "Threads that run async send callbacks of the client instance (started on first use); with 1 they run one at a time, in completion order.",
    },
    ConfigKey {
        name: BROKER_REQUEST_THREADS,
        default: "1",
        kind: ValueKind::Integer { min: 1, max: 64 },
        description: "Threads that process requests the brokers start (transaction checks, consumer notifications), started on first use.",
    },
    ConfigKey {
        name: LOG_LEVEL,
        default: "off",
        kind: ValueKind::Text,
        description: "Lowest level of library log records to deliver once a client starts: off, error, warn, info, debug or trace. Raises the level of the logger set with rmq_set_logger; with none set, records go to standard error. RMQ_LOG_LEVEL does the same without code changes.",
    },
];

pub fn find_key(name: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|k| k.name == name)
}

/// A set of configuration values by key; unset keys read as their defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    /// Sets a key after checking its name and value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let spec = find_key(key).ok_or_else(|| Error::UnknownConfigKey(key.to_string()))?;
        let value = value.trim();
        let invalid = |reason: String| Error::InvalidConfigValue {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        match spec.kind {
            ValueKind::Text => {}
            ValueKind::Bool => {
                if value != "true" && value != "false" {
                    return Err(invalid("expected true or false".into()));
                }
            }
            ValueKind::Integer { min, max } => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| invalid("expected an integer".into()))?;
                if !(min..=max).contains(&n) {
                    return Err(invalid(format!("must be between {min} and {max}")));
                }
            }
        }
        if key == NAME_SERVER {
            parse_name_servers(value).map_err(|e| invalid(e.to_string()))?;
        }
        if key == LOG_LEVEL {
            crate::log::Level::parse(value).map_err(invalid)?;
        }
        self.values.insert(spec.name, value.to_string());
        Ok(())
    }

    /// The value set for `key`, else its default; `None` for unknown keys or unset keys
    /// without a default.
    pub fn get(&self, key: &str) -> Option<&str> {
        let spec = find_key(key)?;
        match self.values.get(spec.name) {
            Some(v) => Some(v),
            None if !spec.default.is_empty() => Some(spec.default),
            None => None,
        }
    }

    fn int(&self, key: &str) -> i64 {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .expect("integer keys are validated on set and have defaults")
    }

    fn ms(&self, key: &str) -> Duration {
        Duration::from_millis(self.int(key) as u64)
    }

    pub fn client_config(&self) -> Result<ClientConfig> {
        let ns = self.get(NAME_SERVER).ok_or_else(|| {
            Error::InvalidArgument(format!("configuration key '{NAME_SERVER}' is required"))
        })?;
        Ok(ClientConfig {
            name_servers: parse_name_servers(ns)?,
            instance_name: self.get(INSTANCE_NAME).unwrap_or("DEFAULT").to_string(),
            heartbeat_interval: self.ms(HEARTBEAT_BROKER_INTERVAL),
            poll_name_server_interval: self.ms(POLL_NAME_SERVER_INTERVAL),
            api_timeout: self.ms(API_TIMEOUT),
            connect_timeout: self.ms(CONNECT_TIMEOUT),
            callback_executor_threads: self.int(CALLBACK_EXECUTOR_THREADS) as usize,
            broker_request_threads: self.int(BROKER_REQUEST_THREADS) as usize,
            log_level: crate::log::Level::parse(self.get(LOG_LEVEL).unwrap_or("off"))
                .unwrap_or(None),
        })
    }

    pub fn producer_config(&self) -> Result<ProducerConfig> {
        let group = self.get(PRODUCER_GROUP).ok_or_else(|| {
            Error::InvalidArgument(format!("configuration key '{PRODUCER_GROUP}' is required"))
        })?;
        Ok(ProducerConfig {
            client: self.client_config()?,
            group: group.to_string(),
            send_timeout: self.ms(SEND_MESSAGE_TIMEOUT),
            retry_times_when_send_failed: self.int(RETRY_TIMES_WHEN_SEND_FAILED) as u32,
            retry_times_when_send_async_failed: self.int(RETRY_TIMES_WHEN_SEND_ASYNC_FAILED) as u32,
            retry_next_server: self.get(RETRY_NEXT_SERVER) == Some("true"),
            max_message_size: self.int(MAX_MESSAGE_SIZE) as usize,
        })
    }
}

/// `host:port;host:port` -> list; every entry must have a numeric port.
pub fn parse_name_servers(value: &str) -> Result<Vec<String>> {
    let addrs: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(Error::InvalidArgument(
            "no name server address given".into(),
        ));
    }
    for a in &addrs {
        let ok = a
            .rsplit_once(':')
            .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            .unwrap_or(false);
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "name server address '{a}' is not host:port"
            )));
        }
    }
    Ok(addrs)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub name_servers: Vec<String>,
    pub instance_name: String,
    pub heartbeat_interval: Duration,
    pub poll_name_server_interval: Duration,
    pub api_timeout: Duration,
    pub connect_timeout: Duration,
    pub callback_executor_threads: usize,
    pub broker_request_threads: usize,
    /// client.log-level: raises the process's log level when a client starts.
    pub log_level: Option<crate::log::Level>,
}

impl ClientConfig {
    pub fn new(name_servers: &str) -> Result<ClientConfig> {
        let mut c = Config::new();
        c.set(NAME_SERVER, name_servers)?;
        c.client_config()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    pub client: ClientConfig,
    pub group: String,
    pub send_timeout: Duration,
    pub retry_times_when_send_failed: u32,
    pub retry_times_when_send_async_failed: u32,
    pub retry_next_server: bool,
    pub max_message_size: usize,
}

impl ProducerConfig {
    /// Defaults for everything but the name servers and the group.
    pub fn new(name_servers: &str, group: &str) -> Result<ProducerConfig> {
        let mut c = Config::new();
        c.set(NAME_SERVER, name_servers)?;
        c.set(PRODUCER_GROUP, group)?;
        c.producer_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_java_client() {
        let p = ProducerConfig::new("127.0.0.1:9876", "G").unwrap();
        assert_eq!(p.send_timeout, Duration::from_millis(3000));
        assert_eq!(p.retry_times_when_send_failed, 2);
        assert_eq!(p.retry_times_when_send_async_failed, 2);
        assert_eq!(p.max_message_size, 4 * 1024 * 1024);
        assert!(!p.retry_next_server);
        assert_eq!(p.client.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(p.client.poll_name_server_interval, Duration::from_secs(30));
    }

    #[test]
    fn set_checks_keys_and_values() {
        let mut c = Config::new();
        assert!(matches!(
            c.set("no.such.key", "1"),
            Err(Error::UnknownConfigKey(_))
        ));
        assert!(matches!(
            c.set(SEND_MESSAGE_TIMEOUT, "soon"),
            Err(Error::InvalidConfigValue { .. })
        ));
        assert!(c.set(SEND_MESSAGE_TIMEOUT, "0").is_err());
        assert!(c.set(RETRY_NEXT_SERVER, "yes").is_err());
        assert!(c.set(NAME_SERVER, "localhost").is_err());
        assert!(c.set(NAME_SERVER, " ; ").is_err());
        c.set(NAME_SERVER, "a:1; b:2").unwrap();
        assert_eq!(c.client_config().unwrap().name_servers, vec!["a:1", "b:2"]);
        c.set(SEND_MESSAGE_TIMEOUT, " 500 ").unwrap();
        assert_eq!(c.get(SEND_MESSAGE_TIMEOUT), Some("500"));
        assert_eq!(c.get(RETRY_TIMES_WHEN_SEND_FAILED), Some("2"));
        assert_eq!(c.get(PRODUCER_GROUP), None);
        assert!(c.producer_config().is_err());
    }

    #[test]
    fn every_default_is_valid() {
        for k in CONFIG_KEYS {
            if !k.default.is_empty() {
                Config::new().set(k.name, k.default).unwrap();
            }
        }
    }
}

#[cfg(test)]
mod readme_tests {
    use super::CONFIG_KEYS;

    /// The README's key table is the code's table, row for row.
    #[test]
    fn readme_lists_every_key_with_its_default() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("<!-- config-keys:begin -->")
            .nth(1)
            .and_then(|s| s.split("<!-- config-keys:end -->").next())
            .expect("README has the config-keys markers");
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), CONFIG_KEYS.len(), "one README row per key");
        for (row, key) in rows.iter().zip(CONFIG_KEYS) {
            let default = if key.default.is_empty() {
                String::new()
            } else {
                format!("`{}`", key.default)
            };
            let expected = format!("| `{}` | {} | {} |", key.name, default, key.description);
            assert_eq!(row.replace("|  |", "| |"), expected.replace("|  |", "| |"));
        }
    }
}
