//! ClientInstance: what producers (and later consumers) with one client id share: the connection
//! pool, the name server list, cached topic routes, the broker address table, the processors of
//! broker-initiated requests, the callback executor, and the background task that refreshes
//! routes and sends heartbeats. Instances are found and shared through `client::registry`.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::namesrv::NameServerList;
use super::route::TopicPublishInfo;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::protocol::code::response;
use crate::protocol::header::{self, AUTO_CREATE_TOPIC_KEY, DEFAULT_TOPIC_QUEUE_NUMS};
use crate::protocol::message::{decode_offset_msg_id, decode_stored_messages, MessageExt};
use crate::protocol::route::MASTER_ID;
use crate::remoting::processor::{ProcessorRegistry, RequestProcessor};
use crate::remoting::RemotingClient;
use crate::runtime::Shared;
use crate::single_flight::SingleFlight;

/// What makes two clients share an instance: the client id and the name-server set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    client_id: String,
    name_servers: String,
}

impl InstanceKey {
    pub(crate) fn new(client_id: String, name_servers: String) -> InstanceKey {
        InstanceKey {
            client_id,
            name_servers,
        }
    }
}

pub struct ClientInstance {
    pub(crate) key: InstanceKey,
    client_id: String,
    config: ClientConfig,
    remoting: RemotingClient,
    processors: Arc<ProcessorRegistry>,
    callbacks: Executor,
    name_servers: NameServerList,
    routes: RwLock<HashMap<String, Arc<TopicPublishInfo>>>,
    /// Route queries under way, one per topic: concurrent lookups of a new topic share it.
    route_fetches: SingleFlight<String, Arc<TopicPublishInfo>>,
    /// broker name -> broker id -> address, merged from every route seen.
    brokers: RwLock<HashMap<String, BTreeMap<i64, Arc<str>>>>,
    producer_groups: Mutex<Vec<String>>,
    shut_down: AtomicBool,
    stop: watch::Sender<bool>,
}

impl ClientInstance {
    /// Creates the instance and starts its background task on the shared runtime.
    pub(crate) fn start(
        shared: Arc<Shared>,
        config: ClientConfig,
        key: InstanceKey,
    ) -> Arc<ClientInstance> {
        let (stop, stop_rx) = watch::channel(false);
        let processors = Arc::new(ProcessorRegistry::new(Executor::new(
            "rmq-broker-req",
            config.broker_request_threads,
        )));
        let handle = shared.handle().clone();
        let instance = Arc::new(ClientInstance {
            client_id: key.client_id.clone(),
            key,
            remoting: RemotingClient::new(
                shared,
                config.connect_timeout,
                Arc::clone(&processors) as _,
            ),
            processors,
            callbacks: Executor::new("rmq-callback", config.callback_executor_threads),
            name_servers: NameServerList::new(config.name_servers.clone()),
            config,
            routes: RwLock::new(HashMap::new()),
            route_fetches: SingleFlight::default(),
            brokers: RwLock::new(HashMap::new()),
            producer_groups: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
            stop,
        });
        handle.spawn(background(Arc::downgrade(&instance), stop_rx));
        instance
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn remoting(&self) -> &RemotingClient {
        &self.remoting
    }

    pub fn shared(&self) -> &Arc<Shared> {
        self.remoting.shared()
    }

    /// Where async send callbacks run.
    pub fn callback_executor(&self) -> &Executor {
        &self.callbacks
    }

    /// Registers the processor of broker requests with `code`; it runs on the instance's
    /// broker-request executor, never on the thread that read the request.
    pub fn register_processor(&self, code: i32, processor: Arc<dyn RequestProcessor>) {
        self.processors.register(code, processor);
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Adds a producer group; a group registered twice in one instance is an error, as in Java.
    pub(crate) fn add_producer(&self, group: &str) -> Result<()> {
        let mut groups = self.producer_groups.lock();
        if groups.iter().any(|g| g == group) {
            return Err(Error::InvalidState(format!(
                "producer group '{group}' is already registered in client instance {}; \
                 use another group or another instance-name",
                self.client_id
            )));
        }
        groups.push(group.to_string());
        Ok(())
    }

    /// Removes a producer group; true when the instance has no member left.
    pub(crate) fn remove_producer(&self, group: &str) -> bool {
        let mut groups = self.producer_groups.lock();
        groups.retain(|g| g != group);
        groups.is_empty()
    }

    pub(crate) fn mark_shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
        let _ = self.stop.send(true);
    }

    pub fn master_addr(&self, broker_name: &str) -> Option<Arc<str>> {
        self.brokers
            .read()
            .get(broker_name)
            .and_then(|ids| ids.get(&MASTER_ID).cloned())
    }

    /// Cached publish info, without I/O.
    pub fn cached_publish_info(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        self.routes.read().get(topic).cloned()
    }

    /// The topic's publish info: cached, or fetched once for all concurrent callers.
    pub async fn publish_info(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicPublishInfo>> {
        if let Some(info) = self.cached_publish_info(topic) {
            return Ok(info);
        }
        let key = topic.to_string();
        let fetch = self
            .route_fetches
            .run(&key, || self.update_route(topic, deadline));
        match tokio::time::timeout_at(deadline.into(), fetch).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(format!("no route for {topic} in time"))),
        }
    }

    /// Fetches the topic's route; a topic the name server does not know yet is published
    /// through the TBW102 template so the broker auto-creates it.
    pub async fn update_route(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Arc<TopicPublishInfo>> {
        let deadline = deadline.min(Instant::now() + self.config.api_timeout);
        let info = match self
            .name_servers
            .query_route(&self.remoting, topic, deadline)
            .await
        {
            Ok(route) => TopicPublishInfo::from_route(topic, route, None),
            Err(Error::RouteNotFound { .. }) => {
                let template = self
                    .name_servers
                    .query_route(&self.remoting, AUTO_CREATE_TOPIC_KEY, deadline)
                    .await
                    .map_err(|e| match e {
                        Error::RouteNotFound { .. } => Error::RouteNotFound {
                            topic: topic.to_string(),
                            reason: "the name server knows neither the topic nor the auto-create template TBW102 (is autoCreateTopicEnable off?)".into(),
                        },
                        e => e,
                    })?;
                TopicPublishInfo::from_route(topic, template, Some(DEFAULT_TOPIC_QUEUE_NUMS))
            }
            Err(e) => return Err(e),
        };
        if info.queues.is_empty() {
            return Err(Error::RouteNotFound {
                topic: topic.to_string(),
                reason: "the route has no writable queue on a master broker".into(),
            });
        }
        let new_broker = {
            let mut brokers = self.brokers.write();
            let mut added = false;
            for b in &info.route.broker_datas {
                let addrs = b
                    .broker_addrs
                    .iter()
                    .map(|(id, addr)| (*id, Arc::from(addr.as_str())))
                    .collect();
                let known = brokers.insert(b.broker_name.clone(), addrs);
                added |= known.is_none();
            }
            added
        };
        let info = Arc::new(info);
        let previous = self
            .routes
            .write()
            .insert(topic.to_string(), Arc::clone(&info));
        crate::client::route_log::route_updated(topic, previous.as_deref(), &info);
        if new_broker {
            // A broker learns about us at once rather than at the next 30 s tick.
            self.send_heartbeats().await;
        }
        Ok(info)
    }

    async fn refresh_routes(&self) {
        let topics: Vec<String> = self.routes.read().keys().cloned().collect();
        for topic in topics {
            // A failed refresh keeps the last good route; the next tick tries again.
            if let Err(e) = self
                .update_route(&topic, Instant::now() + self.config.api_timeout)
                .await
            {
                crate::log_warn!(
                    "rmq::client",
                    "route refresh of topic {topic} failed, the last route stays in use: {e}"
                );
            }
        }
    }

    /// HEART_BEAT to every master broker; returns how many answered SUCCESS.
    pub async fn send_heartbeats(&self) -> usize {
        let groups = self.producer_groups.lock().clone();
        if groups.is_empty() {
            return 0;
        }
        let masters: Vec<Arc<str>> = self
            .brokers
            .read()
            .values()
            .filter_map(|ids| ids.get(&MASTER_ID).cloned())
            .collect();
        let mut ok = 0;
        for addr in masters {
            let cmd = header::heartbeat(&self.client_id, &groups, &[]);
            let deadline = Instant::now() + self.config.api_timeout;
            if let Ok(resp) = self.remoting.invoke(&addr, &cmd, deadline).await {
                if resp.code == response::SUCCESS {
                    ok += 1;
                }
            }
        }
        ok
    }

    /// VIEW_MESSAGE_BY_ID: reads a stored message back by its offset message id.
    pub async fn view_message(&self, offset_msg_id: &str, deadline: Instant) -> Result<MessageExt> {
        let (store, offset) = decode_offset_msg_id(offset_msg_id)?;
        let addr = store.to_string();
        let resp = self
            .remoting
            .invoke(&addr, &header::view_message_by_id(offset), deadline)
            .await?;
        if resp.code != response::SUCCESS {
            return Err(Error::broker(resp.code, resp.remark_str(), addr));
        }
        decode_stored_messages(resp.body)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Protocol(format!("{addr} returned no message for {offset_msg_id}"))
            })
    }

    /// QUERY_MESSAGE on every master of the topic, merged; index hash collisions are filtered
    /// out by checking the keys (as Java's queryMessage does).
    pub async fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: i32,
        begin_ms: i64,
        end_ms: i64,
        deadline: Instant,
    ) -> Result<Vec<MessageExt>> {
        let info = self.publish_info(topic, deadline).await?;
        let mut masters: Vec<String> = info
            .route
            .broker_datas
            .iter()
            .filter_map(|b| b.master_addr().map(str::to_string))
            .collect();
        masters.sort();
        masters.dedup();
        let mut found = Vec::new();
        for addr in masters {
            let cmd = header::query_message(topic, key, max_num, begin_ms, end_ms);
            let resp = self.remoting.invoke(&addr, &cmd, deadline).await?;
            match resp.code {
                response::SUCCESS => found.extend(decode_stored_messages(resp.body)?),
                response::QUERY_NOT_FOUND => {}
                code => return Err(Error::broker(code, resp.remark_str(), addr)),
            }
        }
        found.retain(|m| {
            m.message
                .keys()
                .is_some_and(|k| k.split(' ').any(|k| k == key))
                || m.msg_id() == key
        });
        Ok(found)
    }

    /// Tells every broker this client has a connection to that `group` is gone.
    pub async fn unregister_group(&self, group: &str) {
        let addrs: Vec<Arc<str>> = self
            .brokers
            .read()
            .values()
            .flat_map(|ids| ids.values().cloned())
            .collect();
        for addr in addrs {
            // Only on connections already open: leaving must not dial anything.
            if let Some(conn) = self.remoting.existing(&addr) {
                let cmd = header::unregister_client(&self.client_id, group);
                let deadline = Instant::now() + self.config.api_timeout;
                let _ = conn.invoke(&cmd, deadline).await;
            }
        }
    }

    /// Stops background work and closes every connection, failing what is in flight. Nothing
    /// is dialled afterwards.
    pub fn close(&self) {
        self.mark_shut_down();
        self.remoting.shutdown();
    }
}

impl Drop for ClientInstance {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.remoting.shutdown();
    }
}

/// Route refresh and heartbeats; holds only a weak reference so a dropped instance ends it.
async fn background(instance: Weak<ClientInstance>, mut stop: watch::Receiver<bool>) {
    let (hb_every, route_every) = match instance.upgrade() {
        Some(i) => (
            i.config.heartbeat_interval,
            i.config.poll_name_server_interval,
        ),
        None => return,
    };
    if let Some(inst) = instance.upgrade() {
        tokio::select! {
            _ = crate::client::route_log::probe_name_servers(&inst) => {}
            _ = stop.changed() => return,
        }
    }
    let now = Instant::now();
    // Java: first heartbeat 1 s after start, first route poll after 10 ms; both then periodic.
    let mut next_hb = now + Duration::from_secs(1).min(hb_every);
    let mut next_route = now + route_every;
    loop {
        let wake = next_hb.min(next_route);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => return,
        }
        let Some(inst) = instance.upgrade() else {
            return;
        };
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        if now >= next_route {
            inst.refresh_routes().await;
            next_route = now + route_every;
        }
        if now >= next_hb {
            inst.send_heartbeats().await;
            next_hb = now + hb_every;
        }
    }
}
