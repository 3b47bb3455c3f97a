//! Pull requests and issue comments, through the REST API.

use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::GitHubClient;
use super::GitHubError;
use super::enc;
use super::transport;
use super::without_url;

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

/// The body of `POST /repos/{owner}/{repo}/pulls`.
#[derive(Serialize)]
struct CreatePull<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
    draft: bool,
}

/// The body of `POST /repos/{owner}/{repo}/issues/{number}/comments`.
#[derive(Serialize)]
struct CreateComment<'a> {
    body: &'a str,
}

impl GitHubClient {
    async fn send_json(
        &self,
        what: &str,
        token: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), GitHubError> {
        let resp = req
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn refusal(what: &str, status: u16, body: &Value) -> GitHubError {
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
        let body = CreatePull {
            title: pr.title,
            head: pr.head,
            base: pr.base,
            body: pr.body,
            draft: pr.draft,
        };
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
                self.http.post(url).json(&CreateComment { body }),
            )
            .await?;
        if status == 201 {
            Ok(())
        } else {
            Err(Self::refusal(&what, status, &reply))
        }
    }
}
