//! The public routes that say how the server is: `/healthz`, `/metrics`, the
//! OpenAPI document, and the answers for unknown routes and methods.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use dockhand_protocol::HealthResponse;

use super::ApiError;
use crate::services::Services;

/// `GET /healthz`: `{"status": "ok"}`, with `warnings` when the start had any.
#[utoipa::path(get, path = "/healthz", tag = "server", security(()), responses(
    (status = 200, description = "Serving; `warnings` when the start had any", body = HealthResponse),
))]
pub(super) async fn healthz(State(s): State<Arc<Services>>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        warnings: s.warnings.clone(),
    })
}

/// `GET /metrics`, in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "server", security(()), responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain"),
))]
pub(super) async fn metrics(State(s): State<Arc<Services>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&s),
    )
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub(super) async fn method_not_allowed() -> impl IntoResponse {
    let body = r#"{"error":{"code":"method_not_allowed","message":"this route does not take that method"}}"#;
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
}
