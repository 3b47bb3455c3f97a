//! Sessions and tokens: issuing the browser cookie and the CLI's access JWT and
//! rotating refresh token, sign-out, exchanging a token for a cookie (local auth
//! in a browser), WebSocket tickets, and personal API tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::delete;
use axum::routing::get;
use axum::routing::post;
use dockhand_store::Refresh;
use dockhand_store::TokenKind;
use dockhand_store::User;
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;

use super::AuthUser;
use super::SESSION_COOKIE;
use super::generate_token;
use super::github;
use super::hash_token;
use super::now_secs;
use crate::api::ApiError;
use crate::api::ApiJson;
use crate::secrets::AccessClaims;
use crate::services::Services;

/// What the CLI keeps after signing in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenPair {
    /// A short-lived access JWT.
    pub access_token: String,
    /// A single-use refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Routes under `/auth` and the account routes under `/api/v1`.
pub fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/auth/github/login", get(github::login))
        .route("/auth/github/callback", get(github::callback))
        .route("/auth/device/start", post(github::device_start))
        .route("/auth/device/poll", post(github::device_poll))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/token", post(token_login))
        .route("/auth/info", get(info))
        .route("/api/v1/me", get(me))
        .route("/api/v1/ws-ticket", post(ws_ticket))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/repos", get(repos))
}

fn session_id() -> String {
    generate_token().replacen("dh_", "s", 1)[..24].to_owned()
}

/// A new CLI session for `user`.
pub(super) async fn issue_cli_session(
    state: &Services,
    user: &User,
) -> Result<TokenPair, ApiError> {
    let sid = session_id();
    let refresh = generate_token().replacen("dh_", "dhr_", 1);
    let ttl_ms = state.config.auth.refresh_ttl_days as i64 * 86_400_000;
    let expires = dockhand_store::now_ms() + ttl_ms;
    state
        .store
        .create_session(
            sid.clone(),
            user.id,
            "cli",
            None,
            Some(hash_token(&refresh)),
            expires,
        )
        .await?;
    Ok(TokenPair {
        access_token: access_token(state, user.id, &sid),
        refresh_token: refresh,
        expires_in: state.config.auth.access_ttl_secs,
    })
}

fn access_token(state: &Services, user_id: i64, sid: &str) -> String {
    let now = now_secs();
    let claims = AccessClaims {
        sub: user_id,
        sid: sid.to_owned(),
        iat: now,
        exp: now + state.config.auth.access_ttl_secs,
    };
    state.keys.sign_access(&claims)
}

/// A new browser session; returns its `Set-Cookie` value.
pub(super) async fn start_web_session(
    state: &Services,
    user: &User,
) -> Result<HeaderValue, ApiError> {
    let value = generate_token().replacen("dh_", "dhs_", 1);
    let ttl = state.config.auth.session_ttl_days * 86_400;
    let expires = dockhand_store::now_ms() + ttl as i64 * 1000;
    state
        .store
        .create_session(
            session_id(),
            user.id,
            "web",
            Some(hash_token(&value)),
            None,
            expires,
        )
        .await?;
    let secure = if state.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={ttl}{secure}"
    ))
    .map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshParams {
    refresh_token: String,
}

/// `POST /auth/refresh`: spends a refresh token for a new pair. Reusing a spent one
/// revokes the session.
async fn refresh(
    State(state): State<Arc<Services>>,
    parts: Parts,
    ApiJson(p): ApiJson<RefreshParams>,
) -> Result<Json<TokenPair>, ApiError> {
    github::limit(
        &state,
        &super::client_ip(&parts, state.config.auth.trust_proxy),
    )?;
    let next = generate_token().replacen("dh_", "dhr_", 1);
    match state
        .store
        .rotate_refresh(hash_token(&p.refresh_token), hash_token(&next))
        .await?
    {
        Refresh::Rotated { session, user } => {
            super::still_allowed(&state, &user).await?;
            Ok(Json(TokenPair {
                access_token: access_token(&state, user.id, &session),
                refresh_token: next,
                expires_in: state.config.auth.access_ttl_secs,
            }))
        }
        Refresh::Reused => Err(ApiError::Unauthorized(
            "this refresh token was used already, so the session was revoked; sign in again".into(),
        )),
        Refresh::Invalid => Err(ApiError::Unauthorized(
            "unknown, expired or revoked refresh token; sign in again".into(),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutParams {
    refresh_token: Option<String>,
}

/// `POST /auth/logout`: revokes the session of the cookie, the bearer JWT, or the given refresh token.
async fn logout(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: LogoutParams = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            message: format!("the body is not valid: {e}"),
            fields: Default::default(),
        })?
    };
    let mut revoked = false;
    if let Some(value) = super::cookie(&headers, SESSION_COOKIE)
        && let Some((sid, _)) = state
            .store
            .session_by_cookie(&hash_token(&value), dockhand_store::now_ms())?
    {
        revoked |= state.store.revoke_session(&sid).await?;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(claims) = bearer.and_then(|t| state.keys.verify_access(t, now_secs()).ok()) {
        revoked |= state.store.revoke_session(&claims.sid).await?;
    }
    if let Some(rt) = body.refresh_token
        && let Some(sid) = state.store.session_of_refresh(&hash_token(&rt))?
    {
        revoked |= state.store.revoke_session(&sid).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    let status = if revoked {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    };
    Ok((status, [(header::SET_COOKIE, clear)]).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLoginParams {
    token: String,
}

/// `POST /auth/token {token}`: a browser signs in with the admin token or an API token.
async fn token_login(
    State(state): State<Arc<Services>>,
    parts: Parts,
    ApiJson(p): ApiJson<TokenLoginParams>,
) -> Result<Response, ApiError> {
    github::limit(
        &state,
        &super::client_ip(&parts, state.config.auth.trust_proxy),
    )?;
    let token = p.token.trim();
    let user = (token.starts_with("dh_") && token.len() <= 256)
        .then(|| state.store.user_by_token_hash(&hash_token(token)))
        .transpose()?
        .flatten()
        .ok_or_else(|| ApiError::Unauthorized("invalid or revoked token".into()))?;
    let cookie = start_web_session(&state, &user).await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"login": user.login})),
    )
        .into_response())
}

/// `GET /auth/info`: which ways to sign in this server offers, for the web UI.
async fn info(State(state): State<Arc<Services>>) -> Json<serde_json::Value> {
    Json(json!({"github": state.sign_in().is_some()}))
}

/// `GET /api/v1/me`.
async fn me(State(state): State<Arc<Services>>, user: AuthUser) -> Json<serde_json::Value> {
    let github = state.store.github_token(user.0.id).ok().flatten().is_some();
    Json(json!({"login": user.0.login, "operator": user.is_operator(), "github": github}))
}

/// `POST /api/v1/ws-ticket`: a 60-second, single-use ticket for `?ticket=` on the events WebSocket.
async fn ws_ticket(
    State(state): State<Arc<Services>>,
    user: AuthUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ticket = state
        .auth
        .issue_ticket(user.0)
        .ok_or_else(|| ApiError::RateLimited {
            message: "too many tickets outstanding".into(),
            retry_after: Duration::from_secs(60),
        })?;
    Ok(Json(json!({"ticket": ticket, "expires_in": 60})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTokenParams {
    name: String,
}

/// `POST /api/v1/tokens {name}`: a personal token, shown once.
async fn create_token(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    ApiJson(p): ApiJson<CreateTokenParams>,
) -> Result<Response, ApiError> {
    let name = p.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must be 1 to 100 printable characters",
        ));
    }
    let per_minute = state.config.auth.rate_limits.tokens_per_user;
    state
        .auth
        .limiter
        .check("tokens", &user.0.id.to_string(), per_minute)
        .map_err(|wait| ApiError::RateLimited {
            message: "too many tokens created; wait a moment".into(),
            retry_after: wait,
        })?;
    let token = generate_token();
    let id = state
        .store
        .insert_token(user.0.id, name, TokenKind::Personal, hash_token(&token))
        .await?;
    let body = json!({"id": id, "name": name, "token": token, "created_at": dockhand_store::rfc3339(dockhand_store::now_ms())});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/tokens`: the caller's tokens, without the secrets.
async fn list_tokens(
    State(state): State<Arc<Services>>,
    user: AuthUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tokens: Vec<serde_json::Value> = state
        .store
        .list_tokens(user.0.id)?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "created_at": dockhand_store::rfc3339(t.created_at),
                "last_used_at": t.last_used_at.map(dockhand_store::rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

/// `DELETE /api/v1/tokens/{id}`: revokes one of the caller's tokens.
async fn revoke_token(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound("no such token".into());
    let id: i64 = id.parse().map_err(|_| not_found())?;
    if state.store.revoke_token(user.0.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// `GET /api/v1/repos`: repositories the signed-in GitHub user can see (for suggestions).
async fn repos(
    State(state): State<Arc<Services>>,
    user: AuthUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (Some(gh), Some((sealed, _))) = (state.sign_in(), state.store.github_token(user.0.id)?)
    else {
        return Ok(Json(json!({"repos": []})));
    };
    let token = state
        .keys
        .open(&sealed)
        .ok_or_else(|| ApiError::Internal("the stored GitHub token cannot be decrypted".into()))?;
    let repos = gh
        .user_repos(&token, 1)
        .await
        .map_err(|e| ApiError::BadGateway(e.to_string()))?;
    Ok(Json(json!({"repos": repos})))
}
