//! Reaching a remote repository: the one place that decides which credential a
//! host git command carries and which address it connects to.
//!
//! - A GitHub token goes only to the exact scheme, host and port of the
//!   configured GitHub web URL. Redirects are never followed, so no redirect can
//!   carry it elsewhere.
//! - Any other remote must resolve only to public addresses (unless
//!   `allow_private_remotes`), checked again for each command, and git connects
//!   to the checked address (`http.curloptResolve`), so DNS rebinding cannot
//!   swap in a private one between the check and the connection.

use dockhand_net::AddressPolicy;
use dockhand_net::NetError;
use dockhand_net::Resolver;

use crate::ForgeError;
use crate::Result;

/// `scheme://host:port`, with the scheme's default port filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &url::Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    fn parse(text: &str) -> Option<Origin> {
        Origin::of(&url::Url::parse(text).ok()?)
    }
}

/// Who may receive the GitHub token, and which addresses remotes may have.
#[derive(Clone)]
pub struct RemotePolicy {
    github_web: Option<Origin>,
    exempt: Vec<Origin>,
    addresses: AddressPolicy,
    resolver: Resolver,
}

/// How one git command reaches one remote.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reach {
    /// The URL to give git: normalised (lowercase host, canonical address).
    pub url: String,
    /// The token, only for the GitHub origin.
    pub token: Option<String>,
    /// `host:port:addr[,addr]` for `http.curloptResolve`.
    pub pin: Option<String>,
}

impl RemotePolicy {
    /// A policy for this GitHub (its web and API URLs are exempt from the address
    /// check), letting other remotes reach what `addresses` allows.
    pub fn new(
        github_web_url: &str,
        github_api_url: &str,
        addresses: AddressPolicy,
    ) -> RemotePolicy {
        let github_web = Origin::parse(github_web_url);
        let exempt = [github_web.clone(), Origin::parse(github_api_url)]
            .into_iter()
            .flatten()
            .collect();
        RemotePolicy {
            github_web,
            exempt,
            addresses,
            resolver: Resolver::default(),
        }
    }

    /// The same policy resolving names with `resolver`.
    pub fn with_resolver(mut self, resolver: Resolver) -> RemotePolicy {
        self.resolver = resolver;
        self
    }

    /// Whether `url` is on the configured GitHub (the token's only destination).
    pub fn is_github(&self, url: &str) -> bool {
        let origin = url::Url::parse(url).ok().and_then(|u| Origin::of(&u));
        origin.is_some() && origin == self.github_web
    }

    /// Refuses a repository URL whose host is not one users may reach.
    pub async fn check(&self, url: &str) -> Result<()> {
        self.reach(url, None).await.map(|_| ())
    }

    /// Resolves and checks `url` now, for one command; `token` is kept only when
    /// the URL is on GitHub.
    pub(crate) async fn reach(&self, url: &str, token: Option<&str>) -> Result<Reach> {
        let invalid = |why: String| ForgeError::InvalidRepo(format!("{url}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let origin = Origin::of(&parsed).ok_or_else(|| invalid("has no host".into()))?;
        let token = token
            .filter(|_| Some(&origin) == self.github_web.as_ref())
            .map(str::to_owned);
        let mut reach = Reach {
            url: parsed.to_string(),
            token,
            pin: None,
        };
        if self.exempt.contains(&origin) || self.addresses.allow_all {
            return Ok(reach);
        }
        let checked = self
            .resolver
            .resolve(&origin.host, origin.port, &self.addresses)
            .await
            .map_err(|e| match e {
                NetError::Refused { .. } => invalid(format!(
                    "{e}; repositories on private or loopback addresses need allow_private_remotes = true"
                )),
                NetError::Unresolved { .. } => invalid(e.to_string()),
            })?;
        if !checked.literal {
            let addrs: Vec<String> = checked
                .addrs
                .iter()
                .map(|a| match a {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                })
                .collect();
            reach.pin = Some(format!(
                "{}:{}:{}",
                origin.host,
                origin.port,
                addrs.join(",")
            ));
        }
        Ok(reach)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn strict() -> AddressPolicy {
        AddressPolicy::default()
    }

    fn resolver(addr: &'static str) -> Resolver {
        Resolver::with_lookup(Arc::new(move |_, _| {
            Box::pin(async move { Ok(vec![addr.parse().unwrap()]) })
        }))
    }

    #[tokio::test]
    async fn the_token_goes_only_to_githubs_exact_origin() {
        let p = RemotePolicy::new("https://github.com", "https://api.github.com", strict())
            .with_resolver(resolver("140.82.112.3"));
        let on = |url: &'static str| {
            let p = p.clone();
            async move { p.reach(url, Some("tok")).await.unwrap().token }
        };
        assert_eq!(
            on("https://github.com/a/b.git").await.as_deref(),
            Some("tok")
        );
        assert_eq!(
            on("https://GitHub.com:443/a/b.git").await.as_deref(),
            Some("tok")
        );
        assert_eq!(
            on("http://github.com/a/b.git").await,
            None,
            "another scheme"
        );
        assert_eq!(
            on("https://github.com:8443/a/b.git").await,
            None,
            "another port"
        );
        assert_eq!(on("https://github.com.evil.example/a/b.git").await, None);
        assert_eq!(on("https://gitlab.example/a/b.git").await, None);
    }

    #[tokio::test]
    async fn private_hosts_are_refused_and_public_names_pinned() {
        let p = RemotePolicy::new("http://127.0.0.1:9", "http://127.0.0.1:9", strict())
            .with_resolver(resolver("10.1.1.1"));
        let err = p
            .check("https://internal.example/a/b.git")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("10.1.1.1, a private address"),
            "{err}"
        );
        assert!(err.to_string().contains("allow_private_remotes"), "{err}");
        for literal in [
            "http://127.1/a/b.git",
            "http://[::ffff:127.0.0.1]/a/b.git",
            "http://0.0.0.0/a/b.git",
            "http://[::]/a/b.git",
            "http://169.254.169.254/a/b.git",
        ] {
            assert!(p.check(literal).await.is_err(), "{literal}");
        }
        // The configured GitHub is exempt, even on loopback.
        assert!(p.check("http://127.0.0.1:9/a/b.git").await.is_ok());
        let public = RemotePolicy::new("https://github.com", "https://api.github.com", strict())
            .with_resolver(resolver("93.184.216.34"));
        let reach = public
            .reach("https://Git.Example/a/b.git", None)
            .await
            .unwrap();
        assert_eq!(reach.url, "https://git.example/a/b.git");
        assert_eq!(reach.pin.as_deref(), Some("git.example:443:93.184.216.34"));
        let open = RemotePolicy::new(
            "https://github.com",
            "https://api.github.com",
            AddressPolicy {
                allow: Vec::new(),
                allow_all: true,
            },
        );
        assert!(open.check("http://127.0.0.1:1/a/b.git").await.is_ok());
    }
}
