//! The github.com side: `/login/oauth/authorize`, `/login/oauth/access_token`
//! (web-flow code and device-code grants) and `/login/device/*`. Errors on the
//! token endpoint are HTTP 200 with an `error` field, as GitHub sends them.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::http::header;
use axum::response::Html;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::Value;

use super::CODE_TTL;
use super::CodeGrant;
use super::DeviceGrant;
use super::MAX_RECORDED;
use super::Shared;
use super::form;
use super::over_capacity;
use super::parse_scopes;
use super::random_from;
use super::random_hex;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TOKEN_ERRORS_DOC: &str = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
const DEVICE_ERRORS_DOC: &str = "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow";

/// `GET /login/oauth/authorize`: approves at once and redirects back.
pub(super) async fn authorize(State(state): State<Arc<Shared>>, uri: Uri) -> Response {
    let params = form::parse(uri.query().unwrap_or_default());
    let param = |key| form::get(&params, key);
    if let Some(expected) = &state.client_id
        && param("client_id") != Some(expected.as_str())
    {
        // GitHub shows an error page rather than redirecting: the
        // redirect_uri of an unknown app cannot be trusted.
        let page = "<!DOCTYPE html><title>Not Found</title>\
                    <h1>404</h1><p>This OAuth application is unknown to the fake GitHub.</p>";
        return (StatusCode::NOT_FOUND, Html(page)).into_response();
    }
    let Some(redirect_uri) = param("redirect_uri").filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri is required: the fake GitHub has no registered callback",
        )
            .into_response();
    };
    let mut back: Vec<(&str, String)> = Vec::new();
    let login = param("login").filter(|l| !l.is_empty());
    let user = match login {
        Some(login) => state.directory.user_index(login),
        None => Some(0),
    };
    match user {
        None => {
            back.push(("error", "access_denied".into()));
            back.push((
                "error_description",
                "The user has denied your application access.".into(),
            ));
            back.push((
                "error_uri",
                "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied".into(),
            ));
        }
        Some(user) => {
            let now = Instant::now();
            let code = random_hex(20);
            let mut inner = state.lock();
            if !inner.room_for_code(now) {
                return over_capacity();
            }
            inner.codes.insert(
                code.clone(),
                CodeGrant {
                    user,
                    redirect_uri: redirect_uri.to_owned(),
                    scopes: parse_scopes(param("scope").unwrap_or_default()),
                    expires: now + CODE_TTL,
                },
            );
            back.push(("code", code));
        }
    }
    if let Some(s) = param("state") {
        back.push(("state", s.to_owned()));
    }
    let location = form::append_query(redirect_uri, &back);
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// `POST /login/oauth/access_token`: exchanges a web-flow code or polls a
/// device code.
pub(super) async fn access_token(
    State(state): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = request_params(&uri, &headers, &body);
    let json = wants_json(&headers);
    match form::get(&params, "grant_type") {
        Some(DEVICE_GRANT) => device_poll(&state, &params, json),
        None | Some("authorization_code") => code_exchange(&state, &params, json),
        Some(_) => oauth_error(
            json,
            "unsupported_grant_type",
            "The grant type is not supported.",
            DEVICE_ERRORS_DOC,
            None,
        ),
    }
}

fn code_exchange(state: &Shared, params: &[(String, String)], json: bool) -> Response {
    let param = |key| form::get(params, key);
    let matches = |configured: &Option<String>, key| {
        configured
            .as_deref()
            .is_none_or(|expected| param(key) == Some(expected))
    };
    if !matches(&state.client_id, "client_id") || !matches(&state.client_secret, "client_secret") {
        return oauth_error(
            json,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
            &format!("{TOKEN_ERRORS_DOC}/#incorrect-client-credentials"),
            None,
        );
    }
    let now = Instant::now();
    let mut inner = state.lock();
    let code = param("code").unwrap_or_default();
    let grant = match inner.codes.get(code) {
        Some(grant) if grant.expires > now => grant,
        _ => {
            inner.codes.remove(code);
            return oauth_error(
                json,
                "bad_verification_code",
                "The code passed is incorrect or expired.",
                &format!("{TOKEN_ERRORS_DOC}/#bad-verification-code"),
                None,
            );
        }
    };
    if let Some(redirect_uri) = param("redirect_uri")
        && redirect_uri != grant.redirect_uri
    {
        return oauth_error(
            json,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
            &format!("{TOKEN_ERRORS_DOC}/#redirect-uri-mismatch2"),
            None,
        );
    }
    let (user, scopes) = (grant.user, grant.scopes.clone());
    let Some(token) = inner.mint(user, scopes.clone()) else {
        return over_capacity();
    };
    // Single use: only a successful exchange spends the code.
    inner.codes.remove(code);
    token_reply(json, token, &scopes)
}

fn device_poll(state: &Shared, params: &[(String, String)], json: bool) -> Response {
    let now = Instant::now();
    let mut inner = state.lock();
    if inner.device_polls.len() >= MAX_RECORDED {
        inner.device_polls.pop_front();
    }
    inner.device_polls.push_back(now);
    let client_id = form::get(params, "client_id");
    let error = |code, description| oauth_error(json, code, description, DEVICE_ERRORS_DOC, None);
    let client_known = state
        .client_id
        .as_deref()
        .is_none_or(|expected| client_id == Some(expected));
    if !client_known || client_id.is_none() {
        return error(
            "incorrect_client_credentials",
            "The client_id is not valid.",
        );
    }
    let device_code = form::get(params, "device_code").unwrap_or_default();
    let Some(grant) = inner.devices.get_mut(device_code) else {
        return error(
            "incorrect_device_code",
            "The device_code provided is not valid.",
        );
    };
    if grant.client_id.as_deref() != client_id {
        return error(
            "incorrect_device_code",
            "The device_code provided is not valid.",
        );
    }
    if grant.expires <= now {
        return error("expired_token", "The device code has expired.");
    }
    // A fixed script, so a client's whole loop is exercised: wait, back off, succeed.
    grant.polls += 1;
    match grant.polls {
        1 => error(
            "authorization_pending",
            "The authorization request is still pending.",
        ),
        2 => {
            grant.interval += state.slow_down_increment;
            oauth_error(
                json,
                "slow_down",
                "Too many requests have been made in the same timeframe.",
                DEVICE_ERRORS_DOC,
                Some(grant.interval),
            )
        }
        _ => {
            let scopes = grant.scopes.clone();
            let Some(token) = inner.mint(0, scopes.clone()) else {
                return over_capacity();
            };
            // Spent: polling it again is `incorrect_device_code`.
            inner.devices.remove(device_code);
            token_reply(json, token, &scopes)
        }
    }
}

/// `POST /login/device/code`: starts a device flow.
pub(super) async fn device_code(
    State(state): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = request_params(&uri, &headers, &body);
    let json = wants_json(&headers);
    let client_id = form::get(&params, "client_id").filter(|c| !c.is_empty());
    let client_known = state
        .client_id
        .as_deref()
        .is_none_or(|expected| client_id == Some(expected));
    if !client_known || client_id.is_none() {
        return oauth_error(
            json,
            "incorrect_client_credentials",
            "The client_id is not valid.",
            DEVICE_ERRORS_DOC,
            None,
        );
    }
    let now = Instant::now();
    let device_code = random_hex(40);
    // Letters only, without vowels, like GitHub's `WDJB-MJHT`.
    let letters = b"BCDFGHJKLMNPQRSTVWXZ";
    let user_code = format!("{}-{}", random_from(letters, 4), random_from(letters, 4));
    {
        let mut inner = state.lock();
        if !inner.room_for_code(now) {
            return over_capacity();
        }
        inner.devices.insert(
            device_code.clone(),
            DeviceGrant {
                client_id: client_id.map(str::to_owned),
                scopes: parse_scopes(form::get(&params, "scope").unwrap_or_default()),
                polls: 0,
                interval: state.device_interval,
                expires: now + state.device_ttl,
            },
        );
    }
    reply(
        json,
        &[
            ("device_code", device_code.into()),
            ("user_code", user_code.into()),
            (
                "verification_uri",
                format!("{}/login/device", state.base_url).into(),
            ),
            ("expires_in", state.device_ttl.as_secs().into()),
            ("interval", state.device_interval.into()),
        ],
    )
}

/// `GET /login/device`: where a human would type the code. Approval is
/// automatic, so it only says so.
pub(super) async fn device_page() -> Html<&'static str> {
    Html(
        "<!DOCTYPE html><html><head><title>Device activation</title></head><body>\
         <h1>Device activation</h1>\
         <p>This is a fake GitHub: any code shown on your device is approved \
         automatically as the first configured user. Go back to your device.</p>\
         <form><input name=\"user-code\" placeholder=\"XXXX-XXXX\"><button>Continue</button></form>\
         </body></html>",
    )
}

/// Parameters from the query string and the body (form-encoded, or JSON when
/// so labelled); GitHub reads both.
fn request_params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let mut params = form::parse(uri.query().unwrap_or_default());
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (key, value) in map {
                let value = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.push((key, value));
            }
        }
    } else {
        params.extend(form::parse(&String::from_utf8_lossy(body)));
    }
    params
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

fn token_reply(json: bool, token: String, scopes: &[String]) -> Response {
    reply(
        json,
        &[
            ("access_token", token.into()),
            ("token_type", "bearer".into()),
            ("scope", scopes.join(",").into()),
        ],
    )
}

/// An OAuth error as GitHub sends it: HTTP 200 with `error` fields.
fn oauth_error(
    json: bool,
    error: &str,
    description: &str,
    uri: &str,
    interval: Option<u64>,
) -> Response {
    let mut fields: Vec<(&str, Value)> = vec![
        ("error", error.into()),
        ("error_description", description.into()),
        ("error_uri", uri.into()),
    ];
    if let Some(interval) = interval {
        fields.push(("interval", interval.into()));
    }
    reply(json, &fields)
}

/// A 200 with `fields` as JSON, or form-encoded without `Accept: application/json`.
fn reply(json: bool, fields: &[(&str, Value)]) -> Response {
    if json {
        let object: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let content_type = [(header::CONTENT_TYPE, "application/json; charset=utf-8")];
        (content_type, Value::Object(object).to_string()).into_response()
    } else {
        let pairs: Vec<(&str, String)> = fields
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (*k, text)
            })
            .collect();
        let content_type = [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        (content_type, form::encode(&pairs)).into_response()
    }
}
