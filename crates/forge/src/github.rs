//! A small GitHub client: OAuth (web and device flows) and the few REST calls
//! sign-in needs. GitHub's token endpoint answers errors with HTTP 200 and an
//! `error` field, so every reply is checked for one. Tokens never appear in errors.

use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

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

/// An access token GitHub granted.
#[derive(Clone)]
pub struct Grant {
    /// The token.
    pub token: String,
    /// Granted scopes, comma-separated.
    pub scopes: String,
}

/// A device-flow code to show the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceCode {
    /// Secret handle for polling.
    pub device_code: String,
    /// What the user types.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// One device-flow poll.
pub enum DevicePoll {
    /// Not yet approved.
    Pending,
    /// Polling too fast: wait this many seconds between polls from now on.
    SlowDown(u64),
    /// The code expired; start again.
    Expired,
    /// Approved.
    Granted(Grant),
}

/// The signed-in GitHub user.
#[derive(Clone, Debug, Deserialize)]
pub struct GitHubUser {
    /// Stable id.
    pub id: i64,
    /// Login (may change).
    pub login: String,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    interval: Option<u64>,
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

    /// Where to send a browser to sign in.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, login: Option<&str>) -> String {
        let mut url = format!(
            "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={}&state={}",
            self.web_url,
            enc(&self.client_id),
            enc(redirect_uri),
            enc(SCOPES),
            enc(state)
        );
        if let Some(l) = login {
            url.push_str(&format!("&login={}", enc(l)));
        }
        url
    }

    async fn token_request(
        &self,
        what: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenReply, GitHubError> {
        let resp = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web_url))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        if !status.is_success() {
            return Err(GitHubError::Refused {
                what: what.to_owned(),
                code: status.as_u16().to_string(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| transport(what, e))
    }

    /// Exchanges a web-flow `code` for a token.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Grant, GitHubError> {
        let what = "the sign-in code";
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        let reply = self.token_request(what, &form).await?;
        grant(what, reply)
    }

    /// Starts the device flow.
    pub async fn device_code(&self) -> Result<DeviceCode, GitHubError> {
        let what = "a device code";
        let resp = self
            .http
            .post(format!("{}/login/device/code", self.web_url))
            .header("accept", "application/json")
            .form(&[("client_id", self.client_id.as_str()), ("scope", SCOPES)])
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        if let Ok(TokenReply {
            error: Some(code),
            error_description,
            ..
        }) = serde_json::from_slice(&body)
        {
            return Err(GitHubError::Refused {
                what: what.into(),
                code,
                message: error_description.unwrap_or_default(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| transport(what, e))
    }

    /// Polls the device flow once.
    pub async fn poll_device(&self, device_code: &str) -> Result<DevicePoll, GitHubError> {
        let what = "the device sign-in";
        let form = [
            ("client_id", self.client_id.as_str()),
            ("device_code", device_code),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ];
        let reply = self.token_request(what, &form).await?;
        match reply.error.as_deref() {
            Some("authorization_pending") => Ok(DevicePoll::Pending),
            Some("slow_down") => Ok(DevicePoll::SlowDown(reply.interval.unwrap_or(10))),
            Some("expired_token") => Ok(DevicePoll::Expired),
            _ => grant(what, reply).map(DevicePoll::Granted),
        }
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
                let v: serde_json::Value = resp
                    .json()
                    .await
                    .map_err(|e| transport(&what, without_url(e)))?;
                Ok(v["state"] == "active")
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
                let v: serde_json::Value = resp
                    .json()
                    .await
                    .map_err(|e| transport(&what, without_url(e)))?;
                Ok(matches!(
                    v["permission"].as_str(),
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
}

/// A pull request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Its web URL.
    pub html_url: String,
}

/// What to open.
pub struct NewPullRequest<'a> {
    /// Repository owner.
    pub owner: &'a str,
    /// Repository name.
    pub repo: &'a str,
    /// Branch with the changes.
    pub head: &'a str,
    /// Branch to merge into.
    pub base: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body (Markdown).
    pub body: &'a str,
    /// Open as a draft.
    pub draft: bool,
}

impl GitHubClient {
    async fn send_json(
        &self,
        what: &str,
        token: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), GitHubError> {
        let resp = req
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    fn refusal(what: &str, status: u16, body: &serde_json::Value) -> GitHubError {
        let mut message = body["message"].as_str().unwrap_or("no message").to_owned();
        if let Some(errs) = body["errors"].as_array() {
            for e in errs {
                if let Some(m) = e["message"].as_str() {
                    message.push_str(&format!("; {m}"));
                }
            }
        }
        GitHubError::Refused {
            what: what.to_owned(),
            code: status.to_string(),
            message,
        }
    }

    /// The open pull request whose head is `branch`, if any.
    pub async fn find_open_pr(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        branch: &str,
    ) -> Result<Option<PullRequest>, GitHubError> {
        let what = format!("pull requests of {owner}/{repo}");
        let url = format!(
            "{}/repos/{}/{}/pulls?state=open&head={}",
            self.api_url,
            enc(owner),
            enc(repo),
            enc(&format!("{owner}:{branch}"))
        );
        let (status, body) = self.send_json(&what, token, self.http.get(url)).await?;
        if status != 200 {
            return Err(Self::refusal(&what, status, &body));
        }
        let prs: Vec<PullRequest> =
            serde_json::from_value(body).map_err(|e| transport(&what, e))?;
        Ok(prs.into_iter().next())
    }

    /// Opens a pull request, or finds the one already open for the head (idempotent).
    pub async fn open_pr(
        &self,
        token: &str,
        pr: &NewPullRequest<'_>,
    ) -> Result<(PullRequest, bool), GitHubError> {
        if let Some(existing) = self.find_open_pr(token, pr.owner, pr.repo, pr.head).await? {
            return Ok((existing, false));
        }
        let what = format!("a pull request on {}/{}", pr.owner, pr.repo);
        let url = format!(
            "{}/repos/{}/{}/pulls",
            self.api_url,
            enc(pr.owner),
            enc(pr.repo)
        );
        let body = serde_json::json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body, "draft": pr.draft});
        let (status, reply) = self
            .send_json(&what, token, self.http.post(url).json(&body))
            .await?;
        match status {
            201 => Ok((
                serde_json::from_value(reply).map_err(|e| transport(&what, e))?,
                true,
            )),
            // Opened meanwhile by someone else (or a retry): use that one.
            422 if reply.to_string().contains("already exists") => self
                .find_open_pr(token, pr.owner, pr.repo, pr.head)
                .await?
                .map(|p| (p, false))
                .ok_or_else(|| Self::refusal(&what, status, &reply)),
            _ => Err(Self::refusal(&what, status, &reply)),
        }
    }

    /// Comments on an issue or pull request.
    pub async fn comment(
        &self,
        token: &str,
        owner: &str,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let what = format!("a comment on {owner}/{repo}#{number}");
        let url = format!(
            "{}/repos/{}/{}/issues/{number}/comments",
            self.api_url,
            enc(owner),
            enc(repo)
        );
        let (status, reply) = self
            .send_json(
                &what,
                token,
                self.http.post(url).json(&serde_json::json!({"body": body})),
            )
            .await?;
        if status == 201 {
            Ok(())
        } else {
            Err(Self::refusal(&what, status, &reply))
        }
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

/// Scopes asked for: the profile, organisation membership, and private repositories.
pub const SCOPES: &str = "read:user read:org repo";

fn grant(what: &str, reply: TokenReply) -> Result<Grant, GitHubError> {
    match (reply.access_token, reply.error) {
        (Some(token), None) => Ok(Grant {
            token,
            scopes: reply.scope.unwrap_or_default(),
        }),
        (_, Some(code)) => Err(GitHubError::Refused {
            what: what.into(),
            code,
            message: reply.error_description.unwrap_or_default(),
        }),
        (None, None) => Err(transport(what, "no token in GitHub's reply")),
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

#[cfg(test)]
mod tests {
    #[test]
    fn authorize_urls_carry_state_scopes_and_login() {
        let c = super::GitHubClient::new(
            "https://gh.example/",
            "https://api.gh.example",
            "cid",
            "sec",
        )
        .unwrap();
        let url = c.authorize_url(
            "https://dock.example/auth/github/callback",
            "st&1",
            Some("alice"),
        );
        assert_eq!(
            url,
            "https://gh.example/login/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fdock.example%2Fauth%2Fgithub%2Fcallback&scope=read%3Auser%20read%3Aorg%20repo&state=st%261&login=alice"
        );
    }
}
