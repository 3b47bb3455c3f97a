//! What can go wrong with a checkpoint.

/// Why a checkpoint could not be taken, stored or restored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The sandbox could not run the snapshot.
    #[error("the sandbox could not run the snapshot: {0}")]
    Sandbox(#[from] dockhand_sandbox::SandboxError),
    /// The snapshot script failed or said something unexpected.
    #[error("the snapshot failed: {0}")]
    Script(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] dockhand_store::StoreError),
    /// Git on the coordinator refused a bundle.
    #[error(transparent)]
    Forge(#[from] dockhand_forge::ForgeError),
    /// A scratch file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}
