//! A sandbox's network level, and the channel that carries its `allowlist`
//! traffic to the coordinator's egress proxy.
//!
//! At `allowlist` a sandbox has no network interface but loopback. A small
//! forwarder inside it listens on [`PROXY_ADDR`] and relays every connection
//! over a channel the coordinator controls (an exec stream on docker, a Unix
//! socket on local), so the rule holds on any engine, remote ones included,
//! without firewall rules on the host. The coordinator hands each connection
//! to an [`Egress`] (its proxy), which records what it refused in the
//! sandbox's [`RefusalLog`]; the refusals reach the model with the next tool
//! result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;

pub use dockhand_protocol::NetworkLevel;

/// Where the forwarder listens inside a sandbox.
pub const PROXY_ADDR: &str = "127.0.0.1:3128";

/// The proxy variables an `allowlist` sandbox gets, in both spellings tools read.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://{PROXY_ADDR}");
    let no_proxy = "localhost,127.0.0.1,::1";
    let mut env = Vec::new();
    for (key, value) in [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("NO_PROXY", no_proxy),
    ] {
        env.push((key.to_owned(), value.to_owned()));
        env.push((key.to_ascii_lowercase(), value.to_owned()));
    }
    env
}

/// A byte stream in both directions.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// One connection a sandbox opened to its forwarder.
pub struct EgressConn {
    /// The task whose sandbox opened it.
    pub task_id: String,
    /// The client side of the proxy protocol (HTTP CONNECT or plain HTTP).
    pub stream: Box<dyn Stream>,
    /// Where refusals are noted for the model.
    pub refusals: RefusalLog,
}

/// The coordinator's egress proxy, as the backends see it.
#[async_trait]
pub trait Egress: Send + Sync {
    /// Serves one connection until it ends.
    async fn serve(&self, conn: EgressConn);
}

/// Refusals kept per sandbox for the model; older ones are dropped past this.
const MAX_REFUSALS: usize = 64;

/// What the egress proxy refused for one sandbox, numbered from 1, so a tool
/// can report the refusals made while its command ran.
#[derive(Clone, Default)]
pub struct RefusalLog {
    inner: Arc<Mutex<Refusals>>,
}

#[derive(Default)]
struct Refusals {
    total: u64,
    recent: VecDeque<String>,
}

impl RefusalLog {
    /// Notes a refusal (`egress refused: HOST:PORT (reason)`).
    pub fn record(&self, line: String) {
        if let Ok(mut r) = self.inner.lock() {
            r.total += 1;
            if r.recent.len() == MAX_REFUSALS {
                r.recent.pop_front();
            }
            r.recent.push_back(line);
        }
    }

    /// How many refusals were ever noted.
    pub fn total(&self) -> u64 {
        self.inner.lock().map(|r| r.total).unwrap_or(0)
    }

    /// The refusals noted after the first `seen`, oldest first (those still kept).
    pub fn since(&self, seen: u64) -> Vec<String> {
        let Ok(r) = self.inner.lock() else {
            return Vec::new();
        };
        let new = r.total.saturating_sub(seen) as usize;
        let skip = r.recent.len().saturating_sub(new);
        r.recent.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reported_once_each_and_bounded() {
        let log = RefusalLog::default();
        log.record("egress refused: a:443 (x)".into());
        let seen = log.total();
        log.record("egress refused: b:443 (x)".into());
        log.record("egress refused: c:80 (x)".into());
        assert_eq!(
            log.since(seen),
            ["egress refused: b:443 (x)", "egress refused: c:80 (x)"]
        );
        assert!(log.since(log.total()).is_empty());
        for i in 0..200 {
            log.record(format!("r{i}"));
        }
        assert_eq!(log.since(0).len(), MAX_REFUSALS);
        assert_eq!(log.since(log.total() - 1), ["r199"]);
    }

    #[test]
    fn levels_read_and_order_from_least_to_most() {
        assert_eq!(
            NetworkLevel::parse("allowlist"),
            Some(NetworkLevel::Allowlist)
        );
        assert_eq!(NetworkLevel::parse("bridge"), None);
        assert!(NetworkLevel::None < NetworkLevel::Allowlist);
        assert!(NetworkLevel::Allowlist < NetworkLevel::Open);
        let env = proxy_env();
        assert!(env.contains(&("https_proxy".into(), "http://127.0.0.1:3128".into())));
        assert_eq!(env.len(), 6);
    }
}
