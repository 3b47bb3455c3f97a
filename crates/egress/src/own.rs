//! The coordinator host's own addresses. A sandbox may not reach them even
//! when they are public, since the coordinator (and whatever else the host
//! runs) listens on them.

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::Ipv6Addr;

/// The host's addresses from procfs; a missing file means none known.
pub(crate) fn read() -> Vec<IpAddr> {
    let fib_trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let if_inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let mut own = parse_fib_trie(&fib_trie);
    own.extend(parse_if_inet6(&if_inet6));
    own
}

/// The IPv4 addresses of `/32 host LOCAL` leaves: the kernel's local routes,
/// one per address the host owns. Each appears in both the Main and the Local
/// table, so the result is deduplicated.
fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut own = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|--") {
            leaf = addr.trim().parse().ok();
            continue;
        }
        let mut words = line.split_whitespace();
        let local = (words.next(), words.next(), words.next())
            == (Some("/32"), Some("host"), Some("LOCAL"));
        if let (true, Some(addr)) = (local, leaf) {
            let addr = IpAddr::V4(addr);
            if !own.contains(&addr) {
                own.push(addr);
            }
        }
    }
    own
}

/// The IPv6 addresses in `/proc/net/if_inet6`: 32 hex digits first on each line.
fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|hex| hex.len() == 32)
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(|bits| IpAddr::V6(Ipv6Addr::from(bits)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 203.0.113.0/24 2 0 2
        |-- 203.0.113.0
           /24 link UNICAST
        |-- 203.0.113.7
           /32 host LOCAL tos=4
        |-- 203.0.113.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 203.0.113.7
        /32 host LOCAL
";

    const IF_INET6: &str = "\
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000042 02 40 00 80     eth0
fe80000000000000021122fffe334455 02 40 20 80     eth0
garbage
";

    #[test]
    fn local_routes_and_interface_addresses_are_read() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_fib_trie(FIB_TRIE),
            [ip("127.0.0.1"), ip("203.0.113.7")]
        );
        assert_eq!(
            parse_if_inet6(IF_INET6),
            [
                ip("::1"),
                ip("2001:db8::42"),
                ip("fe80::211:22ff:fe33:4455")
            ]
        );
        assert!(parse_fib_trie("").is_empty());
        assert!(parse_if_inet6("").is_empty());
    }
}
