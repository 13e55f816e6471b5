//! RemotingClient: one shared connection per remote address, created on demand and replaced after
//! it drops (reconnect), until `shutdown`, after which nothing is dialled again.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::acl::Credentials;
use super::command::{LanguageCode, RemotingCommand, SerializeType};
use super::connection::Connection;
use super::connection::RequestHandler;
use super::tls::Tls;
use crate::error::{Error, Result};
use crate::runtime::Shared;
use crate::single_flight::SingleFlight;

pub struct RemotingClient {
    shared: Arc<Shared>,
    conns: Mutex<HashMap<String, Arc<Connection>>>,
    /// Dials under way, one per address: concurrent callers share it, and a slow dial to one
    /// address holds up nobody who wants another.
    dialling: SingleFlight<String, Arc<Connection>>,
    connect_timeout: Duration,
    ser: SerializeType,
    handler: Arc<dyn RequestHandler>,
    shut_down: AtomicBool,
    /// Written in every request and response instead of the command's own, when set.
    language: Option<LanguageCode>,
    /// Addresses connected before: a new connection to one of them is a recovery (logged).
    connected_before: Mutex<HashSet<String>>,
    /// ACL credentials every request is signed with.
    credentials: Option<Arc<Credentials>>,
    /// TLS to every address, when set.
    tls: Option<Tls>,
}

impl RemotingClient {
    pub fn new(
        shared: Arc<Shared>,
        connect_timeout: Duration,
        handler: Arc<dyn RequestHandler>,
    ) -> Self {
        RemotingClient {
            shared,
            conns: Mutex::new(HashMap::new()),
            dialling: SingleFlight::default(),
            connect_timeout,
            // The binary header costs no JSON parse on either side, and the broker answers in
            // the request's serialization; requests whose code needs more than 16 bits go as JSON.
            ser: SerializeType::RocketMq,
            handler,
            shut_down: AtomicBool::new(false),
            language: None,
            connected_before: Mutex::new(HashSet::new()),
            credentials: None,
            tls: None,
        }
    }

    /// Requests are signed with `credentials` (ACL) and go over `tls`, when set.
    pub fn with_security(
        mut self,
        credentials: Option<Arc<Credentials>>,
        tls: Option<Tls>,
    ) -> Self {
        self.credentials = credentials;
        self.tls = tls;
        self
    }

    /// Every command goes out with `language` as its language code (client.language).
    pub fn with_language(mut self, language: LanguageCode) -> Self {
        self.language = Some(language);
        self
    }

    /// Requests go with JSON headers instead of binary ones.
    pub fn with_json_headers(mut self) -> Self {
        self.ser = SerializeType::Json;
        self
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// An open connection to `addr`, if one exists (no I/O). One whose peer said GO_AWAY is
    /// not handed out again.
    pub fn existing(&self, addr: &str) -> Option<Arc<Connection>> {
        let mut conns = self.conns.lock();
        match conns.get(addr) {
            Some(c) if !c.is_closed() && !c.is_going_away() => Some(Arc::clone(c)),
            Some(_) => {
                conns.remove(addr);
                None
            }
            None => None,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Error::Cancelled("the client is shut down".into()));
        }
        Ok(())
    }

    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>> {
        self.check_open()?;
        if let Some(c) = self.existing(addr) {
            return Ok(c);
        }
        let conn = self
            .dialling
            .run(&addr.to_string(), || async {
                match self.existing(addr) {
                    Some(c) => Ok(c),
                    None => self.dial(addr).await,
                }
            })
            .await?;
        // A connection shared from a finished dial may have closed since.
        if conn.is_closed() {
            return Err(Error::ConnectionClosed {
                addr: addr.to_string(),
                reason: "closed right after it was opened".into(),
            });
        }
        Ok(conn)
    }

    async fn dial(&self, addr: &str) -> Result<Arc<Connection>> {
        self.check_open()?;
        let handler = Arc::clone(&self.handler);
        let dialled = match &self.tls {
            None => {
                Connection::connect(&self.shared, addr, self.connect_timeout, self.ser, handler)
                    .await
            }
            Some(tls) => {
                tls.connect(&self.shared, addr, self.connect_timeout, self.ser, handler)
                    .await
            }
        };
        let conn = match dialled {
            Ok(c) => c,
            Err(e) => {
                crate::log_warn!("rmq::remoting", "{e}");
                return Err(e);
            }
        };
        if let Some(language) = self.language {
            conn.set_language(language);
        }
        if let Some(credentials) = &self.credentials {
            conn.set_credentials(Arc::clone(credentials));
        }
        self.conns
            .lock()
            .insert(addr.to_string(), Arc::clone(&conn));
        let first = self.connected_before.lock().insert(addr.to_string());
        if !first {
            crate::log_info!("rmq::remoting", "connection to {addr} re-established");
        } else {
            crate::log_debug!("rmq::remoting", "connected to {addr}");
        }
        // shutdown() may have run while we dialled; it must not leave this one open.
        if self.shut_down.load(Ordering::Acquire) {
            self.close_all();
            return Err(Error::Cancelled("the client is shut down".into()));
        }
        Ok(conn)
    }

    /// Connections in the table (open or not yet noticed closed), for tests and diagnostics.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Sends `cmd` to `addr` and waits for the response until `deadline`.
    ///
    /// A server shutting down gracefully answers GO_AWAY (1500) instead of processing: the
    /// connection leaves service (its other requests still finish on it) and the request goes
    /// once more, with a new opaque, over a new connection, as the Java client does; a second
    /// GO_AWAY is the answer.
    pub async fn invoke(
        &self,
        addr: &str,
        cmd: &RemotingCommand,
        deadline: Instant,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        let resp = conn.invoke(cmd, deadline).await?;
        if resp.code != crate::protocol::code::response::GO_AWAY {
            return Ok(resp);
        }
        conn.mark_going_away();
        drop(conn);
        let mut again = cmd.clone();
        again.opaque = super::command::next_opaque();
        let conn = self.connection(addr).await?;
        conn.invoke(&again, deadline).await
    }

    /// `invoke` driven on the calling thread (outside any async runtime).
    pub fn invoke_blocking(
        &self,
        addr: &str,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let deadline = Instant::now() + timeout;
        crate::runtime::block_on(&self.shared, "invoke", self.invoke(addr, cmd, deadline))?
    }

    pub async fn invoke_oneway(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        cmd.mark_oneway();
        let conn = self.connection(addr).await?;
        conn.invoke_oneway(&cmd)
    }

    /// Fails every request `owner` started with `Connection::invoke_with_callback` that is
    /// still waiting for its answer, with `error()`.
    pub fn cancel_callbacks(&self, owner: u64, error: impl Fn() -> Error) {
        let conns: Vec<Arc<Connection>> = self.conns.lock().values().cloned().collect();
        for c in conns {
            c.cancel_callbacks(owner, &error);
        }
    }

    /// Closes every connection; later calls reconnect.
    pub fn close_all(&self) {
        let conns: Vec<Arc<Connection>> = self.conns.lock().drain().map(|(_, c)| c).collect();
        for c in conns {
            c.close("client shut down");
        }
    }

    /// Closes every connection, failing their pending requests, and dials nothing after.
    pub fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.close_all();
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.close_all();
    }
}
