//! The process's client instances, one per client id and name-server set.
//!
//! Clients with the same client id (ip@instance-name[@unit-name]) share one instance, as in Java.
//! Unlike Java, the name servers are part of the key, so clients of two clusters in one process
//! never share routes or broker tables even when their client ids are equal. An instance lives
//! while it has members; the last member to leave closes it and removes it from here.
use std::collections::HashMap;
use std::sync::{Arc, Once, Weak};

use parking_lot::Mutex;

use super::instance::{ClientInstance, ConsumerMember, InstanceKey};
use crate::config::ClientConfig;
use crate::error::Result;
use crate::runtime;

struct Instances {
    pid: u32,
    live: HashMap<InstanceKey, Weak<ClientInstance>>,
}

static INSTANCES: Mutex<Option<Instances>> = Mutex::new(None);

/// The name servers as one canonical string: sorted, so the order they were listed in does not
/// split one cluster into two instances; with the lookup URL, if any.
fn name_server_set(config: &ClientConfig) -> String {
    let mut addrs = config.name_servers.clone();
    addrs.sort();
    addrs.dedup();
    let mut set = addrs.join(";");
    if let Some(url) = &config.name_server_url {
        set.push_str(" from ");
        set.push_str(url);
    }
    // Clients signing as another user, or with and without TLS, never share connections.
    if let Some(c) = &config.credentials {
        set.push_str(" as ");
        set.push_str(c.access_key());
    }
    if config.tls.is_some() {
        set.push_str(" over TLS");
    }
    set
}

/// ip@instance-name, where DEFAULT becomes `<pid>#<hash of the name servers>`: clients of one
/// cluster in one process share an instance; clients of another cluster get another id.
pub fn client_id(config: &ClientConfig) -> String {
    let instance_name = if config.instance_name == "DEFAULT" {
        format!(
            "{}#{}",
            runtime::current_pid(),
            fnv1a(name_server_set(config).as_bytes())
        )
    } else {
        config.instance_name.clone()
    };
    let ip = crate::protocol::ids::local_ip();
    if ip.is_ipv6() {
        format!("[{ip}]@{instance_name}")
    } else {
        format!("{ip}@{instance_name}")
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Positive and of the length Java's nanoTime gives, so the id looks familiar in consoles.
    h >> 4
}

/// The instance for `config`, shared or new, with `group` registered as a producer in it.
pub fn register_producer(config: &ClientConfig, group: &str) -> Result<Arc<ClientInstance>> {
    register(config, |i| i.add_producer(group))
}

/// The instance for `config`, shared or new, with `group` registered as a consumer in it.
pub fn register_consumer(
    config: &ClientConfig,
    group: &str,
    member: Arc<dyn ConsumerMember>,
) -> Result<Arc<ClientInstance>> {
    register(config, |i| i.add_consumer(group, member))
}

fn register(
    config: &ClientConfig,
    add: impl FnOnce(&ClientInstance) -> Result<()>,
) -> Result<Arc<ClientInstance>> {
    install_fork_handlers();
    if let Some(level) = config.log_level {
        crate::log::raise_config_level(level);
    }
    let shared = runtime::shared()?;
    let key = InstanceKey::new(client_id(config), name_server_set(config));
    let mut guard = INSTANCES.lock();
    let instances = match guard.as_mut() {
        // A child after fork() starts afresh: the parent's instances use the parent's threads.
        Some(i) if i.pid == shared.pid() => i,
        _ => guard.insert(Instances {
            pid: shared.pid(),
            live: HashMap::new(),
        }),
    };
    instances.live.retain(|_, w| w.strong_count() > 0);
    let existing = instances
        .live
        .get(&key)
        .and_then(Weak::upgrade)
        .filter(|i| !i.is_shut_down());
    let instance = match existing {
        Some(i) if i.config().credentials != config.credentials || i.config().tls != config.tls => {
            return Err(crate::error::Error::InvalidArgument(format!(
                "client instance {} already runs with other ACL credentials or TLS settings; \
                 give this client another instance-name",
                i.client_id()
            )))
        }
        Some(i) => i,
        None => {
            let i = ClientInstance::start(shared, config.clone(), key.clone());
            instances.live.insert(key, Arc::downgrade(&i));
            i
        }
    };
    add(&instance)?;
    Ok(instance)
}

/// Removes `group` from its instance; true when it was the last member, in which case the
/// instance is out of the registry and marked shut down (the caller closes it).
pub fn unregister_producer(instance: &Arc<ClientInstance>, group: &str) -> bool {
    unregister(instance, |i| i.remove_producer(group))
}

/// Removes consumer `group` from its instance; as `unregister_producer`.
pub fn unregister_consumer(instance: &Arc<ClientInstance>, group: &str) -> bool {
    unregister(instance, |i| i.remove_consumer(group))
}

fn unregister(
    instance: &Arc<ClientInstance>,
    remove: impl FnOnce(&ClientInstance) -> bool,
) -> bool {
    let mut guard = INSTANCES.lock();
    if !remove(instance) {
        return false;
    }
    instance.mark_shut_down();
    if let Some(instances) = guard.as_mut() {
        let ours = instances
            .live
            .get(&instance.key)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(instance)));
        if ours {
            instances.live.remove(&instance.key);
        }
    }
    true
}

static AT_FORK: Once = Once::new();

/// The table is locked around fork(), so the child gets it unlocked rather than held by a thread
/// it does not have.
fn install_fork_handlers() {
    AT_FORK.call_once(|| {
        // SAFETY: the handlers only take and release this table's lock.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
    });
}

extern "C" fn before_fork() {
    std::mem::forget(INSTANCES.lock());
}

extern "C" fn after_fork() {
    // SAFETY: `before_fork` locked it for this fork.
    unsafe { INSTANCES.force_unlock() };
}

/// Live instances in this process (for tests and diagnostics).
pub fn instance_count() -> usize {
    INSTANCES
        .lock()
        .as_ref()
        .map(|i| i.live.values().filter(|w| w.strong_count() > 0).count())
        .unwrap_or(0)
}
