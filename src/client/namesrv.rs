//! Name server addresses with failover: requests go to the last address that answered; on a
//! transport failure the next one is tried. The list may be replaced (name server lookup).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::protocol::code::response;
use crate::protocol::header;
use crate::protocol::route::TopicRouteData;
use crate::remoting::RemotingClient;

pub struct NameServerList {
    addrs: RwLock<Arc<Vec<String>>>,
    current: AtomicUsize,
}

impl NameServerList {
    /// `addrs` may be empty until `replace` fills it.
    pub fn new(addrs: Vec<String>) -> NameServerList {
        let start = crate::protocol::ids::random_u32() as usize % addrs.len().max(1);
        NameServerList {
            addrs: RwLock::new(Arc::new(addrs)),
            current: AtomicUsize::new(start),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.read().is_empty()
    }

    pub fn addrs(&self) -> Arc<Vec<String>> {
        Arc::clone(&self.addrs.read())
    }

    /// Replaces the list when it differs (the order counts); true when it changed.
    pub fn replace(&self, addrs: Vec<String>) -> bool {
        let mut current = self.addrs.write();
        if **current == addrs || addrs.is_empty() {
            return false;
        }
        let start = crate::protocol::ids::random_u32() as usize % addrs.len();
        *current = Arc::new(addrs);
        self.current.store(start, Ordering::Relaxed);
        true
    }

    pub async fn query_route(
        &self,
        remoting: &RemotingClient,
        topic: &str,
        deadline: Instant,
    ) -> Result<TopicRouteData> {
        let addrs = self.addrs();
        if addrs.is_empty() {
            return Err(Error::InvalidState(
                "no name server address known yet (the name server lookup has not answered)".into(),
            ));
        }
        let start = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..addrs.len() {
            let idx = (start + i) % addrs.len();
            let addr = &addrs[idx];
            let cmd = header::get_route_info(topic);
            match remoting.invoke(addr, &cmd, deadline).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::codec::{decode_frame, encode_frame};
    use crate::remoting::command::SerializeType;
    use crate::remoting::processor::UnsupportedProcessor;
    use crate::remoting::RemotingCommand;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn fails_over_to_the_next_address_and_sticks_to_it() {
        crate::runtime::handle().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let live = l.local_addr().unwrap().to_string();
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = bytes::BytesMut::new();
                loop {
                    while let Some(req) = decode_frame(&mut buf).unwrap() {
                        let resp = RemotingCommand::response_to(&req, 17, Some("no route".into()));
                        s.write_all(&encode_frame(&resp, SerializeType::Json).unwrap())
                            .await
                            .unwrap();
                    }
                    if s.read_buf(&mut buf).await.unwrap() == 0 {
                        return;
                    }
                }
            });
            let list = NameServerList {
                addrs: RwLock::new(Arc::new(vec!["127.0.0.1:1".into(), live])),
                current: AtomicUsize::new(0),
            };
            let client = RemotingClient::new(
                crate::runtime::shared().unwrap(),
                Duration::from_secs(1),
                Arc::new(UnsupportedProcessor),
            );
            let soon = || Instant::now() + Duration::from_secs(1);
            let err = list.query_route(&client, "T", soon()).await.unwrap_err();
            assert!(matches!(err, Error::RouteNotFound { .. }), "{err}");
            assert_eq!(list.current.load(Ordering::Relaxed), 1);
            // all dead: the transport error comes back
            let dead = NameServerList::new(vec!["127.0.0.1:1".into()]);
            let err = dead.query_route(&client, "T", soon()).await.unwrap_err();
            assert!(matches!(err, Error::Connect { .. }), "{err}");
        });
    }
}
