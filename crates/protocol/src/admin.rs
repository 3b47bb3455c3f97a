//! Operator routes and the webhook's answer.

use serde::Deserialize;
use serde::Serialize;

/// `POST /api/v1/gc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GcParams {
    /// List what would go without removing anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// One thing `gc` looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcItem {
    /// What it is: a path, a container id or an image.
    pub what: String,
    /// The task it belongs to, if any.
    pub task: Option<String>,
    /// `remove` (dry run), `removed`, `kept` or `failed`.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// What `gc` did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GcReport {
    /// Whether anything was actually removed.
    pub dry_run: bool,
    /// Task workspaces.
    pub workspaces: Vec<GcItem>,
    /// Containers.
    pub containers: Vec<GcItem>,
    /// Environment images.
    pub images: Vec<GcItem>,
}

/// What `POST /webhooks/github` answers: `accepted` or `duplicate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAccepted {
    /// `accepted` (handled after the answer) or `duplicate` (seen before).
    pub status: String,
}
