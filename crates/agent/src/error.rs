use dockhand_model::ModelError;
use dockhand_sandbox::SandboxError;
use dockhand_store::StoreError;

/// Why a run stopped early. Every variant ends the task; the Display text is
/// what the person sees as the task's error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model API failed for good (a non-retryable 4xx, or retries ran out).
    #[error("{0}")]
    Model(#[from] ModelError),
    /// A budget was used up; the text names it.
    #[error("budget exhausted: {0}")]
    Budget(String),
    /// The model declined to continue.
    #[error("the model refused to continue (stop_reason refusal){}", refusal_text(.0))]
    Refusal(String),
    /// The model hit `max_tokens` while writing a tool call, so the call is incomplete.
    #[error(
        "the model hit its output limit (max_tokens) in the middle of a tool call; raise model.max_tokens or ask for smaller steps"
    )]
    TruncatedToolCall,
    /// The conversation outgrew the model's context window.
    #[error(
        "the conversation no longer fits in the model's context window (stop_reason model_context_window_exceeded)"
    )]
    ContextWindow,
    /// A stop reason this version does not know.
    #[error("the model stopped for a reason this Dockhand does not know: {0}")]
    UnknownStop(String),
    /// A person cancelled the task.
    #[error("cancelled")]
    Cancelled,
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The sandbox failed in a way the model cannot work around.
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
}

fn refusal_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}
