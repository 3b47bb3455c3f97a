//! The HTTP API, the web UI and the webhook: one file per resource, the whole
//! router here. Handlers extract, call the services, and map the error.

mod account;
mod admin;
mod error;
mod events;
mod extract;
mod health;
mod openapi;
mod sessions;
mod sign_in;
mod tasks;
mod ui;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::delete;
use axum::routing::get;
use axum::routing::post;

pub use error::ApiError;
pub use error::ApiJson;
pub use extract::ClientIp;

use crate::services::Services;

/// The whole HTTP app.
pub fn router(services: Arc<Services>) -> Router {
    let max_body = services.config.limits.max_body_bytes;
    let api = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/api/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/api/v1/tasks/{id}", get(tasks::show))
        .route("/api/v1/tasks/{id}/messages", post(tasks::follow_up))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks/{id}/events", get(events::events))
        .route("/api/v1/gc", post(admin::gc))
        .route("/api/v1/me", get(account::me))
        .route("/api/v1/ws-ticket", post(sessions::ws_ticket))
        .route(
            "/api/v1/tokens",
            post(account::create_token).get(account::list_tokens),
        )
        .route("/api/v1/tokens/{id}", delete(account::revoke_token))
        .route("/api/v1/repos", get(account::repos))
        .route("/auth/github/login", get(sign_in::login))
        .route("/auth/github/callback", get(sign_in::callback))
        .route("/auth/device/start", post(sign_in::device_start))
        .route("/auth/device/poll", post(sign_in::device_poll))
        .route("/auth/refresh", post(sessions::refresh))
        .route("/auth/logout", post(sessions::logout))
        .route("/auth/token", post(sessions::token_login))
        .route("/auth/info", get(sessions::info))
        .route("/webhooks/github", post(webhooks::github))
        .route("/", get(ui::index));
    ui::assets(api)
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(services)
}
