//! The coordinator's egress proxy, serving the `allowlist` sandboxes of every
//! backend: each connection a sandbox's forwarder relays is one proxy client.
//! Refusals go to the sandbox's log (for the model), the log and a counter.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use dockhand_egress::DomainRule;
use dockhand_egress::EgressPolicy;
use dockhand_egress::Proxy;
use dockhand_egress::RefusalKind;
use dockhand_sandbox::egress::Egress;
use dockhand_sandbox::egress::EgressConn;

use crate::config::Config;

/// The proxy and what it refused, by reason.
pub struct EgressService {
    proxy: Proxy,
    refused: [AtomicU64; 3],
}

const KINDS: [RefusalKind; 3] = [
    RefusalKind::NotAllowed,
    RefusalKind::PrivateAddress,
    RefusalKind::Unresolved,
];

impl EgressService {
    /// A proxy for the configured allowlist (validated when the config loaded).
    pub fn new(config: &Config) -> EgressService {
        let domains = config
            .sandbox
            .domains()
            .iter()
            .filter_map(|d| DomainRule::parse(d).ok())
            .collect();
        let allow_addresses = config
            .sandbox
            .allow_addresses
            .iter()
            .filter_map(|a| dockhand_net::parse_net(a).ok())
            .collect();
        EgressService {
            proxy: Proxy::new(EgressPolicy {
                domains,
                allow_addresses,
            }),
            refused: Default::default(),
        }
    }

    /// `(reason label, count)` for `dockhand_egress_refused_total{reason}`.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.refused)
            .map(|(k, n)| (k.label(), n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[async_trait]
impl Egress for EgressService {
    async fn serve(&self, conn: EgressConn) {
        let EgressConn {
            task_id,
            stream,
            refusals,
        } = conn;
        let mut refused = |r: dockhand_egress::Refusal| {
            if let Some(i) = KINDS.iter().position(|k| *k == r.kind) {
                self.refused[i].fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(task = %task_id, "{r}");
            refusals.record(r.to_string());
        };
        self.proxy.serve(stream, &mut refused).await;
    }
}
