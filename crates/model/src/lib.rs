//! Model providers. The agent sees a model only through [`Model`]; the
//! [`anthropic`] module is the Anthropic Messages API client.

pub mod anthropic;
mod error;
mod retry;
mod types;

use async_trait::async_trait;

pub use error::ModelError;
pub use retry::RetryHints;
pub use retry::RetryPolicy;
pub use types::*;

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Hears about a turn while it streams.
pub trait TurnObserver: Send {
    /// New text for the text block at `index` of the turn being streamed.
    fn text_delta(&mut self, index: u32, text: &str);
    /// An attempt failed and the client will try again after `wait`. The
    /// next attempt streams the turn from the start, so text seen so far
    /// should be dropped.
    fn retry(&mut self, notice: &RetryNotice);
}

/// A model provider.
#[async_trait]
pub trait Model: Send + Sync {
    /// Sends one turn (streaming) and returns the assembled response, retrying
    /// transient failures by the client's [`RetryPolicy`].
    async fn turn(
        &self,
        req: &TurnRequest,
        observer: &mut dyn TurnObserver,
    ) -> Result<TurnResponse>;
}
