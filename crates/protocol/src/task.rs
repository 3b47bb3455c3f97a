use serde::Deserialize;
use serde::Serialize;

use crate::TaskId;

/// Where a task is in its life: `queued → provisioning → running → publishing →
/// succeeded | failed | cancelled`. A finished task that takes a follow-up goes back
/// to `queued`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a free slot.
    Queued,
    /// Cloning the repository and starting the sandbox.
    Provisioning,
    /// The agent loop is working.
    Running,
    /// Committing the result and handing it back.
    Publishing,
    /// Finished with the agent's work published.
    Succeeded,
    /// Stopped by an error, named in the task's `error`.
    Failed,
    /// Stopped by a person.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Queued,
        TaskStatus::Provisioning,
        TaskStatus::Running,
        TaskStatus::Publishing,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Provisioning => "provisioning",
            TaskStatus::Running => "running",
            TaskStatus::Publishing => "publishing",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        TaskStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the task has ended (it may still take a follow-up).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// True while a runner owns the task.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskStatus::Provisioning | TaskStatus::Running | TaskStatus::Publishing
        )
    }

    /// The status machine: whether a task in this status may move to `to`.
    /// A runner's task goes back to `provisioning` when a restarted coordinator
    /// resumes it; only a published task succeeds; a finished one takes a
    /// follow-up by going back to `queued`.
    pub fn can_go_to(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Queued, Provisioning | Cancelled)
                | (
                    Provisioning | Running | Publishing,
                    Provisioning | Failed | Cancelled
                )
                | (Provisioning, Running)
                | (Running, Publishing)
                | (Publishing, Succeeded)
                | (Succeeded | Failed | Cancelled, Queued)
        )
    }

    /// The statuses a task may be in to move to `to`.
    pub fn sources_of(to: TaskStatus) -> Vec<TaskStatus> {
        TaskStatus::ALL
            .into_iter()
            .filter(|from| from.can_go_to(to))
            .collect()
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sandbox serving a task, so operators can find its container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SandboxRef {
    /// `docker` or `local`.
    pub backend: String,
    /// The backend's own id (a container id for `docker`).
    pub id: String,
}

/// Token counts, summed over a task's model turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    /// Adds another turn's usage.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }

    /// All tokens: input (cached or not) plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
    }
}

/// A pull request opened for a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PullRequestRef {
    /// The PR's web URL.
    pub url: String,
    /// The PR number.
    pub number: u64,
}

/// A task as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// The repository as the user gave it (`owner/name`, a git URL, or a local path).
    pub repo: String,
    /// The first prompt.
    pub prompt: String,
    /// A short title taken from the prompt.
    pub title: String,
    /// The branch the work started from; `None` means the repository's default.
    pub base_branch: Option<String>,
    /// The branch the task commits to: `dockhand/<task-id>-<slug>`.
    pub branch: String,
    /// The model id the agent uses.
    pub model: String,
    /// The sandbox image the task asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// Why the task failed or was cancelled, in plain words.
    pub error: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// RFC 3339 time the latest run ended.
    pub finished_at: Option<String>,
    /// The sandbox serving the task, once it has one.
    pub sandbox: Option<SandboxRef>,
    /// Token usage over all turns.
    pub usage: TokenUsage,
    /// Model turns taken so far.
    pub turns: u32,
    /// The last committed event's sequence number.
    pub last_seq: u64,
    /// The pull request, once there is one.
    pub pull_request: Option<PullRequestRef>,
}
