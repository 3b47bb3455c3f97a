use std::time::Duration;

use dockhand_protocol::TokenUsage;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// One model request.
#[derive(Clone, Debug)]
pub struct TurnRequest {
    /// Model id, e.g. `claude-sonnet-5-5`.
    pub model: String,
    /// The system prompt.
    pub system: String,
    /// Tools offered to the model.
    pub tools: Vec<ToolSpec>,
    /// The conversation so far; the last message is the user's.
    pub messages: Vec<Message>,
    /// Output token limit for this turn.
    pub max_tokens: u32,
}

/// A tool definition.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolSpec {
    /// Anthropic's bash tool: `{"type":"bash_20250124","name":"bash"}`.
    Bash,
    /// Anthropic's text editor: `{"type":"text_editor_20250728","name":"str_replace_based_edit_tool"}`.
    TextEditor {
        /// Truncate `view` output to this many characters.
        max_characters: Option<u32>,
    },
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person, or tool results.
    User,
    /// The model.
    Assistant,
}

/// One message of the conversation, as stored and as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its blocks.
    pub content: Vec<ContentBlock>,
}

/// A content block. Blocks of types this client does not know (thinking,
/// server tools, ...) are kept verbatim in `Other` so they can be replayed exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call written by the model.
    ToolUse {
        /// `toolu_...`.
        id: String,
        /// Tool name.
        name: String,
        /// Tool input.
        input: Value,
    },
    /// The answer to a tool call.
    ToolResult {
        /// The `tool_use` id answered.
        tool_use_id: String,
        /// Result text.
        content: String,
        /// True when the tool failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// Any other block, kept as received.
    #[serde(untagged)]
    Other(Value),
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Finished its answer.
    EndTurn,
    /// Hit `max_tokens`.
    MaxTokens,
    /// Hit a stop sequence.
    StopSequence,
    /// Wants tools run.
    ToolUse,
    /// A long server-side turn paused; resend to continue.
    PauseTurn,
    /// Declined to continue.
    Refusal,
    /// The context window is full.
    ModelContextWindowExceeded,
    /// A stop reason this client does not know.
    Other(String),
}

impl StopReason {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "tool_use" => StopReason::ToolUse,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            "model_context_window_exceeded" => StopReason::ModelContextWindowExceeded,
            other => StopReason::Other(other.to_owned()),
        }
    }
}

/// One assembled model response.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnResponse {
    /// The content blocks, in order, with tool inputs parsed.
    pub content: Vec<ContentBlock>,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// Tokens used (final, cumulative values).
    pub usage: TokenUsage,
    /// The API's `request-id`, for support.
    pub request_id: Option<String>,
}

/// Told to the observer before a retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryNotice {
    /// What failed, in plain words ("model API returned 529: Overloaded").
    pub reason: String,
    /// The attempt that failed, starting at 1.
    pub attempt: u32,
    /// The wait before the next attempt.
    pub wait: Duration,
}
