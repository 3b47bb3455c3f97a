//! Signed webhooks: GitHub's `X-Hub-Signature-256`, a sender with
//! GitHub-Hookshot's headers, and payload builders with the shapes GitHub
//! sends for `issue_comment` and `issues` (PROTOCOLS.md 1c, Webhooks).

use std::time::Duration;

use hmac::Hmac;
use hmac::Mac;
use serde_json::Value;
use serde_json::json;
use sha2::Sha256;

use super::FakeGitHub;
use super::Shared;
use super::api;
use super::issues::Issue;
use super::issues::Pull;
use super::issues::issue_json;
use super::repos;
use super::repos::RepoView;
use super::timestamp;

const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Ids for accounts the fake does not know, derived from the login.
const FIRST_STRANGER_ID: u64 = 3_000_000;
const FIRST_BOT_ID: u64 = 4_000_000;

/// `sha256=<hex>` of the HMAC-SHA256 of `body` keyed with `secret`, as GitHub
/// puts in `X-Hub-Signature-256`.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `payload` to `url` as GitHub delivers a webhook: the JSON body,
/// signed over its exact bytes with `secret`, with `X-GitHub-Event: event`,
/// `X-GitHub-Delivery: delivery` and Hookshot's other headers.
pub async fn send_webhook(
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> reqwest::Result<reqwest::Response> {
    let body = payload.to_string().into_bytes();
    let target_id = payload["repository"]["id"]
        .as_u64()
        .map_or_else(String::new, |id| id.to_string());
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()?
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/fake")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-github-hook-id", "1")
        .header("x-github-hook-installation-target-type", "repository")
        .header("x-github-hook-installation-target-id", target_id)
        .header("x-hub-signature-256", webhook_signature(secret, &body))
        .body(body)
        .send()
        .await
}

impl FakeGitHub {
    /// An `issue_comment` `created` payload: `commenter_login` commented
    /// `comment_body` on issue `issue_number` of `repo` (`owner/name`), or on
    /// that pull request with `on_pull_request`. A login ending in `[bot]`
    /// (`some-app[bot]`) is sent as a `Bot`; known users keep their ids. The
    /// issue's title and body are the fake's when it has that issue. The
    /// comment is not added to the fake's state, as Dockhand did not make it.
    pub fn issue_comment_payload(
        &self,
        repo: &str,
        issue_number: u64,
        comment_body: &str,
        commenter_login: &str,
        author_association: &str,
        on_pull_request: bool,
    ) -> Value {
        let state = &self.state;
        let repo = state.repo_or_stub(repo);
        let issue = issue_payload(state, &repo, issue_number, on_pull_request);
        let commenter = account(state, commenter_login);
        let id = state.lock().next_comment_id();
        let now = timestamp();
        let comment = json!({
            "id": id,
            "node_id": format!("IC_fake{id}"),
            "url": format!("{}/repos/{}/issues/comments/{id}", state.base_url, repo.full_name()),
            "html_url": format!("{}#issuecomment-{id}", issue["html_url"].as_str().unwrap_or_default()),
            "issue_url": issue["url"],
            "body": comment_body,
            "user": commenter,
            "created_at": now,
            "updated_at": now,
            "author_association": author_association,
            "performed_via_github_app": null,
        });
        json!({
            "action": "created",
            "issue": issue,
            "comment": comment,
            "repository": repos::repo_json(state, &repo),
            "sender": commenter,
        })
    }

    /// An `issues` `labeled` payload: `sender_login` added `label` to issue
    /// `issue_number` of `repo` (`owner/name`).
    pub fn issues_labeled_payload(
        &self,
        repo: &str,
        issue_number: u64,
        label: &str,
        sender_login: &str,
    ) -> Value {
        let state = &self.state;
        let repo = state.repo_or_stub(repo);
        let mut issue = issue_payload(state, &repo, issue_number, false);
        let label = json!({
            "id": stable_id(5_000_000, label),
            "node_id": format!("LA_fake{}", stable_id(5_000_000, label)),
            "url": format!("{}/repos/{}/labels/{label}", state.base_url, repo.full_name()),
            "name": label,
            "color": "ededed",
            "default": false,
            "description": null,
        });
        issue["labels"] = json!([label]);
        json!({
            "action": "labeled",
            "issue": issue,
            "label": label,
            "repository": repos::repo_json(state, &repo),
            "sender": account(state, sender_login),
        })
    }
}

/// The issue as the fake has it, or a stand-in titled `Issue #N`; with a
/// `pull_request` object exactly when `on_pull_request`.
fn issue_payload(state: &Shared, repo: &RepoView, number: u64, on_pull_request: bool) -> Value {
    let full_name = repo.full_name();
    let inner = state.lock();
    let comments = inner
        .comments
        .iter()
        .filter(|c| c.issue_number == number && c.repo.eq_ignore_ascii_case(&full_name))
        .count();
    let mut issue = match inner.find_issue(&full_name, number) {
        Some(issue) => issue_json(state, repo, issue, comments),
        None => {
            let stand_in = Issue {
                id: stable_id(6_000_000, &format!("{full_name}#{number}")),
                repo: full_name.clone(),
                number,
                title: format!("Issue #{number}"),
                body: None,
                user: 0,
                created_at: api::CREATED_AT.to_owned(),
                updated_at: api::CREATED_AT.to_owned(),
                closed_at: None,
                pull: on_pull_request.then(|| Pull {
                    head: String::new(),
                    base: repo.default_branch.clone(),
                    head_sha: String::new(),
                    base_sha: String::new(),
                    draft: false,
                }),
            };
            issue_json(state, repo, &stand_in, comments)
        }
    };
    drop(inner);
    if on_pull_request && issue.get("pull_request").is_none() {
        let web = format!("{}/{full_name}/pull/{number}", state.base_url);
        issue["html_url"] = json!(web);
        issue["pull_request"] = json!({
            "url": format!("{}/repos/{full_name}/pulls/{number}", state.base_url),
            "html_url": web,
            "diff_url": format!("{web}.diff"),
            "patch_url": format!("{web}.patch"),
            "merged_at": null,
        });
    } else if !on_pull_request && let Some(object) = issue.as_object_mut() {
        object.remove("pull_request");
    }
    issue
}

/// A user or bot as webhook payloads show it: a known user with its id, a
/// login ending in `[bot]` as a `Bot`, anyone else as a `User` with an id
/// derived from the login.
fn account(state: &Shared, login: &str) -> Value {
    let base = &state.base_url;
    if let Some(user) = state.directory.user_index(login) {
        return api::simple_user(base, &state.directory.users[user]);
    }
    let bot = login.ends_with("[bot]");
    let id = if bot {
        stable_id(FIRST_BOT_ID, login)
    } else {
        stable_id(FIRST_STRANGER_ID, login)
    };
    json!({
        "login": login,
        "id": id,
        "node_id": format!("{}_fake{id}", if bot { "BOT" } else { "U" }),
        "avatar_url": format!("{base}/avatars/u/{id}"),
        "url": format!("{base}/users/{login}"),
        "html_url": format!("{base}/{login}"),
        "type": if bot { "Bot" } else { "User" },
        "site_admin": false,
    })
}

/// `first` plus a hash of `key` (FNV-1a, lowercased) below a million: the
/// same id for the same name in every run.
fn stable_id(first: u64, key: &str) -> u64 {
    let hash = key
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    first + hash % 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_githubs_test_vector() {
        assert_eq!(
            webhook_signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn stable_ids_ignore_case_and_stay_in_range() {
        assert_eq!(stable_id(7, "Some-App[bot]"), stable_id(7, "some-app[bot]"));
        assert!((7..1_000_007).contains(&stable_id(7, "x")));
    }
}
