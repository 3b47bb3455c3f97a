//! Warm pools: sandboxes started before a task asks, each with an empty
//! workspace of its own, so a task skips the sandbox's start-up.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::Sandbox;
use crate::SandboxSpec;

/// A started sandbox handed to a task, with its (empty) workspace directory.
pub struct WarmSandbox {
    /// The workspace the sandbox was started on; it becomes the task's.
    pub workspace: PathBuf,
    /// The sandbox, now serving the task.
    pub sandbox: Arc<dyn Sandbox>,
    /// What it was started with.
    pub spec: SandboxSpec,
}

impl WarmSandbox {
    /// Whether it is what `wanted` asks for: the default image, the same network
    /// level and limits, and no extra variables (those are fixed at start).
    pub fn fits(&self, wanted: &SandboxSpec) -> bool {
        wanted.image.is_none()
            && wanted.env.is_empty()
            && wanted.workspace == self.workspace
            && wanted.network == self.spec.network
            && wanted.limits == self.spec.limits
    }
}

/// Started sandboxes waiting for a task.
#[async_trait]
pub trait WarmPool: Send + Sync {
    /// How many are waiting.
    fn ready(&self) -> usize;

    /// Starts sandboxes until the pool is full; failures are logged and leave
    /// the pool short.
    async fn fill(&self);

    /// Fills the pool in the background. A task's runner calls it once the task
    /// is ready, so the refill does not compete with the task's own start-up.
    fn refill(&self);

    /// Takes a waiting sandbox for `task_id`, if one is still running.
    async fn take(&self, task_id: &str) -> Option<WarmSandbox>;

    /// Removes the waiting sandboxes and their empty workspaces (at shutdown).
    async fn drain(&self);
}
