//! What handlers take from a request: the [`Actor`] behind its credentials
//! (with an Origin check for cookies) and the client's address.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::header;
use axum::http::request::Parts;

use super::ApiError;
use crate::actor::Actor;
use crate::auth::Credential;
use crate::auth::SESSION_COOKIE;
use crate::services::Services;

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

/// A cookie's value.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The bearer token, if the request sent one; a malformed header is an error.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .map(Some)
        .ok_or_else(|| {
            ApiError::Unauthorized("malformed Authorization header; expected Bearer <token>".into())
        })
}

/// `scheme://host[:port]` of the public URL, which browsers send as `Origin`.
fn origin_of(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

fn is_websocket(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Cookies ride along on cross-site requests, so a state change made with one must
/// come from our own pages. So must a WebSocket: browsers apply no same-origin
/// rule to it, and it reads the user's events.
fn check_origin(parts: &Parts, services: &Services) -> Result<(), ApiError> {
    if !is_websocket(parts) && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        return Ok(());
    }
    let public = services.config.public_url();
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

/// The credential a request presents, in order of precedence.
fn credential(parts: &Parts) -> Result<Credential<'_>, ApiError> {
    if let Some(token) = bearer(&parts.headers)? {
        return Ok(Credential::Bearer(token));
    }
    if let Some(value) = cookie(&parts.headers, SESSION_COOKIE) {
        return Ok(Credential::Cookie(value));
    }
    let ticket = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ticket=")))
        .filter(|_| parts.headers.contains_key(header::UPGRADE));
    ticket.map(Credential::Ticket).ok_or_else(|| {
        ApiError::Unauthorized(
            "credentials required: send Authorization: Bearer <token> or sign in".into(),
        )
    })
}

impl FromRequestParts<Arc<Services>> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        let credential = credential(parts)?;
        let user = crate::auth::authenticate(services, credential).await?;
        if matches!(credential, Credential::Cookie(_)) {
            check_origin(parts, services)?;
        }
        crate::auth::still_allowed(services, &user).await?;
        let ip = client_ip(parts, services.config.auth.trust_proxy);
        Ok(Actor::client(user, ip))
    }
}

/// The client's address, as [`client_ip`] finds it.
pub struct ClientIp(pub String);

impl FromRequestParts<Arc<Services>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &Arc<Services>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, services.config.auth.trust_proxy)))
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
