//! `[github]` and `[auth]`: who may sign in, and how sessions and limits work.

use serde::Deserialize;

/// `[github]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    /// OAuth app client id; GitHub sign-in is on when set.
    pub client_id: String,
    /// OAuth app client secret.
    pub client_secret: String,
    /// Web base URL (sign-in pages, `owner/name` clone URLs).
    pub web_url: String,
    /// REST API base URL.
    pub api_url: String,
    /// Logins allowed to sign in.
    pub allowed_users: Vec<String>,
    /// Organisations whose members may sign in.
    pub allowed_orgs: Vec<String>,
    /// Secret for `POST /webhooks/github`.
    pub webhook_secret: String,
    /// How long an org membership answer is trusted, seconds (at most 600).
    pub membership_ttl_secs: u64,
}

impl std::fmt::Debug for GithubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("GithubConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .field("allowed_users", &self.allowed_users)
            .field("allowed_orgs", &self.allowed_orgs)
            .field("webhook_secret", &redact(&self.webhook_secret))
            .field("membership_ttl_secs", &self.membership_ttl_secs)
            .finish()
    }
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            client_id: String::new(),
            client_secret: String::new(),
            web_url: "https://github.com".into(),
            api_url: "https://api.github.com".into(),
            allowed_users: Vec::new(),
            allowed_orgs: Vec::new(),
            webhook_secret: String::new(),
            membership_ttl_secs: 600,
        }
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl GithubConfig {
    /// Whether GitHub sign-in is configured.
    pub fn enabled(&self) -> bool {
        !self.client_id.is_empty()
    }

    /// How long an org membership answer is trusted: never more than ten minutes.
    pub fn membership_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.membership_ttl_secs)
            .min(crate::auth::MAX_MEMBERSHIP_TTL)
    }

    pub(super) fn apply_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        if let Some(v) = get("DOCKHAND_GITHUB_CLIENT_ID") {
            self.client_id = v;
        }
        if let Some(v) = get("DOCKHAND_GITHUB_CLIENT_SECRET") {
            self.client_secret = v;
        }
        if let Some(v) = get("DOCKHAND_GITHUB_WEB_URL") {
            self.web_url = v;
        }
        if let Some(v) = get("DOCKHAND_GITHUB_API_URL") {
            self.api_url = v;
        }
        if let Some(v) = get("DOCKHAND_GITHUB_ALLOWED_USERS") {
            self.allowed_users = list(&v);
        }
        if let Some(v) = get("DOCKHAND_GITHUB_ALLOWED_ORGS") {
            self.allowed_orgs = list(&v);
        }
        if let Some(v) = get("DOCKHAND_GITHUB_WEBHOOK_SECRET") {
            self.webhook_secret = v;
        }
    }
}

/// Requests allowed per minute, for the rate limiter.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Sign-in attempts per IP (web, device, token exchange, refresh).
    pub signin_per_ip: u32,
    /// Task creations and follow-ups per user.
    pub tasks_per_user: u32,
    /// Task creations per IP.
    pub tasks_per_ip: u32,
    /// API token creations per user.
    pub tokens_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            signin_per_ip: 30,
            tasks_per_user: 60,
            tasks_per_ip: 120,
            tokens_per_user: 20,
        }
    }
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Logins that see every task and may use operator-only routes.
    pub operators: Vec<String>,
    /// Lifetime of an access JWT, seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a CLI session (its refresh tokens), days.
    pub refresh_ttl_days: u64,
    /// Lifetime of a browser session, days.
    pub session_ttl_days: u64,
    /// Per-minute limits.
    pub rate_limits: RateLimits,
    /// Tasks a user may have queued or running at once.
    pub max_active_tasks_per_user: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            operators: Vec::new(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_days: 30,
            session_ttl_days: 14,
            rate_limits: RateLimits::default(),
            max_active_tasks_per_user: 20,
            trust_proxy: false,
        }
    }
}
