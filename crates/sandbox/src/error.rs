//! The sandbox crate's one error type, grouped by what the caller can do.

use std::io;

/// Result alias for this crate.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Why a sandbox operation failed.
///
/// The first three variants are answers about the sandbox's files: the agent's tools hand
/// them back to the model, which can pick another path. `Unavailable` means the backend
/// cannot run at all and an operator must fix the host. `Invalid` is a bug in the caller.
/// `Spawn`, `Io` and `Failed` are failures of one operation; retrying may help, and
/// a tool reports them to the model as a failed tool call.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Nothing exists at `path` inside the sandbox (raised by `read_file`).
    #[error("reading {path}: no such file")]
    NotFound {
        /// The path as the caller gave it.
        path: String,
    },

    /// `path` is a directory where a file was wanted (`read_file`, `write_file`).
    #[error("{path}: is a directory")]
    IsDirectory {
        /// The path as the caller gave it.
        path: String,
    },

    /// The file at `path` is larger than the caller allowed (`read_file`).
    #[error("reading {path}: larger than {limit} bytes")]
    TooLarge {
        /// The path as the caller gave it.
        path: String,
        /// The caller's limit in bytes.
        limit: usize,
    },

    /// The backend cannot run on this host (for example bubblewrap is not installed).
    /// Raised when a provider is made and by its `check`; `dockhand doctor` prints it.
    #[error("{what} is unavailable: {reason} (fix: {fix})")]
    Unavailable {
        /// The missing piece, such as "bubblewrap".
        what: String,
        /// What went wrong.
        reason: String,
        /// What an operator can do about it.
        fix: String,
    },

    /// The request is malformed (empty argv, a bad environment variable name, a
    /// workspace path that is not absolute UTF-8). A bug in the caller.
    #[error("invalid sandbox request: {0}")]
    Invalid(String),

    /// A process could not be started.
    #[error("starting {what}: {source}")]
    Spawn {
        /// The program, such as "bwrap".
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Host I/O for the sandbox failed (state files, pipes).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, such as "writing /data/local/etc/passwd".
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The sandbox can no longer start processes (for example a fork bomb filled its
    /// process limit). The caller may [`Sandbox::replace`](crate::Sandbox::replace) it.
    #[error("the sandbox cannot start processes: {reason}")]
    Broken {
        /// What the backend saw.
        reason: String,
    },

    /// The backend does not do this (for example replacing a local sandbox).
    #[error("{0} is not supported by this sandbox backend")]
    Unsupported(String),

    /// A helper command inside the sandbox failed; `message` is its stderr.
    #[error("{what}: {message}")]
    Failed {
        /// What was being done, such as "writing /workspace/a.txt".
        what: String,
        /// The helper's stderr, or a description when it had none.
        message: String,
    },
    /// A repository's environment image could not be had: its setup failed or
    /// timed out, or its base image is missing.
    #[error("{0}")]
    Environment(String),
}

impl SandboxError {
    /// An [`SandboxError::Io`] naming what was being done.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Io {
            what: what.into(),
            source,
        }
    }
}
