//! The allowlist: which names, on which ports, a sandbox may reach.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// The default allowlist: common package registries and source hosts.
pub const DEFAULT_DOMAINS: &[&str] = &[
    "crates.io",
    "static.crates.io",
    "index.crates.io",
    "static.rust-lang.org",
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "dl-cdn.alpinelinux.org",
    "github.com",
    "*.github.com",
    "*.githubusercontent.com",
    "codeload.github.com",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "gitlab.com",
    "bitbucket.org",
];

/// One allowlist entry: an exact name (`crates.io`) or a wildcard
/// (`*.example.com`, which matches `a.example.com` and `a.b.example.com` but
/// not `example.com` itself), on ports 80 and 443 unless written `host:port`.
/// Names compare case-insensitively, without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    /// The name, or for a wildcard the suffix after `*.`, as [`normalize_host`] gives it.
    name: String,
    wildcard: bool,
    /// `None` allows 80 and 443.
    port: Option<u16>,
}

impl DomainRule {
    /// Parses `name`, `*.name`, `name:port`, `*.name:port`, an IPv4 address or
    /// a bracketed IPv6 one (`[::1]:8080`).
    pub fn parse(entry: &str) -> Result<DomainRule, String> {
        let text = entry.trim();
        let bad = |why: &str| format!("{text:?} is not an allowlist entry: {why}");
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("stray text after ']'"))?;
        let name = normalize_host(host).ok_or_else(|| bad("not a host name or address"))?;
        if wildcard && name.starts_with('[') {
            return Err(bad("a wildcard needs a name, not an address"));
        }
        let port = match port {
            Some(port) => Some(parse_port(port).ok_or_else(|| bad("bad port"))?),
            None => None,
        };
        Ok(DomainRule {
            name,
            wildcard,
            port,
        })
    }

    /// Whether a connection to `host:port` is allowed by this rule.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(allowed) => port == allowed,
            None => port == 80 || port == 443,
        };
        if !port_ok {
            return false;
        }
        let Some(host) = normalize_host(host) else {
            return false;
        };
        if self.wildcard {
            // One or more whole labels before the suffix; `normalize_host` has
            // already refused empty labels, so `.example.com` cannot sneak in.
            host.strip_suffix(self.name.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty())
        } else {
            host == self.name
        }
    }
}

impl FromStr for DomainRule {
    type Err = String;

    fn from_str(entry: &str) -> Result<DomainRule, String> {
        DomainRule::parse(entry)
    }
}

impl fmt::Display for DomainRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when text follows `]` without a colon.
pub(crate) fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if text.starts_with('[') {
        let close = text.find(']')?;
        let (host, rest) = text.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

/// The one spelling a host is compared in: a lowercase name without a trailing
/// dot whose labels are letters, digits, `-` and `_`, or a bracketed IPv6
/// address in canonical form. `None` for anything else.
pub(crate) fn normalize_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[') {
        let ip: Ipv6Addr = inner.strip_suffix(']')?.parse().ok()?;
        return Some(format!("[{ip}]"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// A port written in decimal digits only (no sign, which `u16::from_str` takes), not 0.
pub(crate) fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|port| *port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(entry: &str) -> DomainRule {
        DomainRule::parse(entry).unwrap()
    }

    #[test]
    fn every_default_domain_parses_and_round_trips() {
        for entry in DEFAULT_DOMAINS {
            assert_eq!(rule(entry).to_string(), *entry);
        }
    }

    #[test]
    fn exact_names_match_case_insensitively_on_80_and_443() {
        let r = rule("Crates.IO.");
        assert_eq!(r.to_string(), "crates.io");
        assert!(r.matches("crates.io", 443));
        assert!(r.matches("CRATES.io.", 80));
        assert!(!r.matches("crates.io", 8080));
        assert!(!r.matches("static.crates.io", 443));
        assert!(!r.matches("evilcrates.io", 443));
        assert!(!r.matches("crates.io.evil.example", 443));
    }

    #[test]
    fn a_port_rule_allows_only_its_port() {
        let r = rule("mirror.example:8080");
        assert!(r.matches("mirror.example", 8080));
        assert!(!r.matches("mirror.example", 443));
        assert!(!r.matches("mirror.example", 80));
    }

    #[test]
    fn wildcards_match_subdomains_but_not_the_name_itself() {
        let r = rule("*.example.com");
        assert!(r.matches("a.example.com", 443));
        assert!(r.matches("a.b.Example.com.", 80));
        assert!(!r.matches("example.com", 443));
        assert!(!r.matches("aexample.com", 443));
        assert!(!r.matches(".example.com", 443));
        assert!(!r.matches("a.example.com.evil", 443));
        assert!(rule("*.example.com:8443").matches("x.example.com", 8443));
        assert!(!rule("*.example.com:8443").matches("x.example.com", 443));
    }

    #[test]
    fn address_literals_match_only_literally() {
        let v4 = rule("10.0.0.5:8080");
        assert!(v4.matches("10.0.0.5", 8080));
        assert!(!v4.matches("10.0.0.6", 8080));
        let v6 = rule("[0:0::1]:8080");
        assert_eq!(v6.to_string(), "[::1]:8080");
        assert!(v6.matches("[::1]", 8080));
        assert!(!v6.matches("::1", 8080));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for entry in [
            "",
            "*",
            "*.",
            "a.*.com",
            "*foo.com",
            "foo..com",
            "foo.com:",
            "foo.com:0",
            "foo.com:65536",
            "foo.com:+80",
            "foo.com:80:81",
            "user@foo.com",
            "foo.com/path",
            "http://foo.com",
            "::1",
            "[::1]x",
            "[nope]",
            "*.[::1]",
        ] {
            assert!(DomainRule::parse(entry).is_err(), "{entry:?}");
        }
        assert_eq!(
            "a.test:81".parse::<DomainRule>(),
            DomainRule::parse("a.test:81")
        );
    }
}
