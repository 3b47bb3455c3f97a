/// Errors from git work on the host. Each names the thing and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The repository argument is not one Dockhand accepts.
    #[error("{0}")]
    InvalidRepo(String),
    /// `.dockhand/environment.toml` is not valid.
    #[error(".dockhand/environment.toml: {0}")]
    InvalidEnvironment(String),
    /// A git command failed; `stderr` is git's own explanation.
    #[error("{what}: {stderr}")]
    Git {
        /// What Dockhand was doing, e.g. `cloning /src/repo`.
        what: String,
        /// git's stderr (trimmed, bounded).
        stderr: String,
    },
    /// The remote refused the push; the message says why and what to do.
    #[error("{0}")]
    PushRejected(String),
    /// A bundle is not what the task may hand back.
    #[error("the task's bundle was rejected: {0}")]
    BadBundle(String),
    /// An I/O error on the host.
    #[error("{what}: {source}")]
    Io {
        /// What Dockhand was doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}
