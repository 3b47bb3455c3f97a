//! Who is calling. Credentials, in order: a bearer token (an API token `dh_…`,
//! the admin token, or an access JWT whose session is live), the browser's
//! session cookie (with an Origin check on state-changing requests), or, on the
//! events WebSocket only, a short-lived single-use `ticket`.

mod allow;
mod github;
mod local;
mod pending;
mod routes;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::header;
use axum::http::request::Parts;
use dockhand_store::User;
use dockhand_store::UserRole;

pub use local::ADMIN_TOKEN_FILE;
pub use local::AuthSetupError;
pub use local::bootstrap_admin;
pub use local::generate_token;
pub use local::hash_token;
pub use routes::router;

pub(crate) use allow::MAX_MEMBERSHIP_TTL;
pub(crate) use allow::still_allowed;

use crate::api::ApiError;
use crate::ratelimit::RateLimiter;
use crate::services::Services;
use pending::Pending;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "dockhand_session";
/// How long a WebSocket ticket lasts.
const TICKET_TTL: Duration = Duration::from_secs(60);
/// Most pending logins, device flows or tickets held at once, of each kind.
const MAX_PENDING: usize = 10_000;
/// Most sign-ins in progress from one client address, of each kind.
const PENDING_PER_CLIENT: usize = 10;
/// Most unused WebSocket tickets one user holds.
const TICKETS_PER_USER: usize = 20;

/// Sign-in state in progress, tickets, membership answers and rate limits.
pub struct AuthState {
    /// Rate limits.
    pub limiter: RateLimiter,
    /// Org membership answers, for the check at every request.
    pub memberships: allow::Memberships,
    states: Pending<()>,
    devices: Pending<github::DeviceFlow>,
    tickets: Pending<User>,
}

impl Default for AuthState {
    fn default() -> AuthState {
        AuthState {
            limiter: RateLimiter::default(),
            memberships: allow::Memberships::default(),
            states: Pending::new(MAX_PENDING, PENDING_PER_CLIENT),
            devices: Pending::new(MAX_PENDING, PENDING_PER_CLIENT),
            tickets: Pending::new(MAX_PENDING, TICKETS_PER_USER),
        }
    }
}

impl AuthState {
    /// A single-use ticket for opening the events WebSocket from a browser.
    pub fn issue_ticket(&self, user: User) -> Option<String> {
        let ticket = generate_token().replacen("dh_", "wst_", 1);
        let owner = user.id.to_string();
        self.tickets
            .put(ticket.clone(), &owner, TICKET_TTL, user)
            .ok()
            .map(|()| ticket)
    }

    /// Drops expired sign-in state and tickets.
    pub fn purge(&self) {
        self.states.purge();
        self.devices.purge();
        self.tickets.purge();
    }
}

/// The signed-in user making a request.
#[derive(Clone, Debug)]
pub struct AuthUser(pub User);

impl AuthUser {
    /// Whether the user sees everyone's tasks and may use operator-only routes.
    pub fn is_operator(&self) -> bool {
        self.0.role == UserRole::Operator
    }
}

pub(crate) fn now_secs() -> u64 {
    dockhand_store::now_ms().max(0) as u64 / 1000
}

/// The client's address: the peer, or `X-Forwarded-For`'s first hop behind a trusted proxy.
pub(crate) fn client_ip(parts: &Parts, trust_proxy: bool) -> String {
    if trust_proxy {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn cookie(parts_headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    parts_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `scheme://host[:port]` of the public URL, which browsers send as `Origin`.
fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// Cookies ride along on cross-site requests, so a state change made with one must
/// come from our own pages. So must a WebSocket: browsers apply no same-origin
/// rule to it, and it reads the user's events.
fn check_origin(parts: &Parts, state: &Services) -> Result<(), ApiError> {
    let websocket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !websocket && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let public = state.config.public_url();
    let expected = origin_of(&public);
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if o == expected => Ok(()),
        Some(o) => Err(ApiError::Forbidden(format!(
            "cross-site request from {o} refused"
        ))),
        None => Err(ApiError::Forbidden(
            "a request signed in with a cookie must carry an Origin header".into(),
        )),
    }
}

fn operator(user: User, state: &Services) -> User {
    let op = state
        .config
        .auth
        .operators
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&user.login));
    if op {
        User {
            role: UserRole::Operator,
            ..user
        }
    } else {
        user
    }
}

impl FromRequestParts<Arc<Services>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let user = identify(parts, state).await?;
        still_allowed(state, &user.0).await?;
        Ok(user)
    }
}

/// The user the request's credentials name.
async fn identify(parts: &Parts, state: &Services) -> Result<AuthUser, ApiError> {
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 4096)
            .ok_or_else(|| {
                unauthorized("malformed Authorization header; expected Bearer <token>")
            })?;
        if token.starts_with("dh_") {
            return match state.store.user_by_token_hash(&hash_token(token))? {
                Some(user) => Ok(AuthUser(operator(user, state))),
                None => Err(unauthorized("invalid or revoked token")),
            };
        }
        let claims = state
            .keys
            .verify_access(token, now_secs())
            .map_err(|e| ApiError::Unauthorized(format!("{e}; refresh it or sign in again")))?;
        return match state
            .store
            .live_session(&claims.sid, dockhand_store::now_ms())?
        {
            Some(user) if user.id == claims.sub => Ok(AuthUser(operator(user, state))),
            _ => Err(unauthorized("the session was revoked; sign in again")),
        };
    }
    if let Some(value) = cookie(&parts.headers, SESSION_COOKIE) {
        let found = state
            .store
            .session_by_cookie(&hash_token(&value), dockhand_store::now_ms())?;
        let Some((_, user)) = found else {
            return Err(unauthorized(
                "the session expired or was revoked; sign in again",
            ));
        };
        check_origin(parts, state)?;
        return Ok(AuthUser(operator(user, state)));
    }
    let ticket = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
        .filter(|_| parts.headers.contains_key(header::UPGRADE));
    if let Some(ticket) = ticket {
        return match state.auth.tickets.take(ticket) {
            Some((_, user)) => Ok(AuthUser(user)),
            None => Err(unauthorized(
                "the WebSocket ticket expired or was used already",
            )),
        };
    }
    Err(unauthorized(
        "credentials required: send Authorization: Bearer <token> or sign in",
    ))
}

/// The client's address, as [`client_ip`] finds it.
pub struct ClientIp(pub String);

impl FromRequestParts<Arc<Services>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state.config.auth.trust_proxy)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            super::origin_of("https://dock.example.com/app"),
            "https://dock.example.com"
        );
        assert_eq!(
            super::origin_of("http://127.0.0.1:7070"),
            "http://127.0.0.1:7070"
        );
    }
}
