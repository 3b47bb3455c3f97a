//! GitHub sign-in: the web flow for browsers (a random `state`, checked on the
//! callback and bound to the browser by a cookie) and the device flow for the
//! CLI and phones. Only the people the operator names may sign in; the user's
//! GitHub token is stored encrypted.

use std::time::Duration;

use dockhand_forge::github::DevicePoll;
use dockhand_forge::github::GitHubClient;
use dockhand_forge::github::Grant;
use dockhand_protocol::DevicePollResponse;
use dockhand_protocol::DeviceStart;
use dockhand_store::User;
use dockhand_store::UserRole;

use super::AuthError;
use super::local::generate_token;
use super::state::DeviceFlow;
use crate::services::Services;

/// The cookie binding a web sign-in's `state` to the browser that began it.
pub const STATE_COOKIE: &str = "dockhand_oauth_state";
const STATE_TTL: Duration = Duration::from_secs(600);
/// How long a device flow stays pollable after each poll.
const DEVICE_TTL: Duration = Duration::from_secs(900);

/// The start of a web sign-in: where to send the browser, and the cookie to set.
pub struct WebStart {
    /// GitHub's authorize URL.
    pub url: String,
    /// The `Set-Cookie` value holding the `state`.
    pub cookie: String,
}

fn github(services: &Services) -> Result<&GitHubClient, AuthError> {
    services.sign_in().ok_or(AuthError::NotConfigured)
}

fn too_many(retry_after: Duration) -> AuthError {
    AuthError::RateLimited {
        message: "too many sign-ins in progress from here; finish or wait for one".into(),
        retry_after,
    }
}

fn callback_url(services: &Services) -> String {
    format!("{}/auth/github/callback", services.config.public_url())
}

/// Begins a web sign-in from `ip`, optionally suggesting a GitHub login.
pub fn begin_web(
    services: &Services,
    ip: &str,
    login: Option<&str>,
) -> Result<WebStart, AuthError> {
    let gh = github(services)?;
    super::limit_sign_in(services, ip)?;
    let state = generate_token().replacen("dh_", "", 1);
    let owner = crate::ratelimit::ip_key(ip);
    services
        .auth
        .states
        .put(state.clone(), &owner, STATE_TTL, ())
        .map_err(|_| too_many(STATE_TTL))?;
    let login = login.filter(|l| !l.is_empty() && l.len() <= 39);
    let url = gh.authorize_url(&callback_url(services), &state, login);
    let secure = if services.config.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{STATE_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=600{secure}");
    Ok(WebStart { url, cookie })
}

/// Whether the callback's `state` is the one this browser's cookie holds and
/// is still pending; it is spent either way.
pub fn take_state(services: &Services, query: Option<&str>, cookie: Option<&str>) -> bool {
    match (query, cookie) {
        (Some(q), Some(c)) if q == c => services.auth.states.take(q).is_some(),
        _ => false,
    }
}

/// The `Set-Cookie` value that clears the state cookie.
pub fn clear_state_cookie() -> String {
    format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth; Max-Age=0")
}

/// Ends a web sign-in: exchanges GitHub's code and admits the person.
/// [`AuthError::Forbidden`] says why someone may not come in.
pub async fn finish_web(services: &Services, code: &str) -> Result<User, AuthError> {
    let gh = github(services)?;
    let grant = gh
        .exchange_code(code, &callback_url(services))
        .await
        .map_err(|e| AuthError::Upstream(e.to_string()))?;
    admit(services, &grant).await
}

/// After GitHub said yes: checks the allowlist, then creates or updates the
/// user and stores the token encrypted.
async fn admit(services: &Services, grant: &Grant) -> Result<User, AuthError> {
    let gh = github(services)?;
    let upstream = |e: dockhand_forge::github::GitHubError| AuthError::Upstream(e.to_string());
    let gh_user = gh.user(&grant.token).await.map_err(upstream)?;
    super::allow::may_sign_in(services, gh, &grant.token, &gh_user.login)
        .await
        .map_err(AuthError::Forbidden)?;
    let operator = services
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
    let user = services
        .store
        .upsert_github_user(gh_user.id, &gh_user.login, role)
        .await?;
    let sealed = services.keys.seal(&grant.token);
    services
        .store
        .set_github_token(user.id, sealed, grant.scopes.clone())
        .await?;
    tracing::info!(login = %user.login, "signed in with GitHub");
    Ok(user)
}

/// Begins a device flow from `ip`: a code for the person to enter at GitHub.
pub async fn device_start(services: &Services, ip: &str) -> Result<DeviceStart, AuthError> {
    let gh = github(services)?;
    super::limit_sign_in(services, ip)?;
    let code = gh
        .device_code()
        .await
        .map_err(|e| AuthError::Upstream(e.to_string()))?;
    let handle = generate_token().replacen("dh_", "dev_", 1);
    let ttl = Duration::from_secs(code.expires_in.clamp(60, 3600));
    let flow = DeviceFlow {
        device_code: code.device_code,
    };
    let owner = crate::ratelimit::ip_key(ip);
    services
        .auth
        .devices
        .put(handle.clone(), &owner, ttl, flow)
        .map_err(|_| too_many(ttl))?;
    Ok(DeviceStart {
        handle,
        user_code: code.user_code,
        verification_uri: code.verification_uri,
        interval: code.interval,
        expires_in: code.expires_in,
    })
}

/// Asks GitHub once about a device flow; the caller keeps the pace.
pub async fn device_poll(
    services: &Services,
    handle: &str,
) -> Result<DevicePollResponse, AuthError> {
    let gh = github(services)?;
    let Some((owner, flow)) = services.auth.devices.take(handle) else {
        return Ok(DevicePollResponse::Expired);
    };
    let poll = gh
        .poll_device(&flow.device_code)
        .await
        .map_err(|e| AuthError::Upstream(e.to_string()))?;
    let keep = |flow| {
        let _ = services
            .auth
            .devices
            .put(handle.to_owned(), &owner, DEVICE_TTL, flow);
    };
    Ok(match poll {
        DevicePoll::Pending => {
            keep(flow);
            DevicePollResponse::Pending
        }
        DevicePoll::SlowDown(interval) => {
            keep(flow);
            DevicePollResponse::SlowDown { interval }
        }
        DevicePoll::Expired => DevicePollResponse::Expired,
        DevicePoll::Granted(grant) => {
            let user = admit(services, &grant).await?;
            let tokens = super::issue_cli_session(services, &user).await?;
            DevicePollResponse::Ok {
                login: user.login,
                tokens,
            }
        }
    })
}
