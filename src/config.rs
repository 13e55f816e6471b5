//! Configuration: one table of string keys (named like the rocketmq-spring properties, without
//! the `rocketmq.` prefix) shared by the Rust API, the C ABI and, through it, Python and Go.
pub mod reference;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::compression::{Codec, CompressionPolicy};
use crate::remoting::acl::Credentials;
use crate::remoting::command::LanguageCode;
use crate::remoting::tls::{Tls, TlsSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Integer {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of these words.
    OneOf(&'static [&'static str]),
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
pub const NAMESPACE: &str = "client.namespace";
pub const NAME_SERVER_URL: &str = "client.name-server-url";
pub const NAME_SERVER_URL_POLL_INTERVAL: &str = "client.name-server-url-poll-interval";
pub const PRODUCER_GROUP: &str = "producer.group";
pub const SEND_MESSAGE_TIMEOUT: &str = "producer.send-message-timeout";
pub const RETRY_TIMES_WHEN_SEND_FAILED: &str = "producer.retry-times-when-send-failed";
pub const RETRY_TIMES_WHEN_SEND_ASYNC_FAILED: &str = "producer.retry-times-when-send-async-failed";
pub const RETRY_NEXT_SERVER: &str = "producer.retry-next-server";
pub const MAX_MESSAGE_SIZE: &str = "producer.max-message-size";
pub const SEND_LATENCY_FAULT_ENABLE: &str = "producer.send-latency-fault-enable";
pub const COMPRESS_MESSAGE_BODY_THRESHOLD: &str = "producer.compress-message-body-threshold";
pub const COMPRESS_TYPE: &str = "producer.compress-type";
pub const COMPRESS_LEVEL: &str = "producer.compress-level";
pub const MAX_IN_FLIGHT_ASYNC_SENDS: &str = "producer.max-in-flight-async-sends";
pub const BLOCK_WHEN_IN_FLIGHT_FULL: &str = "producer.block-when-in-flight-full";
pub const TRANSACTION_CHECK_THREADS: &str = "producer.transaction-check-threads";
pub const HEARTBEAT_BROKER_INTERVAL: &str = "client.heartbeat-broker-interval";
pub const POLL_NAME_SERVER_INTERVAL: &str = "client.poll-name-server-interval";
pub const API_TIMEOUT: &str = "client.api-timeout";
pub const CONNECT_TIMEOUT: &str = "client.connect-timeout";
pub const CLIENT_LANGUAGE: &str = "client.language";
pub const CALLBACK_EXECUTOR_THREADS: &str = "client.callback-executor-threads";
pub const BROKER_REQUEST_THREADS: &str = "client.broker-request-threads";
pub const CONSUMER_GROUP: &str = "consumer.group";
pub const CONSUME_THREAD_NUMBER: &str = "consumer.consume-thread-number";
pub const CONSUME_MESSAGE_BATCH_MAX_SIZE: &str = "consumer.consume-message-batch-max-size";
pub const MAX_RECONSUME_TIMES: &str = "consumer.max-reconsume-times";
pub const CONSUME_FROM_WHERE: &str = "consumer.consume-from-where";
pub const CONSUME_TIMESTAMP: &str = "consumer.consume-timestamp";
pub const ALLOCATE_STRATEGY: &str = "consumer.allocate-strategy";
pub const PULL_BATCH_SIZE: &str = "consumer.pull-batch-size";
pub const PULL_THRESHOLD_FOR_QUEUE: &str = "consumer.pull-threshold-for-queue";
pub const CONSUME_CONCURRENTLY_MAX_SPAN: &str = "consumer.consume-concurrently-max-span";
pub const PULL_THRESHOLD_SIZE_FOR_QUEUE: &str = "consumer.pull-threshold-size-for-queue";
pub const CONSUME_TIMEOUT: &str = "consumer.consume-timeout";
pub const AWAIT_TERMINATION_WHEN_SHUTDOWN: &str = "consumer.await-termination-millis-when-shutdown";
pub const PERSIST_CONSUMER_OFFSET_INTERVAL: &str = "consumer.persist-consumer-offset-interval";
pub const REBALANCE_INTERVAL: &str = "consumer.rebalance-interval";
pub const SUSPEND_CURRENT_QUEUE_TIME: &str = "consumer.suspend-current-queue-time-millis";
pub const AUTO_COMMIT: &str = "consumer.auto-commit";
pub const AUTO_COMMIT_INTERVAL: &str = "consumer.auto-commit-interval";
pub const PULL_THRESHOLD_FOR_ALL: &str = "consumer.pull-threshold-for-all";
pub const MESSAGE_MODEL: &str = "consumer.message-model";
pub const LOCAL_OFFSET_STORE_DIR: &str = "consumer.local-offset-store-dir";
pub const CONSUME_MODE: &str = "consumer.consume-mode";
pub const POP_INVISIBLE_TIME: &str = "consumer.pop-invisible-time-millis";
pub const LOG_LEVEL: &str = "client.log-level";
pub const TRACE_ENABLED: &str = "client.trace-enabled";
pub const TRACE_TOPIC: &str = "client.trace-topic";
pub const ACCESS_KEY: &str = "client.access-key";
pub const SECRET_KEY: &str = "client.secret-key";
pub const SECURITY_TOKEN: &str = "client.security-token";
pub const TLS_ENABLE: &str = "client.tls.enable";
pub const TLS_CA_FILE: &str = "client.tls.ca-file";
pub const TLS_CERT_FILE: &str = "client.tls.cert-file";
pub const TLS_KEY_FILE: &str = "client.tls.key-file";
pub const TLS_SERVER_NAME: &str = "client.tls.server-name";
pub const TLS_INSECURE_SKIP_VERIFY: &str = "client.tls.insecure-skip-verify";

/// Keys whose values never appear in logs or debug output.
const SECRET_KEYS: &[&str] = &[SECRET_KEY, SECURITY_TOKEN];

pub static CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: NAME_SERVER,
        default: "",
        kind: ValueKind::Text,
        description: "Name server addresses, host:port, separated by ';'. Required unless client.name-server-url is set.",
    },
    ConfigKey {
        name: NAME_SERVER_URL,
        default: "",
        kind: ValueKind::Text,
        description: "http://host[:port]/path answering 'host:port;host:port' (Java's name-server lookup, e.g. http://<domain>:8080/rocketmq/nsaddr). Fetched before the first route query and then periodically; its answer replaces name-server.",
    },
    ConfigKey {
        name: NAME_SERVER_URL_POLL_INTERVAL,
        default: "120000",
        kind: MS,
        description: "Interval of name server lookups at client.name-server-url in ms.",
    },
    ConfigKey {
        name: INSTANCE_NAME,
        default: "DEFAULT",
        kind: ValueKind::Text,
        description: "Client instance name. Clients with the same client id (ip@instance-name) and name servers share one instance: connections, routes, heartbeats. DEFAULT becomes '<pid>#<hash of name-server>'.",
    },
    ConfigKey {
        name: NAMESPACE,
        default: "",
        kind: ValueKind::Text,
        description: "Namespace: topics and groups go to the broker as '<namespace>%<name>' (system ones unchanged) and come back without it. Letters, digits, '_' and '-'. Empty: none.",
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
        description: "Extra attempts of an async send after a transport failure or timeout (broker answers are not retried), on another broker unless the queue was chosen. Each attempt may take the time left divided by the attempts left, so all fit in producer.send-message-timeout.",
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
        description: "Largest message body accepted, in bytes, as sent: after compression; for a batch, all its messages encoded together.",
    },
    ConfigKey {
        name: COMPRESS_MESSAGE_BODY_THRESHOLD,
        default: "4096",
        kind: ValueKind::Integer { min: 0, max: i32::MAX as i64 },
        description: "Bodies of at least this many bytes are compressed before they are sent (batches never are).",
    },
    ConfigKey {
        name: COMPRESS_TYPE,
        default: "zlib",
        kind: ValueKind::OneOf(Codec::NAMES),
        description: "Codec of compressed bodies: zlib, lz4 or zstd. Readers decompress by the message's flag, whichever codec wrote it.",
    },
    ConfigKey {
        name: COMPRESS_LEVEL,
        default: "5",
        kind: ValueKind::Integer { min: 0, max: 22 },
        description: "Compression level: 0-9 for zlib, 1-22 for zstd; lz4 has no levels and ignores it.",
    },
    ConfigKey {
        name: SEND_LATENCY_FAULT_ENABLE,
        default: "false",
        kind: ValueKind::Bool,
        description: "Latency fault tolerance: a broker that answered in 550 ms or more is left alone for 30 s to 10 min by its latency, one that failed for 10 min; sends prefer the other brokers meanwhile.",
    },
    ConfigKey {
        name: MAX_IN_FLIGHT_ASYNC_SENDS,
        default: "10000",
        kind: ValueKind::Integer { min: 1, max: 1_000_000 },
        description: "Async sends a producer holds at once, each from acceptance until its callback has returned.",
    },
    ConfigKey {
        name: BLOCK_WHEN_IN_FLIGHT_FULL,
        default: "true",
        kind: ValueKind::Bool,
        description: "With the in-flight window full, an async send waits for a free slot (at most producer.send-message-timeout); false: it fails at once. A send from a library thread (a callback) never waits.",
    },
    ConfigKey {
        name: TRANSACTION_CHECK_THREADS,
        default: "1",
        kind: ValueKind::Integer { min: 1, max: 64 },
        description: "Threads of a transaction producer that run its checker when brokers ask for the state of a transaction (started as checks arrive); with 1, one check at a time, as Java's TransactionMQProducer.",
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
        name: CLIENT_LANGUAGE,
        default: "RUST",
        kind: ValueKind::Text,
        description: "Language code sent to brokers in every request (JAVA, CPP, ..., RUST). Brokers older than 4.9.4 do not know RUST: use JAVA there. Per client instance.",
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
        name: CONSUMER_GROUP,
        default: "",
        kind: ValueKind::Text,
        description: "Consumer group. Required for consumers.",
    },
    ConfigKey {
        name: CONSUME_THREAD_NUMBER,
        default: "8",
        kind: ValueKind::Integer { min: 1, max: 256 },
        description: "Threads of the consumer that run the listener (named rmq-c<consumer id>-N), started as work arrives. Java's 20 suits JVM listeners blocking on I/O; 8 keeps a small footprint and still overlaps I/O-bound listeners; raise it for listeners that block.",
    },
    ConfigKey {
        name: CONSUME_MESSAGE_BATCH_MAX_SIZE,
        default: "1",
        kind: ValueKind::Integer { min: 1, max: 1024 },
        description: "Most messages handed to one listener call.",
    },
    ConfigKey {
        name: MAX_RECONSUME_TIMES,
        default: "16",
        kind: ValueKind::Integer { min: 0, max: 16384 },
        description: "Deliveries retried after failures before a message goes to %DLQ%<group>.",
    },
    ConfigKey {
        name: CONSUME_FROM_WHERE,
        default: "last",
        kind: ValueKind::OneOf(&["last", "first", "timestamp"]),
        description: "Where a group without a stored offset starts: last (new messages only), first (everything kept), or timestamp (consumer.consume-timestamp).",
    },
    ConfigKey {
        name: CONSUME_TIMESTAMP,
        default: "",
        kind: ValueKind::Text,
        description: "Start time for consume-from-where=timestamp, yyyyMMddHHmmss in local time; unset means 30 minutes before start.",
    },
    ConfigKey {
        name: ALLOCATE_STRATEGY,
        default: "averagely",
        kind: ValueKind::OneOf(&["averagely", "averagely-by-circle", "consistent-hash"]),
        description: "How the group's queues are shared among its consumers; every consumer of a group must use the same.",
    },
    ConfigKey {
        name: PULL_BATCH_SIZE,
        default: "32",
        kind: ValueKind::Integer { min: 1, max: 1024 },
        description: "Most messages asked for in one pull.",
    },
    ConfigKey {
        name: PULL_THRESHOLD_FOR_QUEUE,
        default: "1000",
        kind: ValueKind::Integer { min: 1, max: 65535 },
        description: "Pulling of a queue pauses while this many of its messages are unconsumed.",
    },
    ConfigKey {
        name: CONSUME_CONCURRENTLY_MAX_SPAN,
        default: "2000",
        kind: ValueKind::Integer { min: 1, max: 65535 },
        description: "Pulling of a queue pauses while its lowest unconsumed offset is further than this behind the next offset to pull, so a stuck message bounds what a crash re-delivers.",
    },
    ConfigKey {
        name: PULL_THRESHOLD_SIZE_FOR_QUEUE,
        default: "100",
        kind: ValueKind::Integer { min: 1, max: 1024 },
        description: "Pulling of a queue pauses while its unconsumed message bodies take this many MiB.",
    },
    ConfigKey {
        name: CONSUME_TIMEOUT,
        default: "900000",
        kind: MS,
        description: "A message whose listener call has run this long (ms) is sent back for a later retry and stops holding back its queue's offset; the call itself is not interrupted.",
    },
    ConfigKey {
        name: AWAIT_TERMINATION_WHEN_SHUTDOWN,
        default: "5000",
        kind: ValueKind::Integer { min: 0, max: 3_600_000 },
        description: "How long shutdown waits for listener calls still running (ms); messages unfinished then are delivered again later.",
    },
    ConfigKey {
        name: PERSIST_CONSUMER_OFFSET_INTERVAL,
        default: "5000",
        kind: ValueKind::Integer { min: 100, max: 3_600_000 },
        description: "How often (ms) the consumer commits its queues' offsets to the brokers (also on queue release and shutdown). A consumer killed without shutdown delivers again what it consumed since the last commit.",
    },
    ConfigKey {
        name: REBALANCE_INTERVAL,
        default: "20000",
        kind: ValueKind::Integer { min: 100, max: 3_600_000 },
        description: "How often (ms) the consumer recomputes which queues it owns; a change of the group's members announced by a broker triggers a rebalance at once as well.",
    },
    ConfigKey {
        name: SUSPEND_CURRENT_QUEUE_TIME,
        default: "1000",
        kind: ValueKind::Integer { min: 10, max: 30_000 },
        description: "Orderly listeners: how long (ms) a queue waits after its listener asked to suspend it before the same messages come again, unless the listener chose a time itself.",
    },
    ConfigKey {
        name: AUTO_COMMIT,
        default: "true",
        kind: ValueKind::Bool,
        description: "Lite pull consumer: commit the offsets of polled messages every consumer.auto-commit-interval, when a queue is released and at shutdown; false: only commit() commits.",
    },
    ConfigKey {
        name: AUTO_COMMIT_INTERVAL,
        default: "5000",
        kind: ValueKind::Integer { min: 100, max: 3_600_000 },
        description: "Lite pull consumer: how often (ms) the offsets of polled messages are committed with consumer.auto-commit.",
    },
    ConfigKey {
        name: PULL_THRESHOLD_FOR_ALL,
        default: "10000",
        kind: ValueKind::Integer { min: 1, max: 1_000_000 },
        description: "Lite pull consumer: pulling pauses while this many pulled messages, of all queues, wait to be polled.",
    },
    ConfigKey {
        name: MESSAGE_MODEL,
        default: "CLUSTERING",
        kind: ValueKind::OneOf(&["CLUSTERING", "BROADCASTING"]),
        description: "CLUSTERING: the group's consumers share the queues and the brokers keep the offsets. BROADCASTING: every consumer of the group gets every message, offsets live in a local file (consumer.local-offset-store-dir), and a failed message is not retried (dropped with a warning, as in Java).",
    },
    ConfigKey {
        name: LOCAL_OFFSET_STORE_DIR,
        default: "",
        kind: ValueKind::Text,
        description: "Directory of broadcasting offsets, kept in <dir>/<ip@instance-name>/<group>/offsets.json in the Java client's format. Empty: ~/.rocketmq_offsets, Java's default (its rocketmq.client.localOffsetStoreDir).",
    },
    ConfigKey {
        name: CONSUME_MODE,
        default: "pull",
        kind: ValueKind::OneOf(&["pull", "pop"]),
        description: "pull: the consumer shares the queues among the group itself and pulls them, keeping offsets. pop (5.x brokers): the broker assigns the queues (QUERY_ASSIGNMENT, every consumer.rebalance-interval) and hands out messages by POP_MESSAGE, up to min(pull-batch-size, 32) at a time and pull-threshold-for-queue unacknowledged per assignment; consumed ones are acked, reconsume-later ones come back after their delay level (CHANGE_INVISIBLETIME), unacked ones after consumer.pop-invisible-time-millis; after max-reconsume-times (or a negative level) to %DLQ%<group>. An orderly listener pops in order (order=true), one batch per assignment at a time. Poll mode: acked batches are acked, dropped ones come again after the invisible time.",
    },
    ConfigKey {
        name: POP_INVISIBLE_TIME,
        default: "60000",
        kind: ValueKind::Integer { min: 1000, max: 43_200_000 },
        description: "In pop mode: how long (ms) a popped message stays invisible to the group; one not acked by then is delivered again. Keep it above the listener's running time.",
    },
    ConfigKey {
        name: LOG_LEVEL,
        default: "off",
        kind: ValueKind::Text,
        description: "Lowest level of library log records to deliver once a client starts: off, error, warn, info, debug or trace. Raises the level of the logger set with rmq_set_logger; with none set, records go to standard error. RMQ_LOG_LEVEL does the same without code changes.",
    },
    ConfigKey {
        name: ACCESS_KEY,
        default: "",
        kind: ValueKind::Text,
        description: "ACL access key (ACL 2.0: the user name). With client.secret-key, every request is signed as the Java client's AclClientRPCHook signs it (ACL 1.0 and 2.0 brokers). Empty: requests are not signed.",
    },
    ConfigKey {
        name: SECRET_KEY,
        default: "",
        kind: ValueKind::Text,
        description: "ACL secret key (ACL 2.0: the user's password) that signs requests (HmacSHA1); never sent, logged or shown.",
    },
    ConfigKey {
        name: SECURITY_TOKEN,
        default: "",
        kind: ValueKind::Text,
        description: "Optional ACL security token sent with every signed request (temporary credentials); never logged.",
    },
    ConfigKey {
        name: TLS_ENABLE,
        default: "false",
        kind: ValueKind::Bool,
        description: "Connect to name servers and brokers over TLS (rustls; TLS 1.2 and 1.3). Server certificates are verified against client.tls.ca-file, else the system trust store, and must name the host dialled.",
    },
    ConfigKey {
        name: TLS_CA_FILE,
        default: "",
        kind: ValueKind::Text,
        description: "PEM file of the CA certificates that server certificates must chain to. Empty: the operating system's trust store (SSL_CERT_FILE and SSL_CERT_DIR are honoured).",
    },
    ConfigKey {
        name: TLS_CERT_FILE,
        default: "",
        kind: ValueKind::Text,
        description: "PEM file of the client certificate chain presented to servers that ask for one (mutual TLS); needs client.tls.key-file.",
    },
    ConfigKey {
        name: TLS_KEY_FILE,
        default: "",
        kind: ValueKind::Text,
        description: "PEM file of the private key (PKCS#8, PKCS#1 or SEC1, unencrypted) of client.tls.cert-file.",
    },
    ConfigKey {
        name: TLS_SERVER_NAME,
        default: "",
        kind: ValueKind::Text,
        description: "Name that every server certificate must carry (and the SNI sent), instead of the host dialled: for servers addressed by IP whose certificates name a DNS name. Empty: the host dialled.",
    },
    ConfigKey {
        name: TLS_INSECURE_SKIP_VERIFY,
        default: "false",
        kind: ValueKind::Bool,
        description: "FOR TESTS ONLY: accept any server certificate for any name, which lets anyone on the path read and change the traffic. Logged as a warning on every connection.",
    },
    ConfigKey {
        name: TRACE_ENABLED,
        default: "false",
        kind: ValueKind::Bool,
        description: "Message trace (Java's enableMsgTrace): producers write a Pub record of every send a broker answered (a batch: one record of its ids; oneway sends have no answer and no record), transaction producers an EndTransaction record of every end they send, consumers SubBefore and SubAfter records around every listener call (in poll mode: from the poll to the acknowledgement), in the Java client's format, to client.trace-topic, in the background and in batches (a full queue drops records rather than slowing sends). mqadmin queryMsgTraceById shows them.",
    },
    ConfigKey {
        name: TRACE_TOPIC,
        default: "RMQ_SYS_TRACE_TOPIC",
        kind: ValueKind::Text,
        description: "Topic the trace records go to (Java's customizedTraceTopic); the broker creates RMQ_SYS_TRACE_TOPIC when it runs with traceTopicEnable=true.",
    },
];

pub fn find_key(name: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|k| k.name == name)
}

/// A set of configuration values by key; unset keys read as their defaults.
#[derive(Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.values {
            if SECRET_KEYS.contains(k) {
                m.entry(k, &"<hidden>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
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
            ValueKind::OneOf(words) => {
                if !words.contains(&value) {
                    return Err(invalid(format!("expected one of {}", words.join(", "))));
                }
            }
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
        if key == NAME_SERVER_URL && !value.is_empty() {
            crate::client::nsaddr::NameServerUrl::parse(value)
                .map_err(|e| invalid(e.to_string()))?;
        }
        if key == NAMESPACE && !value.is_empty() {
            crate::client::namespace::validate(value).map_err(|e| invalid(e.to_string()))?;
        }
        if key == CLIENT_LANGUAGE && LanguageCode::from_name(value).is_none() {
            return Err(invalid(format!(
                "expected one of {}",
                LanguageCode::names().join(", ")
            )));
        }
        if key == LOG_LEVEL {
            crate::log::Level::parse(value).map_err(invalid)?;
        }
        if key == TRACE_TOPIC {
            crate::protocol::message::validate_topic(value).map_err(|e| invalid(e.to_string()))?;
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
        let url = self.get(NAME_SERVER_URL).filter(|u| !u.is_empty());
        let name_servers = match (self.get(NAME_SERVER), url) {
            (Some(ns), _) => parse_name_servers(ns)?,
            (None, Some(_)) => Vec::new(),
            (None, None) => {
                return Err(Error::InvalidArgument(format!(
                    "configuration key '{NAME_SERVER}' (or '{NAME_SERVER_URL}') is required"
                )))
            }
        };
        Ok(ClientConfig {
            name_servers,
            name_server_url: url.map(str::to_string),
            name_server_url_poll_interval: self.ms(NAME_SERVER_URL_POLL_INTERVAL),
            instance_name: self.get(INSTANCE_NAME).unwrap_or("DEFAULT").to_string(),
            namespace: self.get(NAMESPACE).unwrap_or("").to_string(),
            heartbeat_interval: self.ms(HEARTBEAT_BROKER_INTERVAL),
            poll_name_server_interval: self.ms(POLL_NAME_SERVER_INTERVAL),
            api_timeout: self.ms(API_TIMEOUT),
            connect_timeout: self.ms(CONNECT_TIMEOUT),
            callback_executor_threads: self.int(CALLBACK_EXECUTOR_THREADS) as usize,
            broker_request_threads: self.int(BROKER_REQUEST_THREADS) as usize,
            language: self
                .get(CLIENT_LANGUAGE)
                .and_then(LanguageCode::from_name)
                .unwrap_or(LanguageCode::RUST),
            log_level: crate::log::Level::parse(self.get(LOG_LEVEL).unwrap_or("off"))
                .unwrap_or(None),
            credentials: self.credentials()?,
            tls: self.tls()?,
            trace_topic: (self.get(TRACE_ENABLED) == Some("true")).then(|| {
                self.get(TRACE_TOPIC)
                    .unwrap_or("RMQ_SYS_TRACE_TOPIC")
                    .to_string()
            }),
        })
    }

    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// client.access-key and client.secret-key, both or neither.
    fn credentials(&self) -> Result<Option<Arc<Credentials>>> {
        let token = self.non_empty(SECURITY_TOKEN);
        match (self.non_empty(ACCESS_KEY), self.non_empty(SECRET_KEY)) {
            (Some(ak), Some(sk)) => Ok(Some(Arc::new(Credentials::new(ak, sk, token)))),
            (None, None) if token.is_none() => Ok(None),
            (Some(_), None) => Err(Error::InvalidArgument(format!(
                "'{ACCESS_KEY}' is set but '{SECRET_KEY}' is not: ACL signing needs both"
            ))),
            (None, _) => Err(Error::InvalidArgument(format!(
                "'{SECRET_KEY}' or '{SECURITY_TOKEN}' is set but '{ACCESS_KEY}' is not: ACL signing needs both keys"
            ))),
        }
    }

    /// The client.tls.* keys; TLS files read and checked now, so mistakes show at create.
    fn tls(&self) -> Result<Option<Tls>> {
        let settings = TlsSettings {
            ca_file: self.non_empty(TLS_CA_FILE).map(str::to_string),
            cert_file: self.non_empty(TLS_CERT_FILE).map(str::to_string),
            key_file: self.non_empty(TLS_KEY_FILE).map(str::to_string),
            server_name: self.non_empty(TLS_SERVER_NAME).map(str::to_string),
            insecure_skip_verify: self.get(TLS_INSECURE_SKIP_VERIFY) == Some("true"),
        };
        if self.get(TLS_ENABLE) != Some("true") {
            if settings != TlsSettings::default() {
                return Err(Error::InvalidArgument(format!(
                    "client.tls.* keys are set but '{TLS_ENABLE}' is not true"
                )));
            }
            return Ok(None);
        }
        Tls::new(settings).map(Some)
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
            send_latency_fault_enable: self.get(SEND_LATENCY_FAULT_ENABLE) == Some("true"),
            compression: self.compression()?,
            max_in_flight_async_sends: self.int(MAX_IN_FLIGHT_ASYNC_SENDS) as usize,
            block_when_in_flight_full: self.get(BLOCK_WHEN_IN_FLIGHT_FULL) == Some("true"),
            transaction_check_threads: self.int(TRANSACTION_CHECK_THREADS) as usize,
        })
    }

    /// The compression keys together: the level must suit the codec.
    fn compression(&self) -> Result<CompressionPolicy> {
        let codec = self
            .get(COMPRESS_TYPE)
            .and_then(Codec::from_name)
            .expect("choice keys are validated on set and have defaults");
        let level = self.int(COMPRESS_LEVEL) as i32;
        if !codec.levels().contains(&level) {
            return Err(Error::InvalidConfigValue {
                key: COMPRESS_LEVEL.to_string(),
                value: level.to_string(),
                reason: format!(
                    "{} takes levels {} to {}",
                    codec.name(),
                    codec.levels().start(),
                    codec.levels().end()
                ),
            });
        }
        Ok(CompressionPolicy {
            threshold: self.int(COMPRESS_MESSAGE_BODY_THRESHOLD) as usize,
            codec,
            level,
        })
    }
}

impl Config {
    pub fn consumer_config(&self) -> Result<ConsumerConfig> {
        let group = self.get(CONSUMER_GROUP).ok_or_else(|| {
            Error::InvalidArgument(format!("configuration key '{CONSUMER_GROUP}' is required"))
        })?;
        let word = |k: &str| self.get(k).unwrap_or_default().to_string();
        Ok(ConsumerConfig {
            client: self.client_config()?,
            group: group.to_string(),
            consume_thread_number: self.int(CONSUME_THREAD_NUMBER) as usize,
            consume_message_batch_max_size: self.int(CONSUME_MESSAGE_BATCH_MAX_SIZE) as usize,
            max_reconsume_times: self.int(MAX_RECONSUME_TIMES) as i32,
            consume_from_where: word(CONSUME_FROM_WHERE),
            consume_timestamp: self.get(CONSUME_TIMESTAMP).map(str::to_string),
            allocate_strategy: word(ALLOCATE_STRATEGY),
            pull_batch_size: self.int(PULL_BATCH_SIZE) as i32,
            pull_threshold_for_queue: self.int(PULL_THRESHOLD_FOR_QUEUE) as usize,
            consume_concurrently_max_span: self.int(CONSUME_CONCURRENTLY_MAX_SPAN),
            pull_threshold_size_for_queue: self.int(PULL_THRESHOLD_SIZE_FOR_QUEUE) as usize
                * 1024
                * 1024,
            consume_timeout: self.ms(CONSUME_TIMEOUT),
            await_termination: Duration::from_millis(
                self.int(AWAIT_TERMINATION_WHEN_SHUTDOWN) as u64
            ),
            persist_offset_interval: self.ms(PERSIST_CONSUMER_OFFSET_INTERVAL),
            rebalance_interval: self.ms(REBALANCE_INTERVAL),
            suspend_current_queue_time: self.ms(SUSPEND_CURRENT_QUEUE_TIME),
            auto_commit: self.get(AUTO_COMMIT) == Some("true"),
            auto_commit_interval: self.ms(AUTO_COMMIT_INTERVAL),
            pull_threshold_for_all: self.int(PULL_THRESHOLD_FOR_ALL) as usize,
            broadcasting: self.get(MESSAGE_MODEL) == Some("BROADCASTING"),
            local_offset_store_dir: self
                .get(LOCAL_OFFSET_STORE_DIR)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            pop_mode: self.get(CONSUME_MODE) == Some("pop"),
            pop_invisible_time: self.ms(POP_INVISIBLE_TIME),
        })
    }
}

/// Push consumer settings (`consumer.*` keys), checked by `PushConsumer::new`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub client: ClientConfig,
    pub group: String,
    pub consume_thread_number: usize,
    pub consume_message_batch_max_size: usize,
    pub max_reconsume_times: i32,
    /// "last", "first" or "timestamp".
    pub consume_from_where: String,
    /// yyyyMMddHHmmss (local time); None = 30 minutes before start.
    pub consume_timestamp: Option<String>,
    /// "averagely", "averagely-by-circle" or "consistent-hash".
    pub allocate_strategy: String,
    pub pull_batch_size: i32,
    pub pull_threshold_for_queue: usize,
    /// Largest distance from the lowest unconsumed offset of a queue to its pull position.
    pub consume_concurrently_max_span: i64,
    /// In bytes.
    pub pull_threshold_size_for_queue: usize,
    pub consume_timeout: Duration,
    pub await_termination: Duration,
    /// How often offsets are committed.
    pub persist_offset_interval: Duration,
    /// How often queues are reallocated.
    pub rebalance_interval: Duration,
    /// How long an orderly queue waits after a suspend.
    pub suspend_current_queue_time: Duration,
    /// Lite pull: commit polled offsets periodically and at shutdown.
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
    /// Lite pull: most pulled messages waiting to be polled, all queues together.
    pub pull_threshold_for_all: usize,
    /// BROADCASTING (every consumer gets every queue; offsets in a local file) or CLUSTERING.
    pub broadcasting: bool,
    /// Root of the local offset files; None = ~/.rocketmq_offsets.
    pub local_offset_store_dir: Option<String>,
    /// consumer.consume-mode=pop: POP consumption with broker-side assignment.
    pub pop_mode: bool,
    pub pop_invisible_time: Duration,
}

impl ConsumerConfig {
    /// Defaults for everything but the name servers and the group.
    pub fn new(name_servers: &str, group: &str) -> Result<ConsumerConfig> {
        let mut c = Config::new();
        c.set(NAME_SERVER, name_servers)?;
        c.set(CONSUMER_GROUP, group)?;
        c.consumer_config()
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
    /// May be empty when `name_server_url` is set.
    pub name_servers: Vec<String>,
    pub name_server_url: Option<String>,
    pub name_server_url_poll_interval: Duration,
    pub instance_name: String,
    /// Empty: no namespace.
    pub namespace: String,
    pub heartbeat_interval: Duration,
    pub poll_name_server_interval: Duration,
    pub api_timeout: Duration,
    pub connect_timeout: Duration,
    pub callback_executor_threads: usize,
    pub broker_request_threads: usize,
    /// Language code of every request sent (client.language).
    pub language: LanguageCode,
    /// client.log-level: raises the process's log level when a client starts.
    pub log_level: Option<crate::log::Level>,
    /// ACL credentials every request is signed with (client.access-key, ...).
    pub credentials: Option<Arc<Credentials>>,
    /// TLS to every server (client.tls.*).
    pub tls: Option<Tls>,
    /// client.trace-enabled: the topic trace records go to (client.trace-topic); None: off.
    pub trace_topic: Option<String>,
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
    pub send_latency_fault_enable: bool,
    pub compression: CompressionPolicy,
    /// Async sends held at once, from acceptance until the callback returned.
    pub max_in_flight_async_sends: usize,
    /// With the window full: wait for a slot (true) or fail at once (false).
    pub block_when_in_flight_full: bool,
    /// Threads that run a transaction producer's checker.
    pub transaction_check_threads: usize,
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
        assert!(!p.send_latency_fault_enable);
        assert_eq!(p.compression, CompressionPolicy::default());
        assert_eq!(p.client.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(p.client.poll_name_server_interval, Duration::from_secs(30));
        let c = ConsumerConfig::new("127.0.0.1:9876", "G").unwrap();
        assert_eq!(c.persist_offset_interval, Duration::from_secs(5));
        assert_eq!(c.rebalance_interval, Duration::from_secs(20));
    }

    #[test]
    fn consumer_intervals_are_checked() {
        let mut c = Config::new();
        c.set(NAME_SERVER, "a:1").unwrap();
        c.set(CONSUMER_GROUP, "G").unwrap();
        for key in [PERSIST_CONSUMER_OFFSET_INTERVAL, REBALANCE_INTERVAL] {
            for bad in ["0", "99", "-5", "soon", "3600001"] {
                assert!(
                    matches!(c.set(key, bad), Err(Error::InvalidConfigValue { .. })),
                    "{key}={bad}"
                );
            }
        }
        c.set(PERSIST_CONSUMER_OFFSET_INTERVAL, "250").unwrap();
        c.set(REBALANCE_INTERVAL, "1000").unwrap();
        let cc = c.consumer_config().unwrap();
        assert_eq!(cc.persist_offset_interval, Duration::from_millis(250));
        assert_eq!(cc.rebalance_interval, Duration::from_millis(1000));
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
    fn compression_keys_are_checked_alone_and_together() {
        let mut c = Config::new();
        c.set(NAME_SERVER, "a:1").unwrap();
        c.set(PRODUCER_GROUP, "G").unwrap();
        let e = c.set(COMPRESS_TYPE, "gzip").unwrap_err().to_string();
        assert!(
            e.contains(COMPRESS_TYPE) && e.contains("zlib, lz4, zstd"),
            "{e}"
        );
        assert!(c.set(COMPRESS_LEVEL, "23").is_err());
        assert!(c.set(COMPRESS_MESSAGE_BODY_THRESHOLD, "-1").is_err());
        c.set(COMPRESS_LEVEL, "12").unwrap();
        let e = c.producer_config().unwrap_err().to_string();
        assert!(
            e.contains(COMPRESS_LEVEL) && e.contains("zlib takes levels 0 to 9"),
            "{e}"
        );
        c.set(COMPRESS_TYPE, "zstd").unwrap();
        c.set(COMPRESS_MESSAGE_BODY_THRESHOLD, "100").unwrap();
        let p = c.producer_config().unwrap().compression;
        assert_eq!((p.codec, p.level, p.threshold), (Codec::Zstd, 12, 100));
        c.set(COMPRESS_LEVEL, "0").unwrap();
        assert!(c.producer_config().is_err(), "zstd starts at level 1");
        c.set(COMPRESS_TYPE, "lz4").unwrap();
        assert_eq!(c.producer_config().unwrap().compression.codec, Codec::Lz4);
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
