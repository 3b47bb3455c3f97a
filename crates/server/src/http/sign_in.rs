//! GitHub sign-in routes: the web flow (with its HTML pages for the browser)
//! and the device flow.

use std::sync::Arc;

use axum::Json;
use axum::extract::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::Html;
use axum::response::IntoResponse;
use axum::response::Redirect;
use axum::response::Response;
use dockhand_protocol::DevicePollParams;
use dockhand_protocol::DevicePollResponse;
use dockhand_protocol::DeviceStart;
use serde::Deserialize;

use super::ApiError;
use super::ApiJson;
use super::extract::ClientIp;
use super::extract::cookie;
use crate::auth::AuthError;
use crate::auth::github;
use crate::services::Services;

/// A small page for the browser, for the ends of the web flow.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Dockhand</title><body style=\"font-family:system-ui;max-width:40rem;margin:2rem auto;padding:0 1rem\">\
         <h1>{t}</h1><p>{x}</p><p><a href=\"/\">Back to Dockhand</a></p></body></html>",
        t = esc(title),
        x = esc(text)
    );
    (status, Html(body)).into_response()
}

/// The query of `GET /auth/github/login`.
#[derive(Deserialize)]
pub(super) struct LoginQuery {
    login: Option<String>,
}

/// `GET /auth/github/login[?login=]`: off to GitHub with a fresh `state`.
#[utoipa::path(get, path = "/auth/github/login", tag = "sign-in", security(()), params(("login" = Option<String>, Query, description = "A GitHub login to suggest")), responses(
    (status = 303, description = "Off to GitHub"),
    (status = 404, description = "GitHub sign-in is not configured", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many sign-ins from here", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn login(
    State(s): State<Arc<Services>>,
    ClientIp(ip): ClientIp,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let start = github::begin_web(&s, &ip, q.login.as_deref())?;
    Ok((
        [(header::SET_COOKIE, start.cookie)],
        Redirect::to(&start.url),
    )
        .into_response())
}

/// The query GitHub sends to `GET /auth/github/callback`.
#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/github/callback`: checks `state`, exchanges the code, admits the user.
#[utoipa::path(get, path = "/auth/github/callback", tag = "sign-in", security(()), responses(
    (status = 303, description = "Signed in; back to the app"),
    (status = 400, description = "A stale or foreign sign-in link (an HTML page)"),
    (status = 403, description = "Not allowed to sign in here (an HTML page)"),
))]
pub(super) async fn callback(
    State(s): State<Arc<Services>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    if s.sign_in().is_none() {
        let text = "GitHub sign-in is not configured on this server.";
        return page(StatusCode::NOT_FOUND, "Not configured", text);
    }
    if let Some(err) = q.error {
        let why = q.error_description.unwrap_or(err);
        let text = format!("GitHub did not sign you in: {why}.");
        return page(StatusCode::FORBIDDEN, "Sign-in cancelled", &text);
    }
    let browser_state = cookie(&headers, github::STATE_COOKIE);
    if !github::take_state(&s, q.state.as_deref(), browser_state) {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in link not valid",
            "This sign-in link is expired, was used already, or did not start in this browser. Start again.",
        );
    }
    let Some(code) = q.code else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "GitHub sent no code.",
        );
    };
    let started = match github::finish_web(&s, &code).await {
        Ok(user) => crate::auth::start_web_session(&s, &user).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(session) => {
            let mut resp = Redirect::to("/").into_response();
            for value in [session, github::clear_state_cookie()] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(AuthError::Forbidden(why)) => page(StatusCode::FORBIDDEN, "Not allowed", &why),
        Err(AuthError::Upstream(why)) => page(StatusCode::BAD_GATEWAY, "Sign-in failed", &why),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /auth/device/start`: a code for the person to enter at GitHub.
#[utoipa::path(post, path = "/auth/device/start", tag = "sign-in", security(()), responses(
    (status = 200, description = "A code to enter at GitHub", body = DeviceStart),
    (status = 404, description = "GitHub sign-in is not configured", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many sign-ins from here", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn device_start(
    State(s): State<Arc<Services>>,
    ClientIp(ip): ClientIp,
) -> Result<Json<DeviceStart>, ApiError> {
    Ok(Json(github::device_start(&s, &ip).await?))
}

/// `POST /auth/device/poll {handle}`: asks GitHub once; the caller keeps the pace.
#[utoipa::path(post, path = "/auth/device/poll", tag = "sign-in", security(()), request_body = DevicePollParams, responses(
    (status = 200, description = "Pending, slow down, expired, or signed in", body = DevicePollResponse),
    (status = 403, description = "Not allowed to sign in here", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn device_poll(
    State(s): State<Arc<Services>>,
    ApiJson(p): ApiJson<DevicePollParams>,
) -> Result<Json<DevicePollResponse>, ApiError> {
    Ok(Json(github::device_poll(&s, &p.handle).await?))
}
