use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use crate::TaskStatus;
use crate::TokenUsage;

/// One entry of a task's append-only event log, as stored and as sent:
/// `{"seq", "kind", "ts", "data"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Per-task sequence number, starting at 1, without gaps.
    pub seq: u64,
    /// RFC 3339 time the event was produced, in UTC with milliseconds.
    pub ts: String,
    /// The kind and its payload.
    #[serde(flatten)]
    pub body: EventBody,
}

/// An event's kind and payload; serialized as `"kind": ..., "data": {...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    /// The task changed status.
    Status(StatusEvent),
    /// A start-up step finished.
    Phase(PhaseEvent),
    /// A person's prompt or follow-up.
    UserMessage(UserMessageEvent),
    /// A finished text block written by the agent.
    AssistantText(AssistantTextEvent),
    /// The agent called a tool.
    ToolCall(ToolCallEvent),
    /// A chunk of a running command's output.
    ToolOutput(ToolOutputEvent),
    /// A tool call ended.
    ToolResult(ToolResultEvent),
    /// A model request failed and will be tried again.
    Retry(RetryEvent),
    /// Tokens used by one model turn, and the running total.
    Usage(UsageEvent),
    /// The diff stat of the task's branch.
    Diff(DiffEvent),
    /// Something went wrong.
    Error(ErrorEvent),
    /// A pull request was opened or updated.
    PullRequest(PullRequestEvent),
    /// The workspace was checkpointed after a turn, or the checkpoint was skipped.
    Checkpoint(CheckpointEvent),
}

impl EventBody {
    /// The wire name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Status(_) => "status",
            EventBody::Phase(_) => "phase",
            EventBody::UserMessage(_) => "user_message",
            EventBody::AssistantText(_) => "assistant_text",
            EventBody::ToolCall(_) => "tool_call",
            EventBody::ToolOutput(_) => "tool_output",
            EventBody::ToolResult(_) => "tool_result",
            EventBody::Retry(_) => "retry",
            EventBody::Usage(_) => "usage",
            EventBody::Diff(_) => "diff",
            EventBody::Error(_) => "error",
            EventBody::PullRequest(_) => "pull_request",
            EventBody::Checkpoint(_) => "checkpoint",
        }
    }

    /// The payload alone, as JSON (what the store keeps in `data`).
    pub fn data_json(&self) -> serde_json::Result<String> {
        match self {
            EventBody::Status(d) => serde_json::to_string(d),
            EventBody::Phase(d) => serde_json::to_string(d),
            EventBody::UserMessage(d) => serde_json::to_string(d),
            EventBody::AssistantText(d) => serde_json::to_string(d),
            EventBody::ToolCall(d) => serde_json::to_string(d),
            EventBody::ToolOutput(d) => serde_json::to_string(d),
            EventBody::ToolResult(d) => serde_json::to_string(d),
            EventBody::Retry(d) => serde_json::to_string(d),
            EventBody::Usage(d) => serde_json::to_string(d),
            EventBody::Diff(d) => serde_json::to_string(d),
            EventBody::Error(d) => serde_json::to_string(d),
            EventBody::PullRequest(d) => serde_json::to_string(d),
            EventBody::Checkpoint(d) => serde_json::to_string(d),
        }
    }
}

/// Payload of `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusEvent {
    /// The new status.
    pub status: TaskStatus,
    /// Why, when the status needs a reason (failed, cancelled, re-queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Payload of `phase`: one start-up step and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseEvent {
    /// `clone`, `container`, `setup`, `prepare` or `ready`.
    pub phase: String,
    /// Wall time of the step.
    pub duration_ms: u64,
    /// A short note (for example "reused workspace").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The sandbox's network level, on the `container` (`sandbox` on local) phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::NetworkLevel>,
}

/// Payload of `user_message`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserMessageEvent {
    /// The message text.
    pub text: String,
}

/// Payload of `assistant_text`; it replaces the live `assistant_delta`s of its block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssistantTextEvent {
    /// The block's text.
    pub text: String,
    /// The block's index within its model turn.
    pub index: u32,
}

/// Payload of `tool_call`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCallEvent {
    /// The model's `tool_use` id.
    pub id: String,
    /// The tool's name (`bash`, `str_replace_based_edit_tool`).
    pub name: String,
    /// The tool input as the model wrote it.
    pub input: Value,
}

/// Payload of `tool_output`: a chunk of a running command's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolOutputEvent {
    /// The `tool_use` id the output belongs to.
    pub id: String,
    /// The text (stdout and stderr interleaved, lossy UTF-8).
    pub text: String,
}

/// Payload of `tool_result`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolResultEvent {
    /// The `tool_use` id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The result text sent back to the model (already capped).
    pub output: String,
    /// True when the tool itself failed (bad input, timeout, dead shell).
    pub is_error: bool,
    /// The command's exit code, for commands that ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time of the call.
    pub duration_ms: u64,
}

/// Payload of `retry`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryEvent {
    /// What failed, in plain words (for example "model API returned 529: Overloaded").
    pub reason: String,
    /// Which attempt failed, starting at 1.
    pub attempt: u32,
    /// How long the client waits before the next attempt.
    pub wait_ms: u64,
}

/// Payload of `usage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageEvent {
    /// This turn's tokens.
    pub turn: TokenUsage,
    /// The task's total so far.
    pub total: TokenUsage,
}

/// Payload of `diff`: what the task's branch changed against its base.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffEvent {
    /// The task branch.
    pub branch: String,
    /// The commit at the branch head, if the task committed anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Files changed.
    pub files_changed: u32,
    /// Lines added.
    pub insertions: u32,
    /// Lines removed.
    pub deletions: u32,
    /// `git diff --stat` output (capped).
    pub stat: String,
}

/// Payload of `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorEvent {
    /// What went wrong, in plain words.
    pub message: String,
}

/// Payload of `pull_request`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullRequestEvent {
    /// The PR's web URL.
    pub url: String,
    /// The PR number.
    pub number: u64,
    /// True when the PR already existed and got new commits.
    pub updated: bool,
}

/// Payload of `checkpoint`: a snapshot of the workspace taken after a turn that
/// changed files, stored by the coordinator; or, with `skipped_reason`, one that
/// was not stored (over `sandbox.checkpoint_max_mb`, or it failed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointEvent {
    /// The index of the conversation message (the turn's tool results) it follows.
    pub turn: u32,
    /// The checkpoint commit; absent when the snapshot failed before there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Size of the incremental bundle, in bytes (at least this many when skipped for size).
    pub bytes: u64,
    /// Why the checkpoint was not stored; absent when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_reason: Option<String>,
}
