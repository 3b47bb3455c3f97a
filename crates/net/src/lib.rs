//! Which network addresses Dockhand may reach on a user's behalf.
//!
//! A URL a user gives (a repository, later a notification endpoint) must not
//! point the coordinator at itself or at the private network it runs in. The
//! rule is one function, [`refusal`], over the address after every alternative
//! spelling (IPv4-mapped, NAT64, 6to4) is unwrapped; [`Resolver`] resolves a
//! name and checks every address it gets, so callers connect only to an
//! address that passed.

mod resolve;

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::Ipv6Addr;

pub use ipnet::IpNet;
pub use resolve::Checked;
pub use resolve::NetError;
pub use resolve::Resolver;

/// Why an address is not reachable for users, or `None` when it is public.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => refusal_v4(v4),
            None => refusal_v6(v6),
        },
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        // 100.64.0.0/10, carrier-grade NAT: private to the provider's network.
        Some("private")
    } else if a == 192 && b == 0 && c == 0 || a == 198 && (18..20).contains(&b) {
        Some("reserved")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if first & 0xfe00 == 0xfc00 {
        // fc00::/7, unique local.
        Some("private")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xffc0 == 0xfec0 {
        // fec0::/10, the old site-local range.
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv6 one that reaches it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and
/// 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// What may be reached: public addresses, plus any the operator lists.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// Addresses or blocks reachable even though [`refusal`] names them.
    pub allow: Vec<IpNet>,
    /// Every address is reachable (`allow_private_remotes`).
    pub allow_all: bool,
}

impl AddressPolicy {
    /// Why `ip` may not be reached under this policy, or `None`.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_all || self.allow.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        refusal(ip)
    }
}

/// Parses an address or CIDR block (`10.0.0.5`, `10.0.0.0/8`, `::1`).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an address or a CIDR block"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(s: &str) -> Option<&'static str> {
        refusal(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_link_local_are_refused_in_every_spelling() {
        for (addr, reason) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fc12::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
        ] {
            assert_eq!(why(addr), Some(reason), "{addr}");
        }
        for public in [
            "93.184.216.34",
            "140.82.112.3",
            "2606:4700::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(why(public), None, "{public}");
        }
    }

    #[test]
    fn the_policy_lets_listed_blocks_through() {
        let policy = AddressPolicy {
            allow: vec![parse_net("127.0.0.0/8").unwrap(), parse_net("::1").unwrap()],
            allow_all: false,
        };
        assert_eq!(policy.refusal("127.0.0.7".parse().unwrap()), None);
        assert_eq!(policy.refusal("::1".parse().unwrap()), None);
        assert_eq!(policy.refusal("10.0.0.1".parse().unwrap()), Some("private"));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }
}
