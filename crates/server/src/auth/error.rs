//! Why a credential or a sign-in was refused.

use std::time::Duration;

use dockhand_store::StoreError;

/// A refusal, or a failure while checking credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, bad, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but not allowed (a cross-site cookie, an allowlist refusal).
    #[error("{0}")]
    Forbidden(String),
    /// Sign-in with GitHub is not configured here.
    #[error("GitHub sign-in is not configured on this server")]
    NotConfigured,
    /// Too many attempts or pending sign-ins; try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// GitHub failed or could not be reached.
    #[error("{0}")]
    Upstream(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our fault (a stored token that does not decrypt).
    #[error("{0}")]
    Internal(String),
}
