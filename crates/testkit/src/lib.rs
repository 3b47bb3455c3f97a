//! Loopback fakes that speak the real wire protocols, for tests, demos and UI
//! work without the real services. [`anthropic`] fakes the Messages API;
//! [`github`] fakes GitHub's OAuth flows, the REST calls sign-in and
//! publishing make, git smart HTTP, and signed webhooks.

pub mod anthropic;
pub mod github;
mod listen;

use std::net::SocketAddr;

pub use anthropic::Counting;
pub use anthropic::FakeAnthropic;
pub use anthropic::FakeOptions;
pub use anthropic::Fault;
pub use anthropic::Scenario;
pub use anthropic::ToolUse;
pub use anthropic::Turn;
pub use github::FakeGitHub;
pub use github::FakeGitHubOptions;
pub use github::RecordedRequest;
pub use github::send_webhook;
pub use github::webhook_signature;

/// Why a fake could not start.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The scenario does not parse or does not make sense; the message says where.
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
}
