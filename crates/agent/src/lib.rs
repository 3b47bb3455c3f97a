//! The agent loop: model ⇄ tools, with budgets, until the model ends its turn.
//!
//! The loop runs in the coordinator; only tool calls run in the sandbox. Its
//! state lives in the store (`messages`, `inbox`, `tool_calls`), so a run can be
//! resumed after a crash: see [`run`].

mod checkpoint;
mod error;
#[cfg(test)]
mod fakes;
pub mod output;
mod prompt;
mod run;
pub mod tools;

use std::time::Duration;

use dockhand_protocol::TaskId;

pub use checkpoint::Checkpointer;
pub use error::AgentError;
pub use prompt::SYSTEM_PROMPT;
pub use run::AgentCtx;
pub use run::RunSummary;
pub use run::run;
pub use tools::ToolLimits;

/// Limits on one run (the first prompt, or one follow-up).
#[derive(Clone, Debug)]
pub struct Budgets {
    /// Most model turns.
    pub max_turns: u32,
    /// Most tokens (input, cached input and output together).
    pub max_tokens: u64,
    /// Most wall time.
    pub max_wall: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_turns: 100,
            max_tokens: 20_000_000,
            max_wall: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// Agent settings.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Model id.
    pub model: String,
    /// Output token limit per turn.
    pub max_tokens: u32,
    /// Budgets per run.
    pub budgets: Budgets,
    /// Tool limits.
    pub tools: ToolLimits,
    /// The system prompt.
    pub system_prompt: String,
}

impl AgentConfig {
    /// Defaults for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        AgentConfig {
            model: model.into(),
            max_tokens: 16_384,
            budgets: Budgets::default(),
            tools: ToolLimits::default(),
            system_prompt: SYSTEM_PROMPT.to_owned(),
        }
    }
}

/// Receives live-only output: streaming text deltas.
pub trait LiveSink: Send + Sync {
    /// New text for block `index` of the turn being streamed.
    fn assistant_delta(&self, task: &TaskId, index: u32, text: &str);
}
