//! Issues and their comments: `GET /repos/{o}/{r}/issues/{n}`, the comments
//! routes, [`FakeGitHub::create_issue`], and `GET /_fake/state`, the fake's
//! own summary of what clients created. Pull requests are issues with a
//! [`Pull`] attached, so the two share one number sequence per repository.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;

use super::FakeGitHub;
use super::Inner;
use super::MAX_RECORDED;
use super::Shared;
use super::api;
use super::api::caller;
use super::over_capacity;
use super::repos::RepoView;
use super::timestamp;

const FIRST_ISSUE_ID: u64 = 1_500_000_001;
const FIRST_COMMENT_ID: u64 = 2_000_000_001;

/// An issue or, with `pull`, a pull request.
pub(super) struct Issue {
    pub(super) id: u64,
    /// `owner/name` as the fake knows the repository.
    pub(super) repo: String,
    pub(super) number: u64,
    pub(super) title: String,
    pub(super) body: Option<String>,
    /// Index into `Directory::users`.
    pub(super) user: usize,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    /// Set while closed.
    pub(super) closed_at: Option<String>,
    pub(super) pull: Option<Pull>,
}

pub(super) struct Pull {
    pub(super) head: String,
    pub(super) base: String,
    /// The branches' commits when the pull request was opened; answers show
    /// the current ones while the branches exist.
    pub(super) head_sha: String,
    pub(super) base_sha: String,
    pub(super) draft: bool,
}

pub(super) struct Comment {
    pub(super) id: u64,
    pub(super) repo: String,
    pub(super) issue_number: u64,
    pub(super) body: String,
    pub(super) user: usize,
    pub(super) created_at: String,
}

impl Inner {
    pub(super) fn find_issue(&self, repo: &str, number: u64) -> Option<&Issue> {
        self.issues
            .iter()
            .find(|i| i.number == number && i.repo.eq_ignore_ascii_case(repo))
    }

    pub(super) fn find_issue_mut(&mut self, repo: &str, number: u64) -> Option<&mut Issue> {
        self.issues
            .iter_mut()
            .find(|i| i.number == number && i.repo.eq_ignore_ascii_case(repo))
    }

    /// Adds an issue or pull request with the repository's next number.
    pub(super) fn add_issue(
        &mut self,
        repo: &str,
        title: String,
        body: Option<String>,
        user: usize,
        pull: Option<Pull>,
    ) -> &Issue {
        let counter = self.numbers.entry(repo.to_lowercase()).or_insert(0);
        *counter += 1;
        let number = *counter;
        let now = timestamp();
        let id = FIRST_ISSUE_ID + self.issues.len() as u64;
        self.issues.push(Issue {
            id,
            repo: repo.to_owned(),
            number,
            title,
            body,
            user,
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
            pull,
        });
        &self.issues[self.issues.len() - 1]
    }

    pub(super) fn next_comment_id(&mut self) -> u64 {
        self.comment_ids += 1;
        FIRST_COMMENT_ID + self.comment_ids - 1
    }
}

impl FakeGitHub {
    /// Opens an issue on `owner/repo` as the first configured user and
    /// returns its number, from the sequence pull requests share.
    pub fn create_issue(&self, owner: &str, repo: &str, title: &str, body: &str) -> u64 {
        let repo = self.state.repo_or_stub(&format!("{owner}/{repo}"));
        let mut inner = self.state.lock();
        let body = Some(body.to_owned());
        inner
            .add_issue(&repo.full_name(), title.to_owned(), body, 0, None)
            .number
    }

    /// What `GET /_fake/state` answers: every pull request and comment made,
    /// in creation order.
    pub fn state(&self) -> Value {
        state_json(&self.state)
    }
}

/// How GitHub relates `login` to the repository: its owner, a member of the
/// owning org, or (as every fake user can push) a collaborator.
pub(super) fn association(state: &Shared, login: &str, repo_owner: &str) -> &'static str {
    if login.eq_ignore_ascii_case(repo_owner) {
        return "OWNER";
    }
    let member = state.directory.org(repo_owner).is_some_and(|org| {
        state
            .directory
            .user_index(login)
            .is_some_and(|u| org.members.contains(&u))
    });
    if member { "MEMBER" } else { "COLLABORATOR" }
}

/// `/issues/N` or `/pull/N` under the repository's web URL.
pub(super) fn html_url(state: &Shared, repo: &str, number: u64, pull: bool) -> String {
    let kind = if pull { "pull" } else { "issues" };
    format!("{}/{repo}/{kind}/{number}", state.base_url)
}

pub(super) fn issue_json(state: &Shared, repo: &RepoView, issue: &Issue, comments: usize) -> Value {
    let base = &state.base_url;
    let full_name = repo.full_name();
    let api_url = format!("{base}/repos/{full_name}");
    let user = &state.directory.users[issue.user];
    let mut value = json!({
        "id": issue.id,
        "node_id": format!("I_fake{}", issue.id),
        "url": format!("{api_url}/issues/{}", issue.number),
        "repository_url": api_url,
        "comments_url": format!("{api_url}/issues/{}/comments", issue.number),
        "html_url": html_url(state, &full_name, issue.number, issue.pull.is_some()),
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "user": api::simple_user(base, user),
        "state": if issue.closed_at.is_some() { "closed" } else { "open" },
        "locked": false,
        "labels": [],
        "assignee": null,
        "assignees": [],
        "comments": comments,
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
        "author_association": association(state, &user.login, &repo.owner),
    });
    if issue.pull.is_some() {
        let web = html_url(state, &full_name, issue.number, true);
        value["pull_request"] = json!({
            "url": format!("{api_url}/pulls/{}", issue.number),
            "html_url": web,
            "diff_url": format!("{web}.diff"),
            "patch_url": format!("{web}.patch"),
            "merged_at": null,
        });
    }
    value
}

fn comment_json(state: &Shared, repo: &RepoView, comment: &Comment, on_pull: bool) -> Value {
    let base = &state.base_url;
    let full_name = repo.full_name();
    let user = &state.directory.users[comment.user];
    let web = html_url(state, &full_name, comment.issue_number, on_pull);
    json!({
        "id": comment.id,
        "node_id": format!("IC_fake{}", comment.id),
        "url": format!("{base}/repos/{full_name}/issues/comments/{}", comment.id),
        "html_url": format!("{web}#issuecomment-{}", comment.id),
        "issue_url": format!("{base}/repos/{full_name}/issues/{}", comment.issue_number),
        "body": comment.body,
        "user": api::simple_user(base, user),
        "created_at": comment.created_at,
        "updated_at": comment.created_at,
        "author_association": association(state, &user.login, &repo.owner),
        "performed_via_github_app": null,
    })
}

/// The issue (or pull request) `number` of the repository, or the 404
/// GitHub gives for it, repository and number alike.
macro_rules! target {
    ($state:expr, $caller:expr, $owner:expr, $name:expr, $number:expr) => {{
        let found = $state.find_repo(&$owner, &$name).and_then(|repo| {
            let number = $number.parse::<u64>().ok()?;
            let inner = $state.lock();
            let issue = inner.find_issue(&repo.full_name(), number)?;
            let is_pull = issue.pull.is_some();
            Some((repo, number, is_pull))
        });
        match found {
            Some(found) => found,
            None => return $caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body())),
        }
    }};
}

/// `GET /repos/{owner}/{repo}/issues/{number}`; pull requests answer too.
pub(super) async fn get_issue(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    let (repo, number, _) = target!(state, caller, owner, name, number);
    let body = {
        let inner = state.lock();
        let full_name = repo.full_name();
        let comments = comments_of(&inner, &full_name, number).count();
        inner
            .find_issue(&full_name, number)
            .map(|issue| issue_json(&state, &repo, issue, comments))
    };
    caller.reply(StatusCode::OK, body)
}

fn comments_of<'a>(
    inner: &'a Inner,
    repo: &'a str,
    number: u64,
) -> impl Iterator<Item = &'a Comment> {
    inner
        .comments
        .iter()
        .filter(move |c| c.issue_number == number && c.repo.eq_ignore_ascii_case(repo))
}

/// `GET /repos/{owner}/{repo}/issues/{number}/comments`, oldest first.
pub(super) async fn list_comments(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    let (repo, number, on_pull) = target!(state, caller, owner, name, number);
    let items: Vec<Value> = {
        let inner = state.lock();
        comments_of(&inner, &repo.full_name(), number)
            .map(|c| comment_json(&state, &repo, c, on_pull))
            .collect()
    };
    caller.reply(StatusCode::OK, Some(Value::Array(items)))
}

/// `POST /repos/{owner}/{repo}/issues/{number}/comments` with `{"body"}`.
pub(super) async fn create_comment(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let caller = caller!(state, headers);
    let (repo, number, on_pull) = target!(state, caller, owner, name, number);
    // GitHub hides what an under-scoped token may not change.
    if !caller.has_scope(&["repo"]) {
        return caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return caller.reply(StatusCode::BAD_REQUEST, Some(problems_parsing_json()));
    };
    let Some(text) = request["body"].as_str().filter(|t| !t.is_empty()) else {
        let error = json!({"resource": "IssueComment", "field": "body", "code": "missing_field"});
        return caller.reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(validation_failed(&[error])),
        );
    };
    let comment = {
        let mut inner = state.lock();
        if inner.comments.len() >= MAX_RECORDED {
            return over_capacity();
        }
        let comment = Comment {
            id: inner.next_comment_id(),
            repo: repo.full_name(),
            issue_number: number,
            body: text.to_owned(),
            user: caller.user,
            created_at: timestamp(),
        };
        let json = comment_json(&state, &repo, &comment, on_pull);
        inner.comments.push(comment);
        json
    };
    caller.reply(StatusCode::CREATED, Some(comment))
}

/// GitHub's 422 body.
pub(super) fn validation_failed(errors: &[Value]) -> Value {
    json!({
        "message": "Validation Failed",
        "errors": errors,
        "documentation_url": api::DOCS,
        "status": "422",
    })
}

pub(super) fn problems_parsing_json() -> Value {
    json!({"message": "Problems parsing JSON", "documentation_url": api::DOCS, "status": "400"})
}

/// `GET /_fake/state`: not GitHub's, so no token is needed.
pub(super) async fn fake_state(State(state): State<Arc<Shared>>) -> Json<Value> {
    Json(state_json(&state))
}

fn state_json(state: &Shared) -> Value {
    let inner = state.lock();
    let login = |user: usize| state.directory.users[user].login.clone();
    let pulls: Vec<Value> = inner
        .issues
        .iter()
        .filter_map(|issue| {
            let pull = issue.pull.as_ref()?;
            Some(json!({
                "repo": issue.repo,
                "number": issue.number,
                "head": {"ref": pull.head},
                "base": {"ref": pull.base},
                "title": issue.title,
                "body": issue.body,
                "draft": pull.draft,
                "state": if issue.closed_at.is_some() { "closed" } else { "open" },
                "user": login(issue.user),
            }))
        })
        .collect();
    let comments: Vec<Value> = inner
        .comments
        .iter()
        .map(|c| {
            json!({
                "repo": c.repo,
                "issue_number": c.issue_number,
                "id": c.id,
                "body": c.body,
                "user": login(c.user),
            })
        })
        .collect();
    json!({"pulls": pulls, "comments": comments})
}
