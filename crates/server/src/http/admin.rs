//! Operator-only routes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use dockhand_protocol::GcParams;
use dockhand_protocol::GcReport;

use super::ApiError;
use super::ApiJson;
use crate::actor::Actor;
use crate::services::Services;

/// `POST /api/v1/gc`: removes old workspaces, orphaned containers and stale
/// environment images (or lists them, with `dry_run`).
#[utoipa::path(post, path = "/api/v1/gc", tag = "operators", request_body = GcParams, responses(
    (status = 200, description = "What was removed (or, with dry_run, would be)", body = GcReport),
    (status = 403, description = "Not an operator", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn gc(
    State(s): State<Arc<Services>>,
    actor: Actor,
    ApiJson(p): ApiJson<GcParams>,
) -> Result<Json<GcReport>, ApiError> {
    if !actor.is_operator() {
        return Err(ApiError::Forbidden("gc is for operators".into()));
    }
    Ok(Json(crate::janitor::gc(&s, p.dry_run).await))
}
