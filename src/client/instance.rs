//! ClientInstance: what producers (and later consumers) share per client id: the connection pool,
//! the name server list, cached topic routes, the broker address table, and the background task
//! that refreshes routes and sends heartbeats.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::namesrv::NameServerList;
use super::route::TopicPublishInfo;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::header::{self, AUTO_CREATE_TOPIC_KEY, DEFAULT_TOPIC_QUEUE_NUMS};
use crate::protocol::message::{decode_offset_msg_id, decode_stored_messages, MessageExt};
use crate::protocol::route::MASTER_ID;
use crate::remoting::processor::UnsupportedProcessor;
use crate::remoting::RemotingClient;
use crate::runtime;

pub struct ClientInstance {
    client_id: String,
    config: ClientConfig,
    remoting: RemotingClient,
    name_servers: NameServerList,
    routes: RwLock<HashMap<String, Arc<TopicPublishInfo>>>,
    /// broker name -> broker id -> address, merged from every route seen.
    brokers: RwLock<HashMap<String, BTreeMap<i64, String>>>,
    producer_groups: Mutex<Vec<String>>,
    stop: watch::Sender<bool>,
}

impl ClientInstance {
    /// Creates the instance and starts its background task on the shared runtime.
    pub fn start(config: ClientConfig) -> Arc<ClientInstance> {
        let instance_name = if config.instance_name == "DEFAULT" {
            // As Java's changeInstanceNameToPID: one client id per producer unless named.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{}#{}", std::process::id(), nanos)
        } else {
            config.instance_name.clone()
        };
        let ip = crate::protocol::ids::local_ip();
        let ip = if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let (stop, stop_rx) = watch::channel(false);
        let instance = Arc::new(ClientInstance {
            client_id: format!("{ip}@{instance_name}"),
            remoting: RemotingClient::new(config.connect_timeout, Arc::new(UnsupportedProcessor)),
            name_servers: NameServerList::new(config.name_servers.clone()),
            config,
            routes: RwLock::new(HashMap::new()),
            brokers: RwLock::new(HashMap::new()),
            producer_groups: Mutex::new(Vec::new()),
            stop,
        });
        runtime::handle().spawn(background(Arc::downgrade(&instance), stop_rx));
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

    pub fn register_producer(&self, group: &str) {
        let mut groups = self.producer_groups.lock().unwrap();
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
    }

    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.brokers
            .read()
            .unwrap()
            .get(broker_name)
            .and_then(|ids| ids.get(&MASTER_ID).cloned())
    }

    /// Cached publish info, without I/O.
    pub fn cached_publish_info(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        self.routes.read().unwrap().get(topic).cloned()
    }

    pub async fn publish_info(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<TopicPublishInfo>> {
        match self.cached_publish_info(topic) {
            Some(info) => Ok(info),
            None => self.update_route(topic, timeout).await,
        }
    }

    pub fn publish_info_blocking(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<TopicPublishInfo>> {
        match self.cached_publish_info(topic) {
            Some(info) => Ok(info),
            None => runtime::block_on_timeout(
                timeout,
                "topic route query",
                self.update_route(topic, timeout),
            ),
        }
    }

    /// Fetches the topic's route; a topic the name server does not know yet is published
    /// through the TBW102 template so the broker auto-creates it.
    pub async fn update_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<TopicPublishInfo>> {
        let timeout = timeout.min(self.config.api_timeout);
        let info = match self
            .name_servers
            .query_route(&self.remoting, topic, timeout)
            .await
        {
            Ok(route) => TopicPublishInfo::from_route(topic, route, None),
            Err(Error::RouteNotFound { .. }) => {
                let template = self
                    .name_servers
                    .query_route(&self.remoting, AUTO_CREATE_TOPIC_KEY, timeout)
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
            let mut brokers = self.brokers.write().unwrap();
            let mut added = false;
            for b in &info.route.broker_datas {
                let known = brokers.insert(b.broker_name.clone(), b.broker_addrs.clone());
                added |= known.is_none();
            }
            added
        };
        let info = Arc::new(info);
        self.routes
            .write()
            .unwrap()
            .insert(topic.to_string(), Arc::clone(&info));
        if new_broker {
            // A broker learns about us at once rather than at the next 30 s tick.
            self.send_heartbeats().await;
        }
        Ok(info)
    }

    async fn refresh_routes(&self) {
        let topics: Vec<String> = self.routes.read().unwrap().keys().cloned().collect();
        for topic in topics {
            // A failed refresh keeps the last good route; the next tick tries again.
            let _ = self.update_route(&topic, self.config.api_timeout).await;
        }
    }

    /// HEART_BEAT to every master broker; returns how many answered SUCCESS.
    pub async fn send_heartbeats(&self) -> usize {
        let groups = self.producer_groups.lock().unwrap().clone();
        if groups.is_empty() {
            return 0;
        }
        let masters: Vec<String> = self
            .brokers
            .read()
            .unwrap()
            .values()
            .filter_map(|ids| ids.get(&MASTER_ID).cloned())
            .collect();
        let mut ok = 0;
        for addr in masters {
            let cmd = header::heartbeat(&self.client_id, &groups);
            if let Ok(resp) = self
                .remoting
                .invoke(&addr, &cmd, self.config.api_timeout)
                .await
            {
                if resp.code == response::SUCCESS {
                    ok += 1;
                }
            }
        }
        ok
    }

    /// VIEW_MESSAGE_BY_ID: reads a stored message back by its offset message id.
    pub async fn view_message(&self, offset_msg_id: &str, timeout: Duration) -> Result<MessageExt> {
        let (store, offset) = decode_offset_msg_id(offset_msg_id)?;
        let addr = store.to_string();
        let resp = self
            .remoting
            .invoke(&addr, &header::view_message_by_id(offset), timeout)
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
    ) -> Result<Vec<MessageExt>> {
        let timeout = self.config.api_timeout;
        let info = self.publish_info(topic, timeout).await?;
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
            let resp = self.remoting.invoke(&addr, &cmd, timeout).await?;
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

    /// Stops background work, unregisters `group` from every broker, closes connections.
    pub async fn shutdown(&self, group: &str) {
        let _ = self.stop.send(true);
        let addrs: Vec<String> = self
            .brokers
            .read()
            .unwrap()
            .values()
            .flat_map(|ids| ids.values().cloned())
            .collect();
        for addr in addrs {
            if self.remoting.existing(&addr).is_some() {
                let cmd = header::unregister_client(&self.client_id, group);
                let _ = self
                    .remoting
                    .invoke(&addr, &cmd, self.config.api_timeout)
                    .await;
            }
        }
        self.remoting.close_all();
    }

    /// `shutdown` from any thread: blocks outside the runtime, runs in the background inside it.
    pub fn shutdown_blocking(self: &Arc<Self>, group: &str) {
        let _ = self.stop.send(true);
        if tokio::runtime::Handle::try_current().is_ok() {
            let this = Arc::clone(self);
            let group = group.to_string();
            runtime::handle().spawn(async move { this.shutdown(&group).await });
        } else {
            let timeout = self.config.api_timeout + Duration::from_millis(500);
            let _ = runtime::block_on_timeout(timeout, "shutdown", async {
                self.shutdown(group).await;
                Ok(())
            });
            self.remoting.close_all();
        }
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
