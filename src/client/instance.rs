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
use super::nsaddr::NameServerUrl;
use super::reply::{PendingRequests, PushReplyProcessor};
use super::route::{MessageQueue, TopicPublishInfo};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::producer::transaction::TransactionCheckers;
use crate::protocol::code::{request, response};
use crate::protocol::header::{self, AUTO_CREATE_TOPIC_KEY, DEFAULT_TOPIC_QUEUE_NUMS};
use crate::protocol::message::{
    decode_offset_msg_id, decode_stored_messages, decode_stored_records, MessageExt,
};
use crate::protocol::route::{TopicRouteData, MASTER_ID};
use crate::remoting::processor::{ProcessorRegistry, RequestProcessor};
use crate::remoting::{RemotingClient, RemotingCommand};
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

/// What the instance needs from a consumer in it: its heartbeat data, and a way to ask it for a
/// rebalance when a broker says the group's members changed.
pub trait ConsumerMember: Send + Sync {
    /// The ConsumerData JSON object for heartbeats; None once the consumer is gone.
    fn consumer_data(&self) -> Option<serde_json::Value>;
    /// Asks for a rebalance soon; must not block.
    fn rebalance_now(&self);
    /// GET_CONSUMER_RUNNING_INFO; None when the member has nothing to report.
    fn running_info(&self) -> Option<super::admin::RunningInfo> {
        None
    }
    /// GET_CONSUMER_STATUS_FROM_CLIENT: the offsets of the topic's queues held here.
    fn offset_table(&self, _topic: &str) -> Vec<(MessageQueue, i64)> {
        Vec::new()
    }
    /// RESET_CONSUMER_CLIENT_OFFSET: consume the topic's queues from these offsets on.
    fn reset_offsets(&self, _topic: &str, _offsets: Vec<(MessageQueue, i64)>) {}
    /// CONSUME_MESSAGE_DIRECTLY: runs the listener on the message, waiting for its result;
    /// None when the member has no listener to run.
    fn consume_directly(&self, _msg: MessageExt) -> Option<super::admin::DirectResult> {
        None
    }
}

pub(crate) type Consumers = Arc<Mutex<Vec<(String, Arc<dyn ConsumerMember>)>>>;

/// The processors of the requests brokers start, by request code, as every instance registers
/// them (the fuzz targets register the same).
pub(crate) fn broker_request_processors(
    consumers: &Consumers,
    transaction_checkers: &Arc<TransactionCheckers>,
    requests: &Arc<PendingRequests>,
) -> Vec<(i32, Arc<dyn RequestProcessor>)> {
    let mut list: Vec<(i32, Arc<dyn RequestProcessor>)> = vec![
        (
            request::NOTIFY_CONSUMER_IDS_CHANGED,
            Arc::new(ConsumerIdsChanged(Arc::clone(consumers))),
        ),
        (
            request::CHECK_TRANSACTION_STATE,
            TransactionCheckers::processor(transaction_checkers),
        ),
        (
            request::PUSH_REPLY_MESSAGE_TO_CLIENT,
            Arc::new(PushReplyProcessor(Arc::clone(requests))),
        ),
    ];
    list.extend(super::admin::processors(consumers));
    list
}

/// NOTIFY_CONSUMER_IDS_CHANGED: the group's consumers rebalance at once (oneway; no answer).
struct ConsumerIdsChanged(Consumers);

impl RequestProcessor for ConsumerIdsChanged {
    fn process(&self, _remote_addr: &str, request: RemotingCommand) -> Option<RemotingCommand> {
        let group = request.ext("consumerGroup").unwrap_or("");
        let members: Vec<Arc<dyn ConsumerMember>> = self
            .0
            .lock()
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, m)| Arc::clone(m))
            .collect();
        for m in members {
            m.rebalance_now();
        }
        None
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
    /// Where the name server list comes from, when it is looked up.
    name_server_url: Option<NameServerUrl>,
    name_server_fetches: SingleFlight<(), ()>,
    routes: RwLock<HashMap<String, Arc<TopicPublishInfo>>>,
    /// Route queries under way, one per topic: concurrent lookups of a new topic share it.
    route_fetches: SingleFlight<String, Arc<TopicPublishInfo>>,
    /// broker name -> broker id -> address, merged from every route seen.
    brokers: RwLock<HashMap<String, BTreeMap<i64, Arc<str>>>>,
    producer_groups: Mutex<Vec<String>>,
    consumers: Consumers,
    /// The checkers of this instance's transaction producers, by group.
    transaction_checkers: Arc<TransactionCheckers>,
    /// Requests of this instance's producers waiting for their reply (request-reply).
    requests: Arc<PendingRequests>,
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
        let consumers: Consumers = Arc::default();
        let transaction_checkers = Arc::new(TransactionCheckers::default());
        let requests = Arc::new(PendingRequests::default());
        for (code, processor) in
            broker_request_processors(&consumers, &transaction_checkers, &requests)
        {
            processors.register(code, processor);
        }
        let handle = shared.handle().clone();
        let instance = Arc::new(ClientInstance {
            client_id: key.client_id.clone(),
            key,
            remoting: RemotingClient::new(
                shared,
                config.connect_timeout,
                Arc::clone(&processors) as _,
            )
            .with_language(config.language)
            .with_security(config.credentials.clone(), config.tls.clone()),
            processors,
            callbacks: Executor::new("rmq-callback", config.callback_executor_threads),
            name_servers: NameServerList::new(config.name_servers.clone()),
            // validated when the key was set
            name_server_url: config
                .name_server_url
                .as_deref()
                .and_then(|u| NameServerUrl::parse(u).ok()),
            name_server_fetches: SingleFlight::default(),
            config,
            routes: RwLock::new(HashMap::new()),
            route_fetches: SingleFlight::default(),
            brokers: RwLock::new(HashMap::new()),
            producer_groups: Mutex::new(Vec::new()),
            consumers,
            transaction_checkers,
            requests,
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

    pub(crate) fn transaction_checkers(&self) -> &TransactionCheckers {
        &self.transaction_checkers
    }

    /// Requests waiting for their reply, routed by PUSH_REPLY_MESSAGE_TO_CLIENT.
    pub fn pending_requests(&self) -> &Arc<PendingRequests> {
        &self.requests
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
        self.producer_groups.lock().retain(|g| g != group);
        self.is_empty()
    }

    /// Adds a consumer group; a group registered twice in one instance is an error, as in Java.
    pub(crate) fn add_consumer(&self, group: &str, member: Arc<dyn ConsumerMember>) -> Result<()> {
        let mut consumers = self.consumers.lock();
        if consumers.iter().any(|(g, _)| g == group) {
            return Err(Error::InvalidState(format!(
                "consumer group '{group}' is already registered in client instance {}; \
                 use another group or another instance-name",
                self.client_id
            )));
        }
        consumers.push((group.to_string(), member));
        Ok(())
    }

    /// Removes a consumer group; true when the instance has no member left.
    pub(crate) fn remove_consumer(&self, group: &str) -> bool {
        self.consumers.lock().retain(|(g, _)| g != group);
        self.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.producer_groups.lock().is_empty() && self.consumers.lock().is_empty()
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

    /// Where to read a queue of `broker_name` from: its master, or, while the route names none
    /// (the master is down), its slave with the lowest id, which serves what it replicated.
    pub fn subscribe_addr(&self, broker_name: &str) -> Option<Arc<str>> {
        let brokers = self.brokers.read();
        let ids = brokers.get(broker_name)?;
        ids.get(&MASTER_ID).or_else(|| ids.values().next()).cloned()
    }

    /// The name servers in use.
    pub fn name_server_addrs(&self) -> Arc<Vec<String>> {
        self.name_servers.addrs()
    }

    /// Looks the name servers up at `client.name-server-url` (one lookup for all concurrent
    /// callers) and uses the answer. Without a URL, nothing to do.
    pub async fn refresh_name_servers(&self, deadline: Instant) -> Result<()> {
        let Some(url) = &self.name_server_url else {
            return Ok(());
        };
        self.name_server_fetches
            .run(&(), || async {
                if let Some(addrs) = url.fetch(deadline).await? {
                    self.name_servers.replace(addrs);
                }
                Ok(())
            })
            .await
    }

    /// The master address of the queue's broker, or why there is none.
    pub fn master_of(&self, mq: &MessageQueue) -> Result<Arc<str>> {
        self.master_addr(&mq.broker_name)
            .ok_or_else(|| Error::RouteNotFound {
                topic: mq.topic.to_string(),
                reason: format!("broker {} has no master address", mq.broker_name),
            })
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
        if self.name_servers.is_empty() {
            self.refresh_name_servers(deadline).await?;
        }
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
        let new_broker = self.merge_brokers(&info.route);
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

    /// Adds the route's broker addresses to the table; true when a broker was new.
    fn merge_brokers(&self, route: &TopicRouteData) -> bool {
        let mut brokers = self.brokers.write();
        let mut added = false;
        for b in &route.broker_datas {
            let addrs = b
                .broker_addrs
                .iter()
                .map(|(id, addr)| (*id, Arc::from(addr.as_str())))
                .collect();
            let known = brokers.insert(b.broker_name.clone(), addrs);
            added |= known.is_none();
        }
        added
    }

    /// The topic's route as the name server has it, for consumers: no auto-create fallback
    /// (a topic that does not exist has no queues to read). Not cached: consumers ask at each
    /// rebalance. The broker table learns its brokers.
    pub async fn subscribe_route(&self, topic: &str, deadline: Instant) -> Result<TopicRouteData> {
        let deadline = deadline.min(Instant::now() + self.config.api_timeout);
        let route = self
            .name_servers
            .query_route(&self.remoting, topic, deadline)
            .await?;
        if self.merge_brokers(&route) {
            self.send_heartbeats().await;
        }
        Ok(route)
    }

    /// Address of a broker by name and id (0 = master).
    pub fn broker_addr(&self, broker_name: &str, id: i64) -> Option<Arc<str>> {
        self.brokers
            .read()
            .get(broker_name)
            .and_then(|ids| ids.get(&id).cloned())
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

    /// HEART_BEAT to every master broker, or to every broker (slaves too) when the instance has
    /// consumers, as Java; returns how many answered SUCCESS.
    pub async fn send_heartbeats(&self) -> usize {
        let groups = self.producer_groups.lock().clone();
        let members: Vec<Arc<dyn ConsumerMember>> = self
            .consumers
            .lock()
            .iter()
            .map(|(_, m)| Arc::clone(m))
            .collect();
        let consumer_data: Vec<serde_json::Value> =
            members.iter().filter_map(|m| m.consumer_data()).collect();
        if groups.is_empty() && consumer_data.is_empty() {
            return 0;
        }
        let all = !consumer_data.is_empty();
        let addrs: Vec<Arc<str>> = self
            .brokers
            .read()
            .values()
            .flat_map(|ids| {
                ids.iter()
                    .filter(|(id, _)| all || **id == MASTER_ID)
                    .map(|(_, a)| Arc::clone(a))
            })
            .collect();
        let mut ok = 0;
        for addr in addrs {
            let cmd = header::heartbeat(&self.client_id, &groups, &consumer_data);
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
                // One message that does not decode (say, a body that does not decompress) is
                // left out; the others are still found.
                response::SUCCESS => found.extend(
                    decode_stored_records(resp.body)
                        .into_iter()
                        .filter_map(Result::ok),
                ),
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

    /// Tells every broker this client has a connection to that producer `group` is gone.
    pub async fn unregister_group(&self, group: &str) {
        self.unregister_with(|| header::unregister_client(&self.client_id, group))
            .await
    }

    /// Tells every broker this client has a connection to that consumer `group` is gone.
    pub async fn unregister_consumer_group(&self, group: &str) {
        self.unregister_with(|| {
            crate::protocol::consumer::unregister_consumer(&self.client_id, group)
        })
        .await
    }

    async fn unregister_with(&self, cmd: impl Fn() -> RemotingCommand) {
        let addrs: Vec<Arc<str>> = self
            .brokers
            .read()
            .values()
            .flat_map(|ids| ids.values().cloned())
            .collect();
        for addr in addrs {
            // Only on connections already open: leaving must not dial anything.
            if let Some(conn) = self.remoting.existing(&addr) {
                let cmd = cmd();
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
    let (hb_every, route_every, lookup_every) = match instance.upgrade() {
        Some(i) => (
            i.config.heartbeat_interval,
            i.config.poll_name_server_interval,
            i.name_server_url
                .as_ref()
                .map(|_| i.config.name_server_url_poll_interval),
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
    // The name server lookup runs at start, then every 2 minutes by default.
    let mut next_hb = now + Duration::from_secs(1).min(hb_every);
    let mut next_route = now + route_every;
    let mut next_lookup = lookup_every.map(|_| now);
    loop {
        let wake = next_hb
            .min(next_route)
            .min(next_lookup.unwrap_or(next_route));
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
        if let (Some(at), Some(every)) = (next_lookup, lookup_every) {
            if now >= at {
                // A failed lookup keeps the list in use; the next tick tries again.
                let _ = inst
                    .refresh_name_servers(now + inst.config.api_timeout)
                    .await;
                next_lookup = Some(now + every);
            }
        }
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
