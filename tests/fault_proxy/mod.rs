//! A TCP fault proxy for tests: it sits between the client and a real name server or broker,
//! forwards whole remoting frames, and on command delays them, drops them (a blackhole that
//! accepts and reads but never answers), cuts a response frame short, resets the connections
//! (RST, SO_LINGER 0), or answers requests with GO_AWAY (1500) the way a broker that is shutting
//! down gracefully does.
//!
//! The frame parsing here is written for the proxy on purpose, not borrowed from the client
//! under test: a 4-byte big-endian frame length, then a 4-byte header length whose high byte is
//! the header's serialization (0 JSON, 1 binary), the header, the body.
//!
//! Route answers: a client asks the name server for routes and then dials the broker addresses
//! they name. A name-server proxy made with `rewriting` replaces those addresses in the body of
//! every GET_ROUTEINFO_BY_TOPIC (105) answer with the broker proxy's, so every broker connection
//! of the client runs through the broker proxy.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
const GO_AWAY: i32 = 1500;
const FLAG_RESPONSE: i32 = 1;
const FLAG_ONEWAY: i32 = 2;
/// How often blocked reads look at the link's state.
const POLL: Duration = Duration::from_millis(20);

/// The fds the proxies of this process hold, so a test can count the client's own apart.
static PROXY_FDS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Whether `fd` is one of the proxies' sockets.
pub fn is_proxy_fd(fd: RawFd) -> bool {
    PROXY_FDS.lock().unwrap().contains(&fd)
}

fn own_fds(fds: &[RawFd]) {
    PROXY_FDS.lock().unwrap().extend_from_slice(fds);
}

fn disown_fds(fds: &[RawFd]) {
    PROXY_FDS.lock().unwrap().retain(|f| !fds.contains(f));
}

/// What the proxy does with the frames of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every frame as it came.
    Pass,
    /// Holds every frame, both ways, for this many ms before forwarding it.
    Delay(u64),
    /// Reads and discards everything, both ways; the connections stay open.
    Blackhole,
}

/// The header fields the proxy looks at.
#[derive(Debug, Clone, Copy)]
struct Head {
    code: i32,
    opaque: i32,
    flag: i32,
}

pub struct FaultProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
}

struct Inner {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    /// Cut the next response frame after this many bytes, then close (true) or stall (false).
    truncate: Mutex<Option<bool>>,
    /// Route answers: address -> address, as "host:port" text.
    rewrite: Vec<(String, String)>,
    links: Mutex<Vec<Arc<Link>>>,
    stop: AtomicBool,
    accepted: AtomicUsize,
    truncated: AtomicUsize,
    go_aways: AtomicUsize,
}

/// One client connection and the proxy's connection upstream.
struct Link {
    client: TcpStream,
    server: TcpStream,
    /// Frames to the client are written whole under this lock (responses from upstream and
    /// GO_AWAY answers made here).
    to_client: Mutex<()>,
    /// Request opaque -> code, to recognise the answers to route queries.
    codes: Mutex<HashMap<i32, i32>>,
    /// Every request from now on is answered GO_AWAY here instead of going upstream.
    going_away: AtomicBool,
    /// Cut short: both ways are read and discarded from now on.
    stalled: AtomicBool,
    /// The pumps stop; the last one out closes the sockets.
    dead: AtomicBool,
}

impl FaultProxy {
    /// A proxy on a free loopback port, forwarding to `upstream`.
    pub fn start(upstream: &str) -> FaultProxy {
        Self::rewriting(upstream, Vec::new())
    }

    /// A proxy to a name server whose route answers name `(from, to)` addresses swapped.
    pub fn rewriting(upstream: &str, rewrite: Vec<(String, String)>) -> FaultProxy {
        let upstream: SocketAddr = upstream.parse().expect("upstream is ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        own_fds(&[listener.as_raw_fd()]);
        let inner = Arc::new(Inner {
            upstream,
            mode: Mutex::new(Mode::Pass),
            truncate: Mutex::new(None),
            rewrite,
            links: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            truncated: AtomicUsize::new(0),
            go_aways: AtomicUsize::new(0),
        });
        let i = Arc::clone(&inner);
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(listener, i))
            .unwrap();
        FaultProxy {
            addr,
            inner,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// The next response frame from upstream reaches the client only in part (half of it);
    /// then the connection is closed (`close`) or stalls: everything after is read and
    /// discarded both ways, and nothing more reaches the client.
    pub fn truncate_next_response(&self, close: bool) {
        *self.inner.truncate.lock().unwrap() = Some(close);
    }

    /// Resets every open connection (RST to the client: SO_LINGER 0, then close). New
    /// connections are accepted as before.
    pub fn reset_all(&self) {
        let links: Vec<Arc<Link>> = self.inner.links.lock().unwrap().drain(..).collect();
        for l in links {
            l.reset();
        }
    }

    /// Every connection open now answers each request from here on with GO_AWAY, as a broker
    /// that shuts down gracefully does; connections opened later pass.
    pub fn go_away(&self) {
        for l in self.inner.links.lock().unwrap().iter() {
            l.going_away.store(true, Ordering::Release);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::Acquire)
    }

    /// Connections open now.
    pub fn open_links(&self) -> usize {
        let mut links = self.inner.links.lock().unwrap();
        links.retain(|l| !l.dead.load(Ordering::Acquire));
        links.len()
    }

    /// Response frames cut short so far.
    pub fn truncated(&self) -> usize {
        self.inner.truncated.load(Ordering::Acquire)
    }

    /// GO_AWAY answers sent so far.
    pub fn go_aways(&self) -> usize {
        self.inner.go_aways.load(Ordering::Acquire)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let links: Vec<Arc<Link>> = self.inner.links.lock().unwrap().drain(..).collect();
        for l in links {
            l.kill();
        }
    }
}

fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    let fd = listener.as_raw_fd();
    accept_until_stopped(&listener, &inner);
    disown_fds(&[fd]);
}

fn accept_until_stopped(listener: &TcpListener, inner: &Arc<Inner>) {
    while !inner.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((client, _)) => {
                inner.accepted.fetch_add(1, Ordering::AcqRel);
                // A blackhole accepts and reads too: the upstream dial still happens, so the
                // client sees a connection that takes requests and answers none.
                own_fds(&[client.as_raw_fd()]);
                let server =
                    match TcpStream::connect_timeout(&inner.upstream, Duration::from_secs(3)) {
                        Ok(s) => s,
                        Err(_) => {
                            disown_fds(&[client.as_raw_fd()]);
                            continue; // dropping `client` closes it: upstream is down
                        }
                    };
                own_fds(&[server.as_raw_fd()]);
                for s in [&client, &server] {
                    s.set_nonblocking(false).unwrap();
                    s.set_nodelay(true).unwrap();
                    s.set_read_timeout(Some(POLL)).unwrap();
                }
                let link = Arc::new(Link {
                    client,
                    server,
                    to_client: Mutex::new(()),
                    codes: Mutex::new(HashMap::new()),
                    going_away: AtomicBool::new(false),
                    stalled: AtomicBool::new(false),
                    dead: AtomicBool::new(false),
                });
                let mut links = inner.links.lock().unwrap();
                links.retain(|l| !l.dead.load(Ordering::Acquire));
                links.push(Arc::clone(&link));
                drop(links);
                for upward in [true, false] {
                    let (l, i) = (Arc::clone(&link), Arc::clone(inner));
                    std::thread::Builder::new()
                        .name("fault-proxy-pump".into())
                        .spawn(move || {
                            if upward {
                                pump_up(&l, &i)
                            } else {
                                pump_down(&l, &i)
                            }
                            l.kill();
                        })
                        .unwrap();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        disown_fds(&[self.client.as_raw_fd(), self.server.as_raw_fd()]);
    }
}

impl Link {
    /// Both pumps stop and the sockets close (an orderly FIN).
    fn kill(&self) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.server.shutdown(Shutdown::Both);
        }
    }

    /// RST to the client: with SO_LINGER 0 the close aborts the connection. The close comes
    /// when the last pump lets go of the link (within `POLL`).
    fn reset(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket this link owns, with a linger struct that outlives it.
        unsafe {
            libc::setsockopt(
                self.client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        self.dead.store(true, Ordering::Release);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn write_client(&self, bytes: &[u8]) -> io::Result<()> {
        let _g = self.to_client.lock().unwrap();
        (&self.client).write_all(bytes)
    }
}

/// Reads one whole frame (length prefix included), or None when the link ends.
fn read_frame(mut s: &TcpStream, link: &Link) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    read_full(&mut s, &mut len, link)?;
    let n = i32::from_be_bytes(len);
    if !(4..=64 << 20).contains(&n) {
        return None;
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&len);
    read_full(&mut s, &mut frame[4..], link)?;
    Some(frame)
}

fn read_full(s: &mut &TcpStream, buf: &mut [u8], link: &Link) -> Option<()> {
    let mut got = 0;
    while got < buf.len() {
        if link.dead.load(Ordering::Acquire) {
            return None;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return None,
        }
    }
    Some(())
}

/// The header fields of a frame (with its length prefix).
fn head(frame: &[u8]) -> Option<Head> {
    let ht = frame.get(4..8)?;
    let hlen = u32::from_be_bytes([0, ht[1], ht[2], ht[3]]) as usize;
    let h = frame.get(8..8 + hlen)?;
    match ht[0] {
        1 => Some(Head {
            code: i16::from_be_bytes([h[0], h[1]]) as i32,
            opaque: i32::from_be_bytes(h.get(5..9)?.try_into().ok()?),
            flag: i32::from_be_bytes(h.get(9..13)?.try_into().ok()?),
        }),
        0 => {
            let text = std::str::from_utf8(h).ok()?;
            Some(Head {
                code: json_int(text, "code")?,
                opaque: json_int(text, "opaque")?,
                flag: json_int(text, "flag").unwrap_or(0),
            })
        }
        _ => None,
    }
}

/// The integer after `"key":` in a flat JSON header.
fn json_int(text: &str, key: &str) -> Option<i32> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A GO_AWAY response to `opaque`, with a JSON header.
fn go_away_frame(opaque: i32) -> Vec<u8> {
    let header = format!(
        "{{\"code\":{GO_AWAY},\"extFields\":{{}},\"flag\":{FLAG_RESPONSE},\"language\":\"JAVA\",\
         \"opaque\":{opaque},\"remark\":\"please go away\",\"serializeTypeCurrentRPC\":\"JSON\",\
         \"version\":479}}"
    );
    let mut f = Vec::with_capacity(8 + header.len());
    f.extend_from_slice(&(4 + header.len() as i32).to_be_bytes());
    f.extend_from_slice(&(header.len() as u32).to_be_bytes()); // high byte 0: JSON
    f.extend_from_slice(header.as_bytes());
    f
}

/// `frame` with every `"from"` in its body replaced by `"to"`, the length prefix adjusted.
fn rewrite_body(frame: Vec<u8>, rewrite: &[(String, String)]) -> Vec<u8> {
    let hlen = u32::from_be_bytes([0, frame[5], frame[6], frame[7]]) as usize;
    let split = 8 + hlen;
    let mut body = frame[split..].to_vec();
    for (from, to) in rewrite {
        body = replace_all(
            &body,
            format!("\"{from}\"").as_bytes(),
            format!("\"{to}\"").as_bytes(),
        );
    }
    let mut out = Vec::with_capacity(split + body.len());
    out.extend_from_slice(&((split - 4 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&frame[4..split]);
    out.extend_from_slice(&body);
    out
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn mode(inner: &Inner) -> Mode {
    *inner.mode.lock().unwrap()
}

/// Client to upstream.
fn pump_up(link: &Link, inner: &Inner) {
    while let Some(frame) = read_frame(&link.client, link) {
        if link.stalled.load(Ordering::Acquire) {
            continue;
        }
        let h = head(&frame);
        match mode(inner) {
            Mode::Blackhole => continue,
            Mode::Delay(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Mode::Pass => {}
        }
        if let Some(h) = h {
            let request = h.flag & FLAG_RESPONSE == 0;
            if request && link.going_away.load(Ordering::Acquire) {
                if h.flag & FLAG_ONEWAY == 0 {
                    inner.go_aways.fetch_add(1, Ordering::AcqRel);
                    if link.write_client(&go_away_frame(h.opaque)).is_err() {
                        return;
                    }
                }
                continue;
            }
            if request && h.code == GET_ROUTEINFO_BY_TOPIC && !inner.rewrite.is_empty() {
                link.codes.lock().unwrap().insert(h.opaque, h.code);
            }
        }
        if (&link.server).write_all(&frame).is_err() {
            return;
        }
    }
}

/// Upstream to client.
fn pump_down(link: &Link, inner: &Inner) {
    while let Some(mut frame) = read_frame(&link.server, link) {
        if link.stalled.load(Ordering::Acquire) {
            continue;
        }
        match mode(inner) {
            Mode::Blackhole => continue,
            Mode::Delay(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Mode::Pass => {}
        }
        let h = head(&frame);
        if let Some(h) = h.filter(|h| h.flag & FLAG_RESPONSE != 0) {
            let route =
                link.codes.lock().unwrap().remove(&h.opaque) == Some(GET_ROUTEINFO_BY_TOPIC);
            if route {
                frame = rewrite_body(frame, &inner.rewrite);
            }
            let cut = inner.truncate.lock().unwrap().take();
            if let Some(close) = cut {
                inner.truncated.fetch_add(1, Ordering::AcqRel);
                let _ = link.write_client(&frame[..frame.len() / 2]);
                if close {
                    return; // the pump's exit kills the link
                }
                link.stalled.store(true, Ordering::Release);
                continue;
            }
        }
        if link.write_client(&frame).is_err() {
            return;
        }
    }
}
