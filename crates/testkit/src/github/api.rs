//! The REST side: `/user`, `/user/orgs`, org membership, and GitHub's checks
//! and headers on every call (User-Agent, token, rate limit, `x-oauth-scopes`),
//! shared with the repository, pulls and issues routes.

use std::sync::Arc;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;

use super::Shared;
use super::directory::Org;
use super::directory::User;

pub(super) const DOCS: &str = "https://docs.github.com/rest";
const RATE_LIMIT: u64 = 5000;
const UNAUTHENTICATED_RATE_LIMIT: u64 = 60;
pub(super) const CREATED_AT: &str = "2020-01-01T00:00:00Z";

/// What a call needs to know about its caller, and the headers every
/// answer carries.
pub(super) struct Caller {
    /// Index into `Directory::users`.
    pub(super) user: usize,
    scopes: Vec<String>,
    request_id: String,
    used: u64,
}

impl Caller {
    pub(super) fn has_scope(&self, wanted: &[&str]) -> bool {
        self.scopes.iter().any(|s| wanted.contains(&s.as_str()))
    }

    /// An answer with GitHub's headers; `body` of `None` is an empty body.
    pub(super) fn reply(&self, status: StatusCode, body: Option<Value>) -> Response {
        let mut response = with_headers(status, body, &self.request_id, RATE_LIMIT, self.used);
        if let Ok(scopes) = self.scopes.join(", ").parse() {
            response.headers_mut().insert("x-oauth-scopes", scopes);
        }
        response
    }
}

/// GitHub's checks, in its order: a User-Agent, then a live token.
/// The refusal is boxed because a `Response` is large.
pub(super) fn authenticate(state: &Shared, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let mut inner = state.lock();
    let request_id = inner.next_request_id();
    let reject = |status: StatusCode, message: &str| {
        let body = json!({"message": message, "documentation_url": DOCS,
                          "status": status.as_u16().to_string()});
        Box::new(with_headers(
            status,
            Some(body),
            &request_id,
            UNAUTHENTICATED_RATE_LIMIT,
            0,
        ))
    };
    if !headers.contains_key(header::USER_AGENT) {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a \
             User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). \
             Check https://developer.github.com for other possible causes.",
        ));
    }
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return Err(reject(StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    let token = authorization.to_str().ok().and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
        known.then(|| token.trim())
    });
    let Some(grant) = token.and_then(|t| inner.tokens.get_mut(t)) else {
        return Err(reject(StatusCode::UNAUTHORIZED, "Bad credentials"));
    };
    grant.used += 1;
    Ok(Caller {
        user: grant.user,
        scopes: grant.scopes.clone(),
        used: grant.used,
        request_id,
    })
}

fn with_headers(
    status: StatusCode,
    body: Option<Value>,
    request_id: &str,
    limit: u64,
    used: u64,
) -> Response {
    let mut response = match body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    };
    // The window resets an hour after the current hour began: stable across
    // calls, like GitHub's.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reset = now - now % 3600 + 3600;
    let headers = response.headers_mut();
    let values = [
        ("x-github-request-id", request_id.to_owned()),
        ("x-github-api-version-selected", "2022-11-28".to_owned()),
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(used).to_string(),
        ),
        ("x-ratelimit-used", used.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
    ];
    for (name, value) in values {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    response
}

/// Runs `authenticate` and returns its refusal from the handler.
macro_rules! caller {
    ($state:expr, $headers:expr) => {
        match $crate::github::api::authenticate(&$state, &$headers) {
            Ok(caller) => caller,
            Err(response) => return *response,
        }
    };
}
pub(super) use caller;

/// `GET /user`.
pub(super) async fn user(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let caller = caller!(state, headers);
    let user = &state.directory.users[caller.user];
    let base = &state.base_url;
    let body = json!({
        "login": user.login,
        "id": user.id,
        "node_id": format!("U_fake{}", user.id),
        "avatar_url": format!("{base}/avatars/u/{}", user.id),
        "gravatar_id": "",
        "url": format!("{base}/users/{}", user.login),
        "html_url": format!("{base}/{}", user.login),
        "type": "User",
        "site_admin": false,
        "name": null,
        "company": null,
        "blog": "",
        "location": null,
        "email": null,
        "bio": null,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT,
    });
    caller.reply(StatusCode::OK, Some(body))
}

/// `GET /user/orgs`: empty without `read:org`, as GitHub hides private
/// memberships then.
pub(super) async fn user_orgs(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let caller = caller!(state, headers);
    let orgs: Vec<Value> = if caller.has_scope(&["read:org", "write:org", "admin:org"]) {
        state
            .directory
            .orgs
            .iter()
            .filter(|org| state.is_member(org, caller.user))
            .map(|org| org_json(&state.base_url, org))
            .collect()
    } else {
        Vec::new()
    };
    caller.reply(StatusCode::OK, Some(Value::Array(orgs)))
}

/// `GET /user/memberships/orgs/{org}`.
pub(super) async fn membership(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    let caller = caller!(state, headers);
    let user = &state.directory.users[caller.user];
    match state.directory.org(&org) {
        Some(org) if state.is_member(org, caller.user) => {
            let base = &state.base_url;
            let body = json!({
                "url": format!("{base}/orgs/{}/memberships/{}", org.login, user.login),
                "state": "active",
                "role": "member",
                "organization_url": format!("{base}/orgs/{}", org.login),
                "organization": org_json(base, org),
                "user": simple_user(base, user),
            });
            caller.reply(StatusCode::OK, Some(body))
        }
        _ => caller.reply(StatusCode::NOT_FOUND, Some(not_found_body())),
    }
}

/// `GET /orgs/{org}/members/{username}`: 204 for a member, 404 otherwise.
pub(super) async fn org_member(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((org, username)): Path<(String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    let Some(org) = state.directory.org(&org) else {
        return caller.reply(StatusCode::NOT_FOUND, Some(not_found_body()));
    };
    let member = state
        .directory
        .user_index(&username)
        .is_some_and(|u| state.is_member(org, u));
    if member {
        caller.reply(StatusCode::NO_CONTENT, None)
    } else {
        let body = json!({
            "message": "User does not exist or is not a member of the organization",
            "documentation_url": DOCS,
            "status": "404",
        });
        caller.reply(StatusCode::NOT_FOUND, Some(body))
    }
}

/// Any other path: GitHub's 404.
pub(super) async fn not_found(State(state): State<Arc<Shared>>) -> Response {
    let request_id = state.lock().next_request_id();
    with_headers(
        StatusCode::NOT_FOUND,
        Some(not_found_body()),
        &request_id,
        UNAUTHENTICATED_RATE_LIMIT,
        0,
    )
}

pub(super) fn not_found_body() -> Value {
    json!({"message": "Not Found", "documentation_url": DOCS, "status": "404"})
}

pub(super) fn simple_user(base: &str, user: &User) -> Value {
    json!({
        "login": user.login,
        "id": user.id,
        "node_id": format!("U_fake{}", user.id),
        "avatar_url": format!("{base}/avatars/u/{}", user.id),
        "url": format!("{base}/users/{}", user.login),
        "html_url": format!("{base}/{}", user.login),
        "type": "User",
        "site_admin": false,
    })
}

fn org_json(base: &str, org: &Org) -> Value {
    json!({
        "login": org.login,
        "id": org.id,
        "node_id": format!("O_fake{}", org.id),
        "url": format!("{base}/orgs/{}", org.login),
        "repos_url": format!("{base}/orgs/{}/repos", org.login),
        "members_url": format!("{base}/orgs/{}/members{{/member}}", org.login),
        "avatar_url": format!("{base}/avatars/u/{}", org.id),
        "description": null,
    })
}
