//! Remote addresses as the name server and brokers write them: `host:port`, where an IPv6 host
//! may come with brackets (`[::1]:9876`) or without (`::1:9876`, as brokers register
//! themselves). The port is always after the last colon.
use std::net::{IpAddr, SocketAddr};

/// The socket address of `addr` when its host is an IP literal; None for host names (they are
/// resolved when dialled) and for text that is not `host:port`.
pub fn ip_socket_addr(addr: &str) -> Option<SocketAddr> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_with_or_without_brackets() {
        let v6: SocketAddr = "[::1]:10911".parse().unwrap();
        assert_eq!(ip_socket_addr("[::1]:10911"), Some(v6));
        assert_eq!(ip_socket_addr("::1:10911"), Some(v6));
        assert_eq!(
            ip_socket_addr("fd00::2:9876"),
            Some("[fd00::2]:9876".parse().unwrap())
        );
        assert_eq!(
            ip_socket_addr("127.0.0.1:9876"),
            Some("127.0.0.1:9876".parse().unwrap())
        );
        assert_eq!(ip_socket_addr("localhost:9876"), None);
        assert_eq!(ip_socket_addr("127.0.0.1"), None);
        assert_eq!(ip_socket_addr("[::1]:x"), None);
    }
}
