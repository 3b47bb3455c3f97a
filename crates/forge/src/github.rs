//! A small GitHub client: OAuth (web and device flows, in [`oauth`]), the few
//! REST calls sign-in needs, and pull requests and comments ([`pulls`]).
//! Tokens never appear in errors.

mod oauth;
mod pulls;

use std::time::Duration;

use serde::Deserialize;

pub use oauth::DeviceCode;
pub use oauth::DevicePoll;
pub use oauth::Grant;
pub use oauth::SCOPES;
pub use pulls::NewPullRequest;
pub use pulls::PullRequest;

/// Errors talking to GitHub.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// GitHub refused (an OAuth `error`, or an API status), with its own words.
    #[error("GitHub refused {what}: {message}")]
    Refused {
        /// What was asked.
        what: String,
        /// GitHub's error code or status.
        code: String,
        /// GitHub's description.
        message: String,
    },
    /// GitHub could not be reached or answered something unreadable.
    #[error("{what}: {cause}")]
    Transport {
        /// What was asked.
        what: String,
        /// The cause.
        cause: String,
    },
}

/// Where GitHub is and who we are to it.
#[derive(Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    web_url: String,
    api_url: String,
    client_id: String,
    client_secret: String,
}

/// The signed-in GitHub user.
#[derive(Clone, Debug, Deserialize)]
pub struct GitHubUser {
    /// Stable id.
    pub id: i64,
    /// Login (may change).
    pub login: String,
}

/// The part of an organisation membership read: `active` or `pending`.
#[derive(Deserialize)]
struct Membership {
    state: Option<String>,
}

/// The part of a collaborator's permission read: `admin`, `write`, `read`, ...
#[derive(Deserialize)]
struct Permission {
    permission: Option<String>,
}

fn transport(what: &str, e: impl std::fmt::Display) -> GitHubError {
    GitHubError::Transport {
        what: what.to_owned(),
        cause: e.to_string(),
    }
}

impl GitHubClient {
    /// A client for these base URLs and OAuth app.
    pub fn new(
        web_url: &str,
        api_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, GitHubError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("dockhand/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| transport("building the GitHub client", e))?;
        Ok(GitHubClient {
            http,
            web_url: web_url.trim_end_matches('/').to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        })
    }

    async fn get(
        &self,
        what: &str,
        token: &str,
        path: &str,
    ) -> Result<reqwest::Response, GitHubError> {
        self.http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))
    }

    async fn refused(what: &str, resp: reqwest::Response) -> GitHubError {
        let code = resp.status().as_u16().to_string();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["message"].as_str().unwrap_or("no message").to_owned();
        GitHubError::Refused {
            what: what.to_owned(),
            code,
            message,
        }
    }

    /// The user a token belongs to.
    pub async fn user(&self, token: &str) -> Result<GitHubUser, GitHubError> {
        let what = "the user's profile";
        let resp = self.get(what, token, "/user").await?;
        if !resp.status().is_success() {
            return Err(Self::refused(what, resp).await);
        }
        resp.json()
            .await
            .map_err(|e| transport(what, without_url(e)))
    }

    /// Whether the token's user is an active member of `org`.
    pub async fn is_member(&self, token: &str, org: &str) -> Result<bool, GitHubError> {
        let what = format!("membership of {org}");
        let resp = self
            .get(
                &what,
                token,
                &format!("/user/memberships/orgs/{}", enc(org)),
            )
            .await?;
        match resp.status().as_u16() {
            200 => {
                let m: Membership = resp
                    .json()
                    .await
                    .map_err(|e| transport(&what, without_url(e)))?;
                Ok(m.state.as_deref() == Some("active"))
            }
            403 | 404 => Ok(false),
            _ => Err(Self::refused(&what, resp).await),
        }
    }

    /// Whether `username` may push to `owner/repo`, asked with that user's own
    /// token: GitHub shows collaborator permissions only to people with push
    /// access, so a 403 or 404 is a no.
    pub async fn can_push(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        username: &str,
    ) -> Result<bool, GitHubError> {
        let what = format!("{username}'s permission on {owner}/{repo}");
        let path = format!(
            "/repos/{}/{}/collaborators/{}/permission",
            enc(owner),
            enc(repo),
            enc(username)
        );
        let resp = self.get(&what, token, &path).await?;
        match resp.status().as_u16() {
            200 => {
                let p: Permission = resp
                    .json()
                    .await
                    .map_err(|e| transport(&what, without_url(e)))?;
                Ok(matches!(
                    p.permission.as_deref(),
                    Some("admin" | "maintain" | "write")
                ))
            }
            403 | 404 => Ok(false),
            _ => Err(Self::refused(&what, resp).await),
        }
    }

    /// One page (100) of the repositories the user can see, most recently updated first.
    pub async fn user_repos(
        &self,
        token: &str,
        page: u32,
    ) -> Result<Vec<dockhand_protocol::RepoSummary>, GitHubError> {
        let what = "the user's repositories";
        let resp = self
            .get(
                what,
                token,
                &format!("/user/repos?per_page=100&sort=updated&page={page}"),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::refused(what, resp).await);
        }
        resp.json()
            .await
            .map_err(|e| transport(what, without_url(e)))
    }

    /// `owner/name` of a clone URL on this GitHub, if it is one.
    pub fn repo_of(&self, url: &str) -> Option<(String, String)> {
        let rest = url.strip_prefix(&self.web_url)?.strip_prefix('/')?;
        let rest = rest.strip_suffix(".git").unwrap_or(rest);
        let (owner, name) = rest.split_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !name.contains('/'))
            .then(|| (owner.to_owned(), name.to_owned()))
    }
}

/// reqwest errors print the URL; ours carry no secrets, but keep messages short.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
