use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::Event;
use crate::Task;

/// `POST /api/v1/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskParams {
    /// `owner/name`, an `http(s)` git URL, or a local path / `file://` URL.
    pub repo: String,
    /// What the agent should do.
    pub prompt: String,
    /// The branch to start from; the repository's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// A model id other than the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A sandbox image other than the repository's or the default (docker backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `POST /api/v1/tasks/{id}/messages`: a follow-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpParams {
    /// The follow-up text.
    pub text: String,
}

/// `GET /api/v1/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskListResponse {
    /// Tasks, newest first.
    pub tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/tasks/{id}/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsResponse {
    /// Stored events after the requested seq, in order.
    pub events: Vec<Event>,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// `{"code", "message", "fields"?}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code (`invalid_request`, `unauthorized`, `not_found`, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Per-field problems, for invalid input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// Always `ok` while the coordinator answers.
    pub status: String,
    /// What an operator should know: a fallback to the local sandbox, deprecated settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The query of `GET /api/v1/tasks`.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListTasksQuery {
    /// Only tasks in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only tasks on this repository, as it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// `next_cursor` from the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Tasks per page, 1 to 200 (50 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The query of `GET /api/v1/tasks/{id}/events`.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Events per page, 1 to 10000 (1000 by default); not for the WebSocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// A WebSocket ticket, for browsers (read when authenticating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}
