//! Client message ids (UNIQ_KEY), built like Java's `MessageClientIDSetter`:
//! hex(ip[4|16] + pid[2] + random[4]) + hex(ms since the start of this month[4] + counter[2]).
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use once_cell::sync::Lazy;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

pub fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex_upper(&mut s, bytes);
    s
}

fn push_hex_upper(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// First non-loopback, non-link-local IPv4 of this host; else any non-loopback IPv6; else
/// 127.0.0.1. Used for the client id and message ids.
pub fn local_ip() -> IpAddr {
    static IP: Lazy<IpAddr> = Lazy::new(find_local_ip);
    *IP
}

fn find_local_ip() -> IpAddr {
    let mut v4: Option<IpAddr> = None;
    let mut v6: Option<IpAddr> = None;
    // SAFETY: getifaddrs fills a linked list we walk read-only and free with freeifaddrs.
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) == 0 {
            let mut cur = head;
            while !cur.is_null() {
                let addr = (*cur).ifa_addr;
                if !addr.is_null() {
                    match (*addr).sa_family as i32 {
                        libc::AF_INET => {
                            let sin = &*(addr as *const libc::sockaddr_in);
                            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                            if !ip.is_loopback() && !ip.is_link_local() && v4.is_none() {
                                v4 = Some(ip.into());
                            }
                        }
                        libc::AF_INET6 => {
                            let sin6 = &*(addr as *const libc::sockaddr_in6);
                            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                            if !ip.is_loopback()
                                && (ip.segments()[0] & 0xffc0) != 0xfe80
                                && v6.is_none()
                            {
                                v6 = Some(ip.into());
                            }
                        }
                        _ => {}
                    }
                }
                cur = (*cur).ifa_next;
            }
            libc::freeifaddrs(head);
        }
    }
    v4.or(v6).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

struct MonthWindow {
    start_ms: i64,
    next_start_ms: i64,
}

static PREFIX: Lazy<String> = Lazy::new(|| {
    let mut raw = Vec::with_capacity(22);
    match local_ip() {
        IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
    }
    raw.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
    // Java puts the class loader's hash here; any per-process random number serves the purpose.
    raw.extend_from_slice(&random_u32().to_be_bytes());
    hex_upper(&raw)
});
static COUNTER: AtomicU16 = AtomicU16::new(0);
static WINDOW: Lazy<Mutex<MonthWindow>> = Lazy::new(|| Mutex::new(month_window(now_ms())));

pub fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Start of the current and next month in local time, in epoch ms.
fn month_window(now: i64) -> MonthWindow {
    // SAFETY: localtime_r/mktime only read and write the tm we own.
    unsafe {
        let t = (now / 1000) as libc::time_t;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm.tm_mday = 1;
        tm.tm_hour = 0;
        tm.tm_min = 0;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        let start = libc::mktime(&mut tm) as i64 * 1000;
        tm.tm_mon += 1;
        tm.tm_isdst = -1;
        let next = libc::mktime(&mut tm) as i64 * 1000;
        MonthWindow {
            start_ms: start,
            next_start_ms: next,
        }
    }
}

/// Length of this process's UNIQ_KEYs: 32 on an IPv4 host, 56 on an IPv6 one.
pub fn uniq_id_len() -> usize {
    PREFIX.len() + 12
}

/// A new UNIQ_KEY: 32 hex characters on an IPv4 host.
pub fn new_uniq_id() -> String {
    let now = now_ms();
    let since_month_start = {
        let mut w = WINDOW.lock().unwrap();
        if now >= w.next_start_ms {
            *w = month_window(now);
        }
        (now - w.start_ms).max(0) as i32
    };
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tail = [0u8; 6];
    tail[..4].copy_from_slice(&since_month_start.to_be_bytes());
    tail[4..].copy_from_slice(&counter.to_be_bytes());
    let mut id = String::with_capacity(PREFIX.len() + 12);
    id.push_str(&PREFIX);
    push_hex_upper(&mut id, &tail);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniq_ids_have_java_shape_and_differ() {
        let a = new_uniq_id();
        let b = new_uniq_id();
        assert_ne!(a, b);
        let expected_len = if local_ip().is_ipv4() { 32 } else { 56 };
        assert_eq!(a.len(), expected_len);
        assert!(a.bytes().all(|c| HEX.contains(&c)));
        let raw = hex_decode(&a).unwrap();
        let ip_len = raw.len() - 12;
        assert_eq!(
            &raw[ip_len..ip_len + 2],
            &(std::process::id() as u16).to_be_bytes()
        );
        // the time field is ms since this month began; like Java's (int) cast it wraps after
        // ~24.8 days, so read it as unsigned: under 31 days
        let t = u32::from_be_bytes(raw[ip_len + 6..ip_len + 10].try_into().unwrap());
        assert!(t < 31 * 24 * 3600 * 1000);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_upper(&[0x00, 0xAB, 0x7f]), "00AB7F");
        assert_eq!(hex_decode("00ab7F").unwrap(), vec![0, 0xab, 0x7f]);
        assert!(hex_decode("0").is_none());
        assert!(hex_decode("zz").is_none());
    }
}
