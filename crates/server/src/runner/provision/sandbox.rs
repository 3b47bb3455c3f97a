//! The sandbox: re-attached from an earlier run, a warm-pool one when the task
//! wants nothing the pool's lack, or a new one.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use dockhand_forge::Environment;
use dockhand_protocol::SandboxRef;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxSpec;
use dockhand_sandbox::WarmSandbox;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use super::super::error::RunError;
use super::super::events::phase_at;
use crate::policy::Applied;
use crate::services::Services;

/// What the task's sandbox must be.
pub(super) fn spec(
    task: &TaskRow,
    ws: &Path,
    env: &Environment,
    applied: &Applied,
    image: Option<String>,
) -> SandboxSpec {
    SandboxSpec {
        task_id: task.id.to_string(),
        workspace: ws.to_path_buf(),
        network: applied.network,
        limits: applied.limits,
        env: env
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        image,
    }
}

/// Starts (or finds) the sandbox and records it on the task.
pub(super) async fn start(
    s: &Services,
    task: &TaskRow,
    spec: SandboxSpec,
    warm: Option<WarmSandbox>,
    cancel: &CancellationToken,
) -> Result<Arc<dyn Sandbox>, RunError> {
    let t = Instant::now();
    let network = spec.network;
    let provider = &s.sandboxes;
    let attached = match &task.sandbox {
        Some(r) if r.backend == provider.backend() => provider.attach(&r.id, spec.clone()).await?,
        _ => None,
    };
    let fits = warm.as_ref().is_some_and(|w| w.fits(&spec));
    let (sandbox, how) = match (attached, warm) {
        (Some(a), warm) => {
            release(warm).await;
            (a, "re-attached")
        }
        (None, Some(w)) if fits => (w.sandbox, "warm pool"),
        (None, warm) => {
            release(warm).await;
            let created = tokio::select! {
                r = provider.create(spec) => r?,
                _ = cancel.cancelled() => return Err(RunError::Cancelled),
            };
            (created, "new")
        }
    };
    let info = sandbox.info();
    let recorded = SandboxRef {
        backend: info.backend.clone(),
        id: info.id.clone(),
    };
    s.store.set_sandbox(&task.id, Some(recorded)).await?;
    let name = provider.noun();
    let short = &info.id[..info.id.len().min(12)];
    let detail = Some(format!("{how} {} {short}", info.backend));
    phase_at(&s.store, &task.id, name, t.elapsed(), detail, Some(network));
    Ok(sandbox)
}

async fn release(warm: Option<WarmSandbox>) {
    if let Some(WarmSandbox { sandbox: w, .. }) = warm {
        let _ = w.destroy().await;
    }
}
