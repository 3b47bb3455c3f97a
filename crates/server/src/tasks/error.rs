//! Why a task operation was refused.

use std::time::Duration;

use dockhand_store::StoreError;

/// A refusal a client can act on, or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A field is larger than the server takes.
    #[error("{field}: {message}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// How large it is, and the limit.
        message: String,
    },
    /// No such task, or not the actor's.
    #[error("no such task")]
    NotFound,
    /// The task is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// Too many tasks; try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TaskError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> TaskError {
        TaskError::Invalid {
            field,
            message: message.into(),
        }
    }
}
