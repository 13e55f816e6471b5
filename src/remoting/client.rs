//! RemotingClient: one shared connection per remote address, created on demand and replaced after
//! it drops (reconnect), plus the three invocation styles.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::{RemotingCommand, SerializeType};
use super::connection::Connection;
use super::processor::RequestProcessor;
use crate::error::Result;
use crate::runtime;

pub struct RemotingClient {
    conns: Mutex<HashMap<String, Arc<Connection>>>,
    /// Serializes connection attempts so two callers never dial the same address twice.
    connecting: tokio::sync::Mutex<()>,
    connect_timeout: Duration,
    ser: SerializeType,
    processor: Arc<dyn RequestProcessor>,
}

impl RemotingClient {
    pub fn new(connect_timeout: Duration, processor: Arc<dyn RequestProcessor>) -> Self {
        RemotingClient {
            conns: Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            connect_timeout,
            ser: SerializeType::Json,
            processor,
        }
    }

    /// An open connection to `addr`, if one exists (no I/O).
    pub fn existing(&self, addr: &str) -> Option<Arc<Connection>> {
        let mut conns = self.conns.lock().unwrap();
        match conns.get(addr) {
            Some(c) if !c.is_closed() => Some(Arc::clone(c)),
            Some(_) => {
                conns.remove(addr);
                None
            }
            None => None,
        }
    }

    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>> {
        if let Some(c) = self.existing(addr) {
            return Ok(c);
        }
        let _turn = self.connecting.lock().await;
        if let Some(c) = self.existing(addr) {
            return Ok(c);
        }
        let conn = Connection::connect(
            addr,
            self.connect_timeout,
            self.ser,
            Arc::clone(&self.processor),
        )
        .await?;
        self.conns
            .lock()
            .unwrap()
            .insert(addr.to_string(), Arc::clone(&conn));
        Ok(conn)
    }

    /// Connection for a blocking caller: the existing one, or a connect driven by the runtime.
    pub fn connection_blocking(&self, addr: &str) -> Result<Arc<Connection>> {
        if let Some(c) = self.existing(addr) {
            return Ok(c);
        }
        runtime::block_on_timeout(self.connect_timeout * 2, "connect", self.connection(addr))
    }

    pub async fn invoke(
        &self,
        addr: &str,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection(addr).await?;
        conn.invoke(cmd, timeout).await
    }

    pub fn invoke_blocking(
        &self,
        addr: &str,
        cmd: &RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        let conn = self.connection_blocking(addr)?;
        conn.invoke_blocking(cmd, timeout)
    }

    pub async fn invoke_oneway(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        cmd.mark_oneway();
        let conn = self.connection(addr).await?;
        conn.invoke_oneway(&cmd)
    }

    pub fn invoke_oneway_blocking(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        cmd.mark_oneway();
        let conn = self.connection_blocking(addr)?;
        conn.invoke_oneway(&cmd)
    }

    /// Closes every connection; later calls reconnect.
    pub fn close_all(&self) {
        let conns: Vec<Arc<Connection>> =
            self.conns.lock().unwrap().drain().map(|(_, c)| c).collect();
        for c in conns {
            c.close("client shut down");
        }
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.close_all();
    }
}
