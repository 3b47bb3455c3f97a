//! The coordinator's egress proxy for sandboxes at network level `allowlist`.
//!
//! Such a sandbox has no network interface; a forwarder inside it relays each
//! connection to the coordinator, which hands the stream to [`Proxy::serve`].
//! The proxy speaks HTTP CONNECT (tunnels, for https) and plain HTTP with
//! absolute URIs. For each request it:
//!
//! 1. reads the head, bounded in size and time (else 400);
//! 2. checks the host and port against the [`DomainRule`]s (else 403);
//! 3. resolves the host once and checks every address: not private, loopback
//!    or link-local, nor the host's own, unless the operator allows it (else 403);
//! 4. connects only to those addresses, so DNS rebinding cannot swap one in
//!    (a failure is 502, not a refusal);
//! 5. relays bytes both ways. A plain request goes on with `Connection: close`,
//!    so keep-alive cannot carry a second, unchecked request.

mod head;
mod own;
mod rule;

use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::Duration;

use dockhand_net::AddressPolicy;
use dockhand_net::IpNet;
use dockhand_net::NetError;
use dockhand_net::Resolver;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

pub use rule::DEFAULT_DOMAINS;
pub use rule::DomainRule;

/// How long one connection attempt to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The destinations the operator allows.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    /// `sandbox.allow_domains` (or the default list) plus `sandbox.extra_domains`, parsed.
    pub domains: Vec<DomainRule>,
    /// Addresses or CIDR blocks a resolved address may be even though private,
    /// loopback, link-local or the host's own (`sandbox.allow_addresses`).
    pub allow_addresses: Vec<IpNet>,
}

/// A request the policy refused; the sandbox's model is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("egress refused: {host}:{port} ({reason})")]
pub struct Refusal {
    /// The host as the policy saw it: lowercase, no trailing dot, IPv6 in brackets.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// Which check refused it.
    pub kind: RefusalKind,
    /// Why, in a few words.
    pub reason: String,
}

/// Which policy check refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// No allowlist entry matches the host and port.
    NotAllowed,
    /// The host resolves to an address not to be reached (private, loopback,
    /// link-local, the host's own).
    PrivateAddress,
    /// The host has no address, or the lookup failed.
    Unresolved,
}

impl RefusalKind {
    /// A short label for the metric `dockhand_egress_refused_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            RefusalKind::NotAllowed => "not_allowed",
            RefusalKind::PrivateAddress => "private_address",
            RefusalKind::Unresolved => "unresolved",
        }
    }
}

/// Why a request ends before its bytes are relayed; the variant picks the answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EgressError {
    /// The client sent something that is not a proxy request we take: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The policy refuses the destination: 403, and the refusal is reported.
    #[error(transparent)]
    Refused(Refusal),
    /// The destination did not take the connection: 502, not a refusal.
    #[error("{0}")]
    BadGateway(String),
    /// The client's connection failed: there is nobody left to answer.
    #[error("client connection: {0}")]
    Closed(std::io::Error),
}

pub(crate) type Result<T, E = EgressError> = std::result::Result<T, E>;

/// The egress proxy: one policy, serving one client connection per call.
pub struct Proxy {
    domains: Vec<DomainRule>,
    addresses: AddressPolicy,
    resolver: Resolver,
    own: Vec<IpAddr>,
}

impl Proxy {
    /// A proxy for this policy, with the system resolver, knowing the host's own
    /// addresses (from `/proc/net/fib_trie` and `/proc/net/if_inet6`; missing
    /// files mean none known).
    pub fn new(policy: EgressPolicy) -> Proxy {
        Proxy::with(policy, Resolver::default(), own::read())
    }

    /// Same, resolving with `resolver` and treating `own` as the host's own addresses.
    pub fn with(policy: EgressPolicy, resolver: Resolver, own: Vec<IpAddr>) -> Proxy {
        Proxy {
            domains: policy.domains,
            addresses: AddressPolicy {
                allow: policy.allow_addresses,
                allow_all: false,
            },
            resolver,
            own: own.into_iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    /// Serves one client connection until it ends. Every policy refusal is passed
    /// to `refused` as it happens.
    pub async fn serve<S>(&self, mut client: S, refused: &mut (dyn FnMut(Refusal) + Send))
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (status, body) = match self.open(&mut client).await {
            Ok(None) => return,
            Ok(Some(mut upstream)) => {
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    debug!(error = %e, "egress relay ended with an error");
                }
                return;
            }
            Err(EgressError::Closed(e)) => {
                debug!(error = %e, "egress client went away");
                return;
            }
            Err(EgressError::Refused(refusal)) => {
                debug!(%refusal, "egress refused");
                let body = format!("{refusal}\n");
                refused(refusal);
                ("403 Forbidden", body)
            }
            Err(e @ EgressError::BadRequest(_)) => {
                ("400 Bad Request", format!("bad request: {e}\n"))
            }
            Err(e @ EgressError::BadGateway(_)) => {
                ("502 Bad Gateway", format!("bad gateway: {e}\n"))
            }
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        // The client may be gone already; then there is nobody to tell.
        let _ = client.write_all(answer.as_bytes()).await;
        let _ = client.shutdown().await;
    }

    /// Reads and checks the request and connects for it, leaving the upstream
    /// ready for the relay: the tunnel answered, or the plain head sent on.
    /// `None` when the client closed before asking anything.
    async fn open<S>(&self, client: &mut S) -> Result<Option<TcpStream>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Some(received) = head::read(client).await? else {
            return Ok(None);
        };
        let request = head::parse(&received.head)?;
        let addrs = self.check(&request.host, request.port).await?;
        let mut upstream = connect(&request.host, request.port, &addrs).await?;
        let to_upstream = match request.kind {
            head::Kind::Connect => received.rest,
            head::Kind::Plain { .. } => [head::origin_head(&request), received.rest].concat(),
        };
        let gateway = |e: std::io::Error| {
            EgressError::BadGateway(format!("{}:{}: {e}", request.host, request.port))
        };
        upstream.write_all(&to_upstream).await.map_err(gateway)?;
        if request.kind == head::Kind::Connect {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .map_err(EgressError::Closed)?;
        }
        debug!(host = %request.host, port = request.port, "egress allowed");
        Ok(Some(upstream))
    }

    /// The policy, in order: the allowlist, then every resolved address against
    /// the address policy, then against the host's own addresses. The result is
    /// the addresses to connect to, never resolved again.
    async fn check(&self, host: &str, port: u16) -> Result<Vec<IpAddr>> {
        let refuse = |kind, reason: String| {
            EgressError::Refused(Refusal {
                host: host.to_owned(),
                port,
                kind,
                reason,
            })
        };
        if !self.domains.iter().any(|rule| rule.matches(host, port)) {
            return Err(refuse(
                RefusalKind::NotAllowed,
                "not on the allowlist".into(),
            ));
        }
        let checked = self
            .resolver
            .resolve(host, port, &self.addresses)
            .await
            .map_err(|e| match e {
                NetError::Unresolved { cause, .. } => refuse(
                    RefusalKind::Unresolved,
                    format!("does not resolve: {cause}"),
                ),
                NetError::Refused { addr, reason, .. } => refuse(
                    RefusalKind::PrivateAddress,
                    format!("resolves to {addr}, a {reason} address"),
                ),
            })?;
        for addr in &checked.addrs {
            // Canonical, so `::ffff:a.b.c.d` is the IPv4 address it reaches.
            let canonical = addr.to_canonical();
            let allowed = self
                .addresses
                .allow
                .iter()
                .any(|net| net.contains(&canonical));
            if !allowed && self.own.contains(&canonical) {
                return Err(refuse(
                    RefusalKind::PrivateAddress,
                    format!("resolves to {addr}, an address of the coordinator's host"),
                ));
            }
        }
        Ok(checked.addrs)
    }
}

/// Connects to the first of `addrs` that answers.
async fn connect(host: &str, port: u16, addrs: &[IpAddr]) -> Result<TcpStream> {
    let mut cause = String::from("no addresses");
    for addr in addrs {
        let target = SocketAddr::new(*addr, port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // Tunnels carry TLS handshakes; don't hold small writes back.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => cause = format!("{target}: {e}"),
            Err(_) => cause = format!("{target}: no answer in {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(EgressError::BadGateway(format!(
        "cannot connect to {host}:{port} ({cause})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_model_sees_them() {
        let refusal = Refusal {
            host: "evil.example".into(),
            port: 443,
            kind: RefusalKind::NotAllowed,
            reason: "not on the allowlist".into(),
        };
        assert_eq!(
            refusal.to_string(),
            "egress refused: evil.example:443 (not on the allowlist)"
        );
        let labels = [
            RefusalKind::NotAllowed,
            RefusalKind::PrivateAddress,
            RefusalKind::Unresolved,
        ]
        .map(RefusalKind::label);
        assert_eq!(labels, ["not_allowed", "private_address", "unresolved"]);
    }
}
