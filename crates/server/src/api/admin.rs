//! Operator-only routes.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use std::sync::Arc;

use super::ApiError;
use super::ApiJson;
use crate::auth::AuthUser;
use crate::janitor::GcReport;
use crate::services::Services;

pub(super) fn router() -> Router<Arc<Services>> {
    Router::new().route("/api/v1/gc", post(gc))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GcParams {
    #[serde(default)]
    dry_run: bool,
}

/// Removes old workspaces, orphaned containers and stale environment images.
async fn gc(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    ApiJson(p): ApiJson<GcParams>,
) -> Result<Json<GcReport>, ApiError> {
    if !user.is_operator() {
        return Err(ApiError::Forbidden("gc is for operators".into()));
    }
    Ok(Json(crate::janitor::gc(&state, p.dry_run).await))
}
