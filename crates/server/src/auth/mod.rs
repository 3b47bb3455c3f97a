//! Who is calling, below HTTP. Credentials, in order: a bearer token (an API
//! token `dh_…`, the admin token, or an access JWT whose session is live), the
//! browser's session cookie, or, on the events WebSocket only, a short-lived
//! single-use ticket. Also the allowlist, sessions and GitHub sign-in.

mod allow;
mod error;
pub(crate) mod github;
mod local;
mod memberships;
mod pending;
mod sessions;
mod state;

use dockhand_store::User;
use dockhand_store::UserRole;

pub use error::AuthError;
pub use local::ADMIN_TOKEN_FILE;
pub use local::AuthSetupError;
pub use local::bootstrap_admin;
pub use local::generate_token;
pub use local::hash_token;
pub use sessions::SESSION_COOKIE;
pub use state::AuthState;
pub use state::TICKET_TTL;

pub(crate) use allow::still_allowed;
pub(crate) use memberships::MAX_MEMBERSHIP_TTL;
pub(crate) use sessions::issue_cli_session;
pub(crate) use sessions::logout;
pub(crate) use sessions::refresh;
pub(crate) use sessions::start_web_session;
pub(crate) use sessions::token_login;

use crate::services::Services;

/// A credential a request presented.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// `Authorization: Bearer …`: an API or admin token, or an access JWT.
    Bearer(&'a str),
    /// The browser's session cookie.
    Cookie(&'a str),
    /// A WebSocket ticket.
    Ticket(&'a str),
}

/// The user a credential names, with the role the configuration gives them.
/// The caller still checks [`still_allowed`].
pub async fn authenticate(
    services: &Services,
    credential: Credential<'_>,
) -> Result<User, AuthError> {
    let unauthorized = |m: &str| AuthError::Unauthorized(m.to_owned());
    let user = match credential {
        Credential::Bearer(token) if token.starts_with("dh_") => services
            .store
            .user_by_token_hash(&hash_token(token))?
            .ok_or_else(|| unauthorized("invalid or revoked token"))?,
        Credential::Bearer(token) => {
            let claims = services
                .keys
                .verify_access(token, now_secs())
                .map_err(|e| {
                    AuthError::Unauthorized(format!("{e}; refresh it or sign in again"))
                })?;
            match services
                .store
                .live_session(&claims.sid, dockhand_store::now_ms())?
            {
                Some(user) if user.id == claims.sub => user,
                _ => return Err(unauthorized("the session was revoked; sign in again")),
            }
        }
        Credential::Cookie(value) => services
            .store
            .session_by_cookie(&hash_token(value), dockhand_store::now_ms())?
            .map(|(_, user)| user)
            .ok_or_else(|| unauthorized("the session expired or was revoked; sign in again"))?,
        // A ticket carries the user as they were when it was issued.
        Credential::Ticket(ticket) => {
            return match services.auth.take_ticket(ticket) {
                Some(user) => Ok(user),
                None => Err(unauthorized(
                    "the WebSocket ticket expired or was used already",
                )),
            };
        }
    };
    Ok(with_role(user, services))
}

/// The configured operators are operators whatever the store says.
fn with_role(user: User, services: &Services) -> User {
    let operator = services
        .config
        .auth
        .operators
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&user.login));
    if operator {
        User {
            role: UserRole::Operator,
            ..user
        }
    } else {
        user
    }
}

/// Sign-in attempts per client address, per minute.
pub fn limit_sign_in(services: &Services, ip: &str) -> Result<(), AuthError> {
    let per_minute = services.config.auth.rate_limits.signin_per_ip;
    services
        .auth
        .limiter
        .check_ip("signin", ip, per_minute)
        .map_err(|wait| AuthError::RateLimited {
            message: "too many sign-in attempts; wait and try again".into(),
            retry_after: wait,
        })
}

pub(crate) fn now_secs() -> u64 {
    dockhand_store::now_ms().max(0) as u64 / 1000
}
