//! The HTTP API: one router per module, auth as an extractor.

mod admin;
mod error;
mod events;
pub(crate) mod tasks;
mod webhooks;
// The web UI lives beside the API and is routed from here.
#[path = "../ui/mod.rs"]
mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

pub use error::ApiError;
pub use error::ApiJson;

use crate::services::Services;

const OPENAPI: &str = include_str!("openapi.json");

/// The whole HTTP app.
pub fn router(state: Arc<Services>) -> Router {
    let max_body = state.config.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::render))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(tasks::router())
        .merge(events::router())
        .merge(admin::router())
        .merge(webhooks::router())
        .merge(ui::router())
        .merge(crate::auth::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `GET /healthz`: `{"status": "ok"}`, with `warnings` when the start had any.
async fn healthz(
    State(state): State<Arc<Services>>,
) -> axum::Json<dockhand_protocol::HealthResponse> {
    axum::Json(dockhand_protocol::HealthResponse {
        status: "ok".into(),
        warnings: state.warnings.clone(),
    })
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> impl IntoResponse {
    let body = r#"{"error":{"code":"method_not_allowed","message":"this route does not take that method"}}"#;
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
}
