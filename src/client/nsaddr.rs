//! Name server addresses from an HTTP endpoint (`client.name-server-url`), as the Java client's
//! name-server lookup (`rocketmq.namesrv.domain`, `http://<domain>:8080/rocketmq/nsaddr`): a GET
//! whose body's first line is `host:port;host:port`. Fetched before the first route query and
//! then every `client.name-server-url-poll-interval` (2 minutes by default, as in Java).
//!
//! The endpoint is plain-text HTTP/1.1 with one small body, so this is a minimal GET over a TCP
//! stream (Connection: close; Content-Length, chunked or read-to-end bodies; at most 64 KiB)
//! rather than an HTTP client crate with its own runtime, TLS and connection pools. No https, no
//! redirects, no proxies: Java's lookup uses none either.
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::parse_name_servers;
use crate::error::{Error, Result};
use crate::remoting::addr::ip_socket_addr;

const MAX_RESPONSE: usize = 64 * 1024;

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServerUrl {
    /// host:port to dial (the port defaults to 80)
    addr: String,
    /// what the Host header says: host[:port] as written
    authority: String,
    path: String,
}

impl NameServerUrl {
    pub fn parse(url: &str) -> Result<NameServerUrl> {
        let bad = |why: &str| Error::InvalidArgument(format!("name server URL '{url}': {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("the path has spaces or control characters"));
        }
        // host, [v6], host:port or [v6]:port
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let addr = if has_port {
            let (host, port) = authority.rsplit_once(':').expect("has a colon");
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number"));
            }
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(NameServerUrl {
            addr,
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// GETs the list. An empty body is `Ok(None)` (keep the list you have, as Java does).
    pub async fn fetch(&self, deadline: Instant) -> Result<Option<Vec<String>>> {
        let io_err = |e: std::io::Error| Error::Connect {
            addr: self.addr.clone(),
            reason: format!("name server lookup: {e}"),
        };
        let exchange = async {
            let mut stream = match ip_socket_addr(&self.addr) {
                Some(ip) => tokio::net::TcpStream::connect(ip).await,
                None => tokio::net::TcpStream::connect(self.addr.as_str()).await,
            }
            .map_err(io_err)?;
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\nUser-Agent: rmq\r\nConnection: close\r\n\r\n",
                self.path, self.authority
            );
            stream.write_all(request.as_bytes()).await.map_err(io_err)?;
            let mut response = Vec::new();
            let mut limited = (&mut stream).take(MAX_RESPONSE as u64 + 1);
            limited.read_to_end(&mut response).await.map_err(io_err)?;
            if response.len() > MAX_RESPONSE {
                return Err(Error::Protocol(format!(
                    "name server lookup at {}: response over {MAX_RESPONSE} bytes",
                    self.addr
                )));
            }
            Ok(response)
        };
        let response = tokio::time::timeout_at(deadline.into(), exchange)
            .await
            .map_err(|_| {
                Error::Timeout(format!("name server lookup at {} timed out", self.addr))
            })??;
        let body = http_body(&response).map_err(|why| {
            Error::Protocol(format!("name server lookup at {}: {why}", self.addr))
        })?;
        parse_body(&body)
    }
}

/// The body of a `200` response.
fn http_body(response: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let end = find(response, b"\r\n\r\n").ok_or("no complete HTTP header")?;
    let head = std::str::from_utf8(&response[..end]).map_err(|_| "header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split(' ').nth(1).unwrap_or("");
    if !status.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: '{status}'"));
    }
    if code != "200" {
        return Err(format!("HTTP status '{status}'"));
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
            }
        }
    }
    let body = &response[end + 4..];
    if chunked {
        return unchunk(body);
    }
    match length {
        Some(n) if n > body.len() => Err("body shorter than its Content-Length".into()),
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
    }
}

fn unchunk(mut body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(body, b"\r\n").ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or("bad chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first line, `host:port;host:port`; blank means "no news".
fn parse_body(body: &[u8]) -> Result<Option<Vec<String>>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::Protocol("name server lookup: body is not UTF-8".into()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    parse_name_servers(line)
        .map(Some)
        .map_err(|e| Error::Protocol(format!("name server lookup: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = NameServerUrl::parse("http://jmenv.tbsite.net:8080/rocketmq/nsaddr").unwrap();
        assert_eq!(u.addr, "jmenv.tbsite.net:8080");
        assert_eq!(u.path, "/rocketmq/nsaddr");
        let u = NameServerUrl::parse("http://h").unwrap();
        assert_eq!((u.addr.as_str(), u.path.as_str()), ("h:80", "/"));
        let u = NameServerUrl::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(u.addr, "[::1]:8080");
        assert_eq!(
            NameServerUrl::parse("http://[::1]/x").unwrap().addr,
            "[::1]:80"
        );
        for bad in [
            "https://h/x",
            "h:80/x",
            "http:///x",
            "http://h:x/",
            "http://h/a b",
        ] {
            assert!(NameServerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n127.0.0.1:9876;h2:9876\r\nxx";
        assert_eq!(http_body(ok).unwrap(), b"127.0.0.1:9876;h2:9876\r\nxx");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\na:1;b\r\n3\r\n:22\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).unwrap(), b"a:1;b:22");
        let to_end = b"HTTP/1.0 200 OK\r\n\r\na:1\n";
        assert_eq!(http_body(to_end).unwrap(), b"a:1\n");
        assert!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(http_body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(http_body(b"SSH-2.0\r\n\r\n").is_err());

        assert_eq!(
            parse_body(b" a:1;b:2 \nignored").unwrap(),
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert_eq!(parse_body(b"\n").unwrap(), None);
        assert!(parse_body(b"not an address").is_err());
    }
}
