//! Why the coordinator could not start.

use std::net::SocketAddr;

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another coordinator holds the data directory.
    #[error(
        "another Dockhand coordinator is already using {0}; stop it, or set DOCKHAND_DATA_DIR to another directory"
    )]
    Locked(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] dockhand_store::StoreError),
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::secrets::KeyError),
    /// Local auth could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
    /// The sandbox backend is unusable. (Transparent: the sandbox's error names
    /// the missing piece, and a prefix here would print it twice in a chain.)
    #[error(transparent)]
    Sandbox(#[from] dockhand_sandbox::SandboxError),
    /// The model client could not be built.
    #[error("model client: {0}")]
    Model(String),
    /// The GitHub client could not be built.
    #[error("GitHub client: {0}")]
    GitHub(String),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}
