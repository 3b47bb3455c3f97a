//! GitHub sign-in: the web flow for browsers (a random `state`, checked on the
//! callback and bound to the browser by a cookie) and the device flow for the CLI
//! and phones. Only the people the operator names may sign in; the user's GitHub
//! token is stored encrypted.

use axum::extract::Query;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Html;
use axum::response::IntoResponse;
use axum::response::Redirect;
use axum::response::Response;
use dockhand_forge::github::DevicePoll;
use dockhand_forge::github::GitHubClient;
use dockhand_forge::github::GitHubError;
use dockhand_forge::github::Grant;
use dockhand_store::User;
use dockhand_store::UserRole;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::generate_token;
use super::routes::TokenPair;
use super::routes::issue_cli_session;
use super::routes::start_web_session;
use crate::api::ApiError;
use crate::api::ApiJson;
use crate::services::Services;

const STATE_COOKIE: &str = "dockhand_oauth_state";
const STATE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// A device flow in progress, known to the CLI only by its handle.
pub(super) struct DeviceFlow {
    device_code: String,
}

fn too_many(retry_after: std::time::Duration) -> ApiError {
    ApiError::RateLimited {
        message: "too many sign-ins in progress from here; finish or wait for one".into(),
        retry_after,
    }
}

pub(super) fn page(status: StatusCode, title: &str, text: &str) -> Response {
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

fn github(state: &Services) -> Result<&GitHubClient, ApiError> {
    state
        .sign_in()
        .ok_or_else(|| ApiError::NotFound("GitHub sign-in is not configured on this server".into()))
}

pub(super) fn limit(state: &Services, parts_ip: &str) -> Result<(), ApiError> {
    let per_minute = state.config.auth.rate_limits.signin_per_ip;
    state
        .auth
        .limiter
        .check_ip("signin", parts_ip, per_minute)
        .map_err(|wait| ApiError::RateLimited {
            message: "too many sign-in attempts; wait and try again".into(),
            retry_after: wait,
        })
}

/// After GitHub said yes: checks the allowlist, then creates or updates the user and
/// stores the token encrypted. `Err` is the refusal for the person.
async fn admit(state: &Services, grant: &Grant) -> Result<User, Result<String, ApiError>> {
    let gh = github(state).map_err(Err)?;
    let gh_user = gh.user(&grant.token).await.map_err(|e| Err(gh_error(e)))?;
    super::allow::may_sign_in(state, gh, &grant.token, &gh_user.login)
        .await
        .map_err(Ok)?;
    let operator = state
        .config
        .auth
        .operators
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&gh_user.login));
    let role = if operator {
        UserRole::Operator
    } else {
        UserRole::User
    };
    let user = state
        .store
        .upsert_github_user(gh_user.id, &gh_user.login, role)
        .await
        .map_err(|e| Err(e.into()))?;
    let sealed = state.keys.seal(&grant.token);
    state
        .store
        .set_github_token(user.id, sealed, grant.scopes.clone())
        .await
        .map_err(|e| Err(e.into()))?;
    tracing::info!(login = %user.login, "signed in with GitHub");
    Ok(user)
}

fn gh_error(e: GitHubError) -> ApiError {
    ApiError::BadGateway(e.to_string())
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    login: Option<String>,
}

/// `GET /auth/github/login[?login=]`: off to GitHub with a fresh `state`.
pub(super) async fn login(
    State(state): State<Arc<Services>>,
    parts: Parts,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let ip = super::client_ip(&parts, state.config.auth.trust_proxy);
    limit(&state, &ip)?;
    let st = generate_token().replacen("dh_", "", 1);
    let owner = crate::ratelimit::ip_key(&ip);
    state
        .auth
        .states
        .put(st.clone(), &owner, STATE_TTL, ())
        .map_err(|_| too_many(STATE_TTL))?;
    let redirect = format!("{}/auth/github/callback", state.config.public_url());
    let login = q
        .login
        .as_deref()
        .filter(|l| !l.is_empty() && l.len() <= 39);
    let url = gh.authorize_url(&redirect, &st, login);
    let secure = if state.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{STATE_COOKIE}={st}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=600{secure}");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response())
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/github/callback`: checks `state`, exchanges the code, admits the user.
pub(super) async fn callback(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Ok(gh) = github(&state) else {
        return page(
            StatusCode::NOT_FOUND,
            "Not configured",
            "GitHub sign-in is not configured on this server.",
        );
    };
    if let Some(err) = q.error {
        let why = q.error_description.unwrap_or(err);
        return page(
            StatusCode::FORBIDDEN,
            "Sign-in cancelled",
            &format!("GitHub did not sign you in: {why}."),
        );
    }
    let cookie_state = super::cookie(&headers, STATE_COOKIE);
    let valid = match (&q.state, &cookie_state) {
        (Some(s), Some(c)) if s == c => state.auth.states.take(s).is_some(),
        _ => false,
    };
    if !valid {
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
    let redirect = format!("{}/auth/github/callback", state.config.public_url());
    let grant = match gh.exchange_code(&code, &redirect).await {
        Ok(g) => g,
        Err(e) => return page(StatusCode::BAD_GATEWAY, "Sign-in failed", &e.to_string()),
    };
    match admit(&state, &grant).await {
        Ok(user) => match start_web_session(&state, &user).await {
            Ok(cookie) => {
                let clear =
                    format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=0");
                let mut resp = Redirect::to("/").into_response();
                resp.headers_mut().append(header::SET_COOKIE, cookie);
                if let Ok(v) = clear.parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                resp
            }
            Err(e) => e.into_response(),
        },
        Err(Ok(why)) => page(StatusCode::FORBIDDEN, "Not allowed", &why),
        Err(Err(e)) => e.into_response(),
    }
}

/// `POST /auth/device/start`: a code for the person to enter at GitHub.
pub(super) async fn device_start(
    State(state): State<Arc<Services>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let ip = super::client_ip(&parts, state.config.auth.trust_proxy);
    limit(&state, &ip)?;
    let code = gh.device_code().await.map_err(gh_error)?;
    let handle = generate_token().replacen("dh_", "dev_", 1);
    let ttl = std::time::Duration::from_secs(code.expires_in.clamp(60, 3600));
    let flow = DeviceFlow {
        device_code: code.device_code,
    };
    let owner = crate::ratelimit::ip_key(&ip);
    state
        .auth
        .devices
        .put(handle.clone(), &owner, ttl, flow)
        .map_err(|_| too_many(ttl))?;
    Ok(axum::Json(json!({
        "handle": handle,
        "user_code": code.user_code,
        "verification_uri": code.verification_uri,
        "interval": code.interval,
        "expires_in": code.expires_in,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PollParams {
    handle: String,
}

/// `POST /auth/device/poll {handle}`: asks GitHub once; the caller keeps the pace.
pub(super) async fn device_poll(
    State(state): State<Arc<Services>>,
    ApiJson(p): ApiJson<PollParams>,
) -> Result<Response, ApiError> {
    let gh = github(&state)?;
    let Some((owner, flow)) = state.auth.devices.take(&p.handle) else {
        return Ok(axum::Json(json!({"status": "expired"})).into_response());
    };
    let reply = |v: serde_json::Value| Ok(axum::Json(v).into_response());
    match gh.poll_device(&flow.device_code).await.map_err(gh_error)? {
        DevicePoll::Pending => {
            let ttl = std::time::Duration::from_secs(900);
            let _ = state.auth.devices.put(p.handle, &owner, ttl, flow);
            reply(json!({"status": "pending"}))
        }
        DevicePoll::SlowDown(interval) => {
            let ttl = std::time::Duration::from_secs(900);
            let _ = state.auth.devices.put(p.handle, &owner, ttl, flow);
            reply(json!({"status": "slow_down", "interval": interval}))
        }
        DevicePoll::Expired => reply(json!({"status": "expired"})),
        DevicePoll::Granted(grant) => match admit(&state, &grant).await {
            Ok(user) => {
                let pair: TokenPair = issue_cli_session(&state, &user).await?;
                reply(json!({"status": "ok", "login": user.login, "tokens": pair}))
            }
            Err(Ok(why)) => Err(ApiError::Forbidden(why)),
            Err(Err(e)) => Err(e),
        },
    }
}
