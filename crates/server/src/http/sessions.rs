//! Session routes: refreshing the CLI's tokens, signing out, a browser signing
//! in with a token, what sign-in the server offers, and WebSocket tickets.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use dockhand_protocol::AuthInfo;
use dockhand_protocol::LogoutParams;
use dockhand_protocol::RefreshParams;
use dockhand_protocol::TokenLoginParams;
use dockhand_protocol::TokenLoginResponse;
use dockhand_protocol::TokenPair;
use dockhand_protocol::WsTicket;

use super::ApiError;
use super::ApiJson;
use super::extract::ClientIp;
use super::extract::cookie;
use crate::actor::Actor;
use crate::auth::SESSION_COOKIE;
use crate::auth::TICKET_TTL;
use crate::services::Services;

/// `POST /auth/refresh`: spends a refresh token for a new pair.
#[utoipa::path(post, path = "/auth/refresh", tag = "sign-in", security(()), request_body = RefreshParams, responses(
    (status = 200, description = "A new pair; the refresh token is spent", body = TokenPair),
    (status = 401, description = "Unknown, spent (the session is then revoked) or expired", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many attempts", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn refresh(
    State(s): State<Arc<Services>>,
    ClientIp(ip): ClientIp,
    ApiJson(p): ApiJson<RefreshParams>,
) -> Result<Json<TokenPair>, ApiError> {
    crate::auth::limit_sign_in(&s, &ip)?;
    Ok(Json(crate::auth::refresh(&s, &p.refresh_token).await?))
}

/// `POST /auth/logout`: revokes the session of the cookie, the bearer JWT, or
/// the given refresh token; 204 when one was live.
#[utoipa::path(post, path = "/auth/logout", tag = "sign-in", security(()), request_body(content = Option<LogoutParams>, description = "Optional"), responses(
    (status = 204, description = "A session was revoked"),
    (status = 200, description = "No live session was named"),
))]
pub(super) async fn logout(
    State(s): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LogoutParams = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            message: format!("the body is not valid: {e}"),
            fields: Default::default(),
        })?
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let session_cookie = cookie(&headers, SESSION_COOKIE);
    let refresh = body.refresh_token.as_deref();
    let revoked = crate::auth::logout(&s, session_cookie, bearer, refresh).await?;
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    let status = if revoked {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    };
    Ok((status, [(header::SET_COOKIE, clear)]).into_response())
}

/// `POST /auth/token {token}`: a browser signs in with the admin token or an API token.
#[utoipa::path(post, path = "/auth/token", tag = "sign-in", security(()), request_body = TokenLoginParams, responses(
    (status = 200, description = "Signed in: the session cookie is set", body = TokenLoginResponse),
    (status = 401, description = "Invalid or revoked token", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many attempts", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn token_login(
    State(s): State<Arc<Services>>,
    ClientIp(ip): ClientIp,
    ApiJson(p): ApiJson<TokenLoginParams>,
) -> Result<Response, ApiError> {
    crate::auth::limit_sign_in(&s, &ip)?;
    let (user, session) = crate::auth::token_login(&s, &p.token).await?;
    let body = TokenLoginResponse { login: user.login };
    Ok(([(header::SET_COOKIE, session)], Json(body)).into_response())
}

/// `GET /auth/info`: which ways to sign in this server offers, for the web UI.
#[utoipa::path(get, path = "/auth/info", tag = "sign-in", security(()), responses(
    (status = 200, description = "The ways to sign in", body = AuthInfo),
))]
pub(super) async fn info(State(s): State<Arc<Services>>) -> Json<AuthInfo> {
    Json(AuthInfo {
        github: s.sign_in().is_some(),
    })
}

/// `POST /api/v1/ws-ticket`: a 60-second, single-use ticket for `?ticket=` on
/// the events WebSocket.
#[utoipa::path(post, path = "/api/v1/ws-ticket", tag = "account", responses(
    (status = 200, description = "A single-use ticket for `?ticket=` on the events WebSocket", body = WsTicket),
    (status = 401, description = "No valid credentials", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many tickets outstanding", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn ws_ticket(
    State(s): State<Arc<Services>>,
    actor: Actor,
) -> Result<Json<WsTicket>, ApiError> {
    let ticket = s.auth.issue_ticket(actor.user)?;
    Ok(Json(WsTicket {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    }))
}
