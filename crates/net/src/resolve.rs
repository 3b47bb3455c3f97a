//! Resolving a name and checking every address it gets, so a caller connects
//! only to an address that passed: pinning that address defeats DNS rebinding
//! (a name that answers a public address to the check and a private one to the
//! connection).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::AddressPolicy;

/// A name lookup: `(host, port)` to addresses.
pub type Lookup =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// Resolves names with the system resolver (or a given lookup), bounded in time.
#[derive(Clone)]
pub struct Resolver {
    lookup: Lookup,
    timeout: Duration,
}

/// Why a host may not be reached.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The name has no address, or the lookup failed or took too long.
    #[error("{host} does not resolve ({cause})")]
    Unresolved {
        /// The host.
        host: String,
        /// The resolver's words.
        cause: String,
    },
    /// The name (or literal) is an address users may not reach.
    #[error("{host} resolves to {addr}, a {reason} address")]
    Refused {
        /// The host.
        host: String,
        /// The address refused.
        addr: IpAddr,
        /// `loopback`, `private`, `link-local`...
        reason: &'static str,
    },
}

/// A host whose every address passed the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The addresses, in the resolver's order; never empty.
    pub addrs: Vec<IpAddr>,
    /// Whether the host was an address literal (nothing to pin).
    pub literal: bool,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::with_lookup(Arc::new(|host, port| {
            Box::pin(async move {
                let addrs = tokio::net::lookup_host((host.as_str(), port)).await?;
                Ok(addrs.map(|a| a.ip()).collect())
            })
        }))
    }
}

impl Resolver {
    /// A resolver that asks `lookup` (tests give a fixed table).
    pub fn with_lookup(lookup: Lookup) -> Resolver {
        Resolver {
            lookup,
            timeout: Duration::from_secs(5),
        }
    }

    /// Resolves `host` (a name, or an address with or without brackets) and checks
    /// every address against `policy`: one refused address refuses the host, since
    /// a connection may go to any of them.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        policy: &AddressPolicy,
    ) -> Result<Checked, NetError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let (addrs, literal) = match bare.parse::<IpAddr>() {
            Ok(ip) => (vec![ip], true),
            Err(_) => {
                let unresolved = |cause: String| NetError::Unresolved {
                    host: host.to_owned(),
                    cause,
                };
                let found =
                    tokio::time::timeout(self.timeout, (self.lookup)(bare.to_owned(), port))
                        .await
                        .map_err(|_| {
                            unresolved(format!("no answer in {} s", self.timeout.as_secs()))
                        })?
                        .map_err(|e| unresolved(e.to_string()))?;
                if found.is_empty() {
                    return Err(unresolved("no addresses".into()));
                }
                (found, false)
            }
        };
        for addr in &addrs {
            if let Some(reason) = policy.refusal(*addr) {
                return Err(NetError::Refused {
                    host: host.to_owned(),
                    addr: *addr,
                    reason,
                });
            }
        }
        Ok(Checked { addrs, literal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(answer: &'static [&'static str]) -> Resolver {
        Resolver::with_lookup(Arc::new(move |_, _| {
            Box::pin(async move { Ok(answer.iter().map(|a| a.parse().unwrap()).collect()) })
        }))
    }

    #[tokio::test]
    async fn one_private_answer_refuses_the_name() {
        let policy = AddressPolicy::default();
        let r = table(&["93.184.216.34", "10.0.0.1"]);
        let err = r.resolve("mixed.example", 443, &policy).await.unwrap_err();
        assert!(
            err.to_string().contains("10.0.0.1, a private address"),
            "{err}"
        );
        let ok = table(&["93.184.216.34"])
            .resolve("public.example", 443, &policy)
            .await
            .unwrap();
        assert_eq!(ok.addrs, ["93.184.216.34".parse::<IpAddr>().unwrap()]);
        assert!(!ok.literal);
        let none = table(&[]).resolve("empty.example", 443, &policy).await;
        assert!(matches!(none, Err(NetError::Unresolved { .. })));
    }

    #[tokio::test]
    async fn literals_are_checked_without_a_lookup() {
        let r = table(&["93.184.216.34"]);
        let policy = AddressPolicy::default();
        for host in ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"] {
            let err = r.resolve(host, 80, &policy).await.unwrap_err();
            assert!(err.to_string().contains("loopback"), "{host}: {err}");
        }
        assert!(
            r.resolve("[2606:4700::1]", 80, &policy)
                .await
                .unwrap()
                .literal
        );
    }

    #[tokio::test]
    async fn the_system_resolver_answers_localhost_and_refuses_it() {
        let err = Resolver::default()
            .resolve("localhost", 80, &AddressPolicy::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NetError::Refused {
                    reason: "loopback",
                    ..
                }
            ),
            "{err}"
        );
    }
}
