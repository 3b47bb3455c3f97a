//! The provider trait: what every backend does (make, find and list sandboxes),
//! and capability queries for what only some backends have.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxSpec;
use crate::images::Images;
use crate::warm::WarmPool;

/// Makes and finds sandboxes for one backend.
#[async_trait]
pub trait SandboxProvider: Send + Sync {
    /// `local` or `docker`.
    fn backend(&self) -> &'static str;

    /// What one sandbox is called in progress events: `container` on docker,
    /// `sandbox` elsewhere.
    fn noun(&self) -> &'static str {
        "sandbox"
    }

    /// The host uid a workspace must belong to for the sandbox user to own it;
    /// `None` when it may stay the coordinator's.
    fn workspace_owner(&self) -> Option<u32> {
        None
    }

    /// Whether a sandbox outlives its run: kept after its task finishes, so a
    /// follow-up starts at once, and across coordinator restarts, so it can be
    /// re-attached. Such sandboxes need [`remove`](SandboxProvider::remove) once
    /// nothing needs them; the others go with their run.
    fn keeps_finished(&self) -> bool {
        false
    }

    /// Makes a sandbox for a task.
    async fn create(&self, spec: SandboxSpec) -> Result<Arc<dyn Sandbox>>;

    /// Finds the sandbox `id` made earlier (for example before a coordinator restart).
    /// `None` when it no longer exists.
    async fn attach(&self, id: &str, spec: SandboxSpec) -> Result<Option<Arc<dyn Sandbox>>>;

    /// Sandboxes this coordinator made that still exist, warm-pool ones waiting
    /// for a task aside.
    async fn list(&self) -> Result<Vec<SandboxInfo>>;

    /// Removes sandbox `id` and stops what runs in it; one already gone is fine.
    async fn remove(&self, id: &str) -> Result<()> {
        Err(SandboxError::Unsupported(format!("removing sandbox {id}")))
    }

    /// The warm pool, for backends that keep started sandboxes ready.
    fn warm_pool(&self) -> Option<&dyn WarmPool> {
        None
    }

    /// Images with a repository's `setup` baked in, for backends that run images.
    fn images(&self) -> Option<&dyn Images> {
        None
    }
}
