//! Sessions: the browser's cookie, the CLI's access JWT with its rotating
//! refresh token, sign-out, and exchanging a token for a cookie.

use dockhand_protocol::TokenPair;
use dockhand_store::Refresh;
use dockhand_store::SessionKind;
use dockhand_store::User;

use super::AuthError;
use super::local::generate_token;
use super::local::hash_token;
use super::now_secs;
use crate::secrets::AccessClaims;
use crate::services::Services;

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "dockhand_session";

fn session_id() -> String {
    generate_token().replacen("dh_", "s", 1)[..24].to_owned()
}

/// A new CLI session for `user`.
pub(crate) async fn issue_cli_session(
    services: &Services,
    user: &User,
) -> Result<TokenPair, AuthError> {
    let sid = session_id();
    let refresh = generate_token().replacen("dh_", "dhr_", 1);
    let ttl_ms = services.config.auth.refresh_ttl_days as i64 * 86_400_000;
    let expires = dockhand_store::now_ms() + ttl_ms;
    let refresh_hash = Some(hash_token(&refresh));
    services
        .store
        .create_session(
            sid.clone(),
            user.id,
            SessionKind::Cli,
            None,
            refresh_hash,
            expires,
        )
        .await?;
    Ok(TokenPair {
        access_token: access_token(services, user.id, &sid),
        refresh_token: refresh,
        expires_in: services.config.auth.access_ttl_secs,
    })
}

fn access_token(services: &Services, user_id: i64, sid: &str) -> String {
    let now = now_secs();
    let claims = AccessClaims {
        sub: user_id,
        sid: sid.to_owned(),
        iat: now,
        exp: now + services.config.auth.access_ttl_secs,
    };
    services.keys.sign_access(&claims)
}

/// A new browser session; returns its `Set-Cookie` value.
pub(crate) async fn start_web_session(
    services: &Services,
    user: &User,
) -> Result<String, AuthError> {
    let value = generate_token().replacen("dh_", "dhs_", 1);
    let ttl = services.config.auth.session_ttl_days * 86_400;
    let expires = dockhand_store::now_ms() + ttl as i64 * 1000;
    let cookie_hash = Some(hash_token(&value));
    services
        .store
        .create_session(
            session_id(),
            user.id,
            SessionKind::Web,
            cookie_hash,
            None,
            expires,
        )
        .await?;
    let secure = if services.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    Ok(format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={ttl}{secure}"
    ))
}

/// Spends a refresh token for a new pair. Reusing a spent one revokes the session.
pub(crate) async fn refresh(
    services: &Services,
    refresh_token: &str,
) -> Result<TokenPair, AuthError> {
    let next = generate_token().replacen("dh_", "dhr_", 1);
    match services
        .store
        .rotate_refresh(hash_token(refresh_token), hash_token(&next))
        .await?
    {
        Refresh::Rotated { session, user } => {
            super::still_allowed(services, &user).await?;
            Ok(TokenPair {
                access_token: access_token(services, user.id, &session),
                refresh_token: next,
                expires_in: services.config.auth.access_ttl_secs,
            })
        }
        Refresh::Reused => Err(AuthError::Unauthorized(
            "this refresh token was used already, so the session was revoked; sign in again".into(),
        )),
        Refresh::Invalid => Err(AuthError::Unauthorized(
            "unknown, expired or revoked refresh token; sign in again".into(),
        )),
    }
}

/// Revokes the sessions of whichever of a cookie, a bearer JWT and a refresh
/// token were given; returns whether any was live.
pub(crate) async fn logout(
    services: &Services,
    cookie: Option<&str>,
    bearer: Option<&str>,
    refresh_token: Option<&str>,
) -> Result<bool, AuthError> {
    let store = &services.store;
    let mut sessions = Vec::new();
    if let Some(value) = cookie
        && let Some((sid, _)) =
            store.session_by_cookie(&hash_token(value), dockhand_store::now_ms())?
    {
        sessions.push(sid);
    }
    if let Some(claims) = bearer.and_then(|t| services.keys.verify_access(t, now_secs()).ok()) {
        sessions.push(claims.sid);
    }
    if let Some(rt) = refresh_token
        && let Some(sid) = store.session_of_refresh(&hash_token(rt))?
    {
        sessions.push(sid);
    }
    let mut revoked = false;
    for sid in sessions {
        revoked |= store.revoke_session(&sid).await?;
    }
    Ok(revoked)
}

/// A browser signing in with the admin token or an API token: the user and
/// the new session's `Set-Cookie` value.
pub(crate) async fn token_login(
    services: &Services,
    token: &str,
) -> Result<(User, String), AuthError> {
    let token = token.trim();
    let user = (token.starts_with("dh_") && token.len() <= 256)
        .then(|| services.store.user_by_token_hash(&hash_token(token)))
        .transpose()?
        .flatten()
        .ok_or_else(|| AuthError::Unauthorized("invalid or revoked token".into()))?;
    let cookie = start_web_session(services, &user).await?;
    Ok((user, cookie))
}
