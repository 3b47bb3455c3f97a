//! The OpenAPI document, generated from the handlers' annotations and the
//! protocol types, so it cannot drift from either.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::HttpMethod;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::security::HttpAuthScheme;
use utoipa::openapi::security::HttpBuilder;
use utoipa::openapi::security::SecurityScheme;

use super::account;
use super::admin;
use super::events;
use super::health;
use super::sessions;
use super::sign_in;
use super::tasks;
use super::webhooks;

/// Routes only operators may use: marked `x-dockhand-operator-only`.
const OPERATOR_ONLY: &[(&str, HttpMethod)] = &[("/api/v1/gc", HttpMethod::Post)];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dockhand API",
        version = "1",
        description = "Background coding agents on your own server. Every route except the sign-in \
                       routes, /healthz, /metrics, the webhook and this document needs \
                       `Authorization: Bearer TOKEN` (or the browser's session cookie). Errors are \
                       {\"error\": {\"code\", \"message\", \"fields\"?}}."
    ),
    paths(
        health::healthz, health::metrics, openapi,
        tasks::create, tasks::list, tasks::show, tasks::follow_up, tasks::cancel,
        events::events, admin::gc,
        account::me, account::create_token, account::list_tokens, account::revoke_token,
        account::repos, sessions::ws_ticket,
        sign_in::login, sign_in::callback, sign_in::device_start, sign_in::device_poll,
        sessions::refresh, sessions::logout, sessions::token_login, sessions::info,
        webhooks::github,
    ),
    security(("bearer" = [])),
    modifiers(&Conventions)
)]
struct ApiDoc;

/// The bearer scheme; public routes with no security at all (`[]`); the
/// operator-only mark.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let bearer =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", bearer);
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                // `security(())` makes `[{}]`: "optional"; these need none.
                if op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.len() == 1 && is_empty(&s[0]))
                {
                    op.security = Some(Vec::new());
                }
                if OPERATOR_ONLY.iter().any(|(p, m)| p == path && *m == method) {
                    let mark = ExtensionsBuilder::new()
                        .add("x-dockhand-operator-only", true)
                        .build();
                    op.extensions
                        .get_or_insert_with(Default::default)
                        .merge(mark);
                }
            }
        }
    }
}

fn is_empty(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// The document, as JSON.
pub(super) static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the OpenAPI document failed: {e}\"}}"))
});

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "server", security(()), responses(
    (status = 200, description = "This document"),
))]
pub(super) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
