//! Name server addresses with failover: requests go to the last address that answered; on a
//! transport failure the next one is tried.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::header;
use crate::protocol::route::TopicRouteData;
use crate::remoting::RemotingClient;

pub struct NameServerList {
    addrs: Vec<String>,
    current: AtomicUsize,
}

impl NameServerList {
    pub fn new(addrs: Vec<String>) -> NameServerList {
        assert!(!addrs.is_empty(), "validated by the config");
        let start = crate::protocol::ids::random_u32() as usize % addrs.len();
        NameServerList {
            addrs,
            current: AtomicUsize::new(start),
        }
    }

    pub async fn query_route(
        &self,
        remoting: &RemotingClient,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicRouteData> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..self.addrs.len() {
            let idx = (start + i) % self.addrs.len();
            let addr = &self.addrs[idx];
            let cmd = header::get_route_info(topic);
            match remoting.invoke(addr, &cmd, timeout).await {
                Ok(resp) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return match resp.code {
                        response::SUCCESS => TopicRouteData::from_json(&resp.body),
                        response::TOPIC_NOT_EXIST => Err(Error::RouteNotFound {
                            topic: topic.to_string(),
                            reason: format!("name server {addr}: {}", resp.remark_str()),
                        }),
                        code => Err(Error::broker(code, resp.remark_str(), addr.as_str())),
                    };
                }
                Err(e) if e.is_transport() => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one address was tried"))
    }
}
