//! Sign-in, sessions, tokens and the account routes.

use serde::Deserialize;
use serde::Serialize;

/// What the CLI keeps after signing in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// A short-lived access JWT.
    pub access_token: String,
    /// A single-use refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// `POST /auth/refresh`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshParams {
    /// The refresh token to spend.
    pub refresh_token: String,
}

/// `POST /auth/logout` (the body is optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutParams {
    /// Revokes this refresh token's session too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /auth/token`: a browser signs in with the admin token or an API token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenLoginParams {
    /// The token.
    pub token: String,
}

/// The answer to `POST /auth/token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenLoginResponse {
    /// Who is now signed in.
    pub login: String,
}

/// `GET /auth/info`: the ways to sign in this server offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthInfo {
    /// Whether GitHub sign-in is configured.
    pub github: bool,
}

/// `POST /auth/device/start`: a code for the person to enter at GitHub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceStart {
    /// Names this flow in `POST /auth/device/poll`.
    pub handle: String,
    /// What the person types at GitHub.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// Seconds to wait between polls.
    pub interval: u64,
    /// Seconds until the code expires.
    pub expires_in: u64,
}

/// `POST /auth/device/poll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePollParams {
    /// From [`DeviceStart`].
    pub handle: String,
}

/// The answer to one device poll, by `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DevicePollResponse {
    /// Not approved yet; poll again after the interval.
    Pending,
    /// Polled too fast: wait `interval` seconds from now on.
    SlowDown {
        /// The new interval in seconds.
        interval: u64,
    },
    /// The code expired or was refused; start again.
    Expired,
    /// Signed in.
    Ok {
        /// Who.
        login: String,
        /// Their CLI session.
        tokens: TokenPair,
    },
}

/// `GET /api/v1/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    /// The login.
    pub login: String,
    /// Whether they see everyone's tasks.
    pub operator: bool,
    /// Whether Dockhand holds a GitHub token for them.
    pub github: bool,
}

/// `POST /api/v1/ws-ticket`: a single-use ticket for `?ticket=` on the events WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WsTicket {
    /// The ticket.
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

/// `POST /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenParams {
    /// A name to recognise it by.
    pub name: String,
}

/// A personal API token, as listed (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Its id, for `DELETE /api/v1/tokens/{id}`.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `None` if never used.
    pub last_used_at: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the secret, shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The secret.
    pub token: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenList {
    /// The caller's tokens.
    pub tokens: Vec<TokenInfo>,
}

/// A repository the signed-in GitHub user can see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepoSummary {
    /// `owner/name`.
    pub full_name: String,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
    /// The default branch.
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// `GET /api/v1/repos`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepoList {
    /// Most recently updated first.
    pub repos: Vec<RepoSummary>,
}
