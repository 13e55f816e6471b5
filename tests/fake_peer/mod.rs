//! A scripted peer on loopback for connection-layer and client tests: read and write frames,
//! answer every request, fake send replies. Features are proven against the real broker
//! elsewhere; a fake peer is right for framing, timeouts and error paths.
#![allow(dead_code)]
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rmq::remoting::codec::{decode_frame, encode_frame};
use rmq::remoting::command::{RemotingCommand, SerializeType};
use rmq::remoting::connection::Connection;
use rmq::remoting::processor::UnsupportedProcessor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn rt() -> tokio::runtime::Handle {
    rmq::runtime::handle()
}

pub async fn read_cmd(s: &mut TcpStream, buf: &mut BytesMut) -> Option<RemotingCommand> {
    loop {
        if let Some(cmd) = decode_frame(buf).unwrap() {
            return Some(cmd);
        }
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

pub async fn write_cmd(s: &mut TcpStream, cmd: &RemotingCommand, ser: SerializeType) {
    s.write_all(&encode_frame(cmd, ser).unwrap()).await.unwrap();
}

pub fn reply(req: &RemotingCommand, code: i32) -> RemotingCommand {
    RemotingCommand::response_to(req, code, Some(format!("echo {}", req.code)))
}

/// Reads every request on `s` until EOF and writes back `answer(request)` when it is Some.
pub async fn answer_each(
    s: &mut TcpStream,
    mut answer: impl FnMut(RemotingCommand) -> Option<RemotingCommand>,
) {
    let mut buf = BytesMut::new();
    while let Some(req) = read_cmd(s, &mut buf).await {
        if let Some(r) = answer(req) {
            write_cmd(s, &r, SerializeType::Json).await;
        }
    }
}

/// Accepts connections for the rest of the test, answering each as `answer_each` does.
pub fn serve<F>(l: TcpListener, answer: F)
where
    F: Fn(RemotingCommand) -> Option<RemotingCommand> + Clone + Send + 'static,
{
    rt().spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move { answer_each(&mut s, answer).await });
        }
    });
}

/// A broker's answer to SEND_MESSAGE_V2: `code`, with the store position in the header.
pub fn send_reply(req: &RemotingCommand, code: i32, queue_offset: i64) -> RemotingCommand {
    let mut r = reply(req, code);
    r.ext_fields = vec![
        (
            Cow::Borrowed("msgId"),
            format!("7F00000100002A9F{queue_offset:016}"),
        ),
        (Cow::Borrowed("queueId"), req.ext("e").unwrap().to_string()),
        (Cow::Borrowed("queueOffset"), queue_offset.to_string()),
    ]
    .into();
    r
}

pub async fn connect(addr: &str) -> Arc<Connection> {
    Connection::connect(
        &rmq::runtime::shared().unwrap(),
        addr,
        Duration::from_secs(1),
        SerializeType::Json,
        Arc::new(UnsupportedProcessor),
    )
    .await
    .unwrap()
}

pub async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}
