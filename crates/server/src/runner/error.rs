//! Why a run did not succeed. The Display text is the task's error.

use dockhand_agent::AgentError;
use dockhand_forge::ForgeError;
use dockhand_sandbox::SandboxError;
use dockhand_store::StoreError;

use crate::publish::PublishError;

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cancelled")]
    Cancelled,
    #[error("repository: {0}")]
    Repo(ForgeError),
    #[error("{0}")]
    Clone(ForgeError),
    #[error("{0}")]
    Environment(ForgeError),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("prepare failed: {0}")]
    Prepare(String),
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Agent(AgentError),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}
