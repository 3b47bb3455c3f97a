//! The pulls API: create (with GitHub's 422s for a bad head or base and for a
//! duplicate), list filtered by `head=owner:branch`, get, and update. Heads
//! and bases are checked against the bare repository when there is one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::http::header;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use serde_json::json;

use super::Inner;
use super::MAX_RECORDED;
use super::Shared;
use super::api;
use super::api::Caller;
use super::api::caller;
use super::form;
use super::issues::Issue;
use super::issues::Pull;
use super::issues::html_url;
use super::issues::problems_parsing_json;
use super::issues::validation_failed;
use super::over_capacity;
use super::repos;
use super::repos::RepoView;
use super::timestamp;

/// What a branch's commit is shown as when there is no bare repository.
const NO_SHA: &str = "0000000000000000000000000000000000000000";
/// Pull request ids are issue ids moved into their own range.
const PULL_ID_OFFSET: u64 = 1_000_000_000;

#[derive(Deserialize)]
struct NewPull {
    title: Option<String>,
    head: Option<String>,
    base: Option<String>,
    body: Option<String>,
    #[serde(default)]
    draft: bool,
}

#[derive(Deserialize)]
struct PullUpdate {
    title: Option<String>,
    body: Option<String>,
    state: Option<String>,
    base: Option<String>,
}

/// The repository's branches, or `None` when it has no bare repository and
/// any branch name is taken on trust. The error is the 500 to answer.
async fn branches_of(
    caller: &Caller,
    repo: &RepoView,
) -> Result<Option<HashMap<String, String>>, Box<Response>> {
    let Some(bare) = &repo.bare else {
        return Ok(None);
    };
    match repos::branches(bare).await {
        Ok(branches) => Ok(Some(branches)),
        Err(e) => {
            tracing::error!(error = %e, "reading branches");
            let body = json!({"message": e.to_string()});
            Err(Box::new(
                caller.reply(StatusCode::INTERNAL_SERVER_ERROR, Some(body)),
            ))
        }
    }
}

/// The branch's commit, `NO_SHA` on trust, or `None` when it does not exist.
fn sha_of(branches: Option<&HashMap<String, String>>, branch: &str) -> Option<String> {
    match branches {
        Some(branches) => branches.get(branch).cloned(),
        None => Some(NO_SHA.to_owned()),
    }
}

/// `POST /repos/{owner}/{repo}/pulls`.
pub(super) async fn create(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let caller = caller!(state, headers);
    let not_found = || caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    let Some(repo) = state.find_repo(&owner, &name) else {
        return not_found();
    };
    // GitHub hides what an under-scoped token may not change.
    if !caller.has_scope(&["repo"]) {
        return not_found();
    }
    let Ok(request) = serde_json::from_slice::<NewPull>(&body) else {
        return caller.reply(StatusCode::BAD_REQUEST, Some(problems_parsing_json()));
    };
    let invalid = |errors: &[Value]| {
        caller.reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(validation_failed(errors)),
        )
    };
    let field_error = |field: &str, code: &str| {
        invalid(&[json!({"resource": "PullRequest", "field": field, "code": code})])
    };
    let Some(title) = request.title.filter(|t| !t.trim().is_empty()) else {
        return field_error("title", "missing_field");
    };
    // `owner:branch` names the head in this repository; other owners would
    // be forks, which the fake does not have.
    let head = request.head.unwrap_or_default();
    let head = match head.split_once(':') {
        Some((head_owner, branch)) if head_owner.eq_ignore_ascii_case(&repo.owner) => branch,
        Some(_) => "",
        None => head.as_str(),
    };
    let base = request.base.unwrap_or_default();
    let branches = match branches_of(&caller, &repo).await {
        Ok(branches) => branches,
        Err(response) => return *response,
    };
    let Some(head_sha) = sha_of(branches.as_ref(), head).filter(|_| !head.is_empty()) else {
        return field_error("head", "invalid");
    };
    let Some(base_sha) = sha_of(branches.as_ref(), &base).filter(|_| !base.is_empty()) else {
        return field_error("base", "invalid");
    };
    let full_name = repo.full_name();
    let duplicate = |inner: &Inner| {
        inner.issues.iter().any(|i| {
            i.repo.eq_ignore_ascii_case(&full_name)
                && i.closed_at.is_none()
                && i.pull.as_ref().is_some_and(|p| p.head == head)
        })
    };
    let already_exists = || {
        let message = format!("A pull request already exists for {}:{head}.", repo.owner);
        invalid(&[json!({"resource": "PullRequest", "code": "custom", "message": message})])
    };
    if duplicate(&state.lock()) {
        return already_exists();
    }
    if let Some(bare) = &repo.bare {
        match repos::commits_between(bare, &base_sha, &head_sha).await {
            Ok(0) => {
                let message = format!("No commits between {base} and {head}");
                let error =
                    json!({"resource": "PullRequest", "code": "custom", "message": message});
                return invalid(&[error]);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "counting commits"),
        }
    }
    let pull = Pull {
        head: head.to_owned(),
        base,
        head_sha,
        base_sha,
        draft: request.draft,
    };
    let body = {
        let mut inner = state.lock();
        // Checked again: a concurrent create may have won during git's run.
        if duplicate(&inner) {
            return already_exists();
        }
        if inner.issues.len() >= MAX_RECORDED {
            return over_capacity();
        }
        let issue = inner.add_issue(&full_name, title, request.body, caller.user, Some(pull));
        pull_json(&state, &repo, issue, branches.as_ref())
    };
    let mut response = caller.reply(StatusCode::CREATED, Some(body.clone()));
    if let Some(Ok(location)) = body["url"].as_str().map(str::parse) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /repos/{owner}/{repo}/pulls?state&head&base`, newest first like
/// GitHub's default. As on GitHub, `head` filters only in `owner:branch`
/// form; a bare branch name is ignored.
pub(super) async fn list(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let caller = caller!(state, headers);
    let Some(repo) = state.find_repo(&owner, &name) else {
        return caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    };
    let params = form::parse(uri.query().unwrap_or_default());
    let wanted_state = form::get(&params, "state").unwrap_or("open");
    let head = form::get(&params, "head").and_then(|h| h.split_once(':'));
    let base = form::get(&params, "base");
    let keep = |issue: &Issue, pull: &Pull| {
        let open = issue.closed_at.is_none();
        let state_ok = match wanted_state {
            "closed" => !open,
            "all" => true,
            _ => open,
        };
        let head_ok = head.is_none_or(|(head_owner, branch)| {
            head_owner.eq_ignore_ascii_case(&repo.owner) && pull.head == branch
        });
        state_ok && head_ok && base.is_none_or(|b| pull.base == b)
    };
    let branches = match branches_of(&caller, &repo).await {
        Ok(branches) => branches,
        Err(response) => return *response,
    };
    let items: Vec<Value> = {
        let inner = state.lock();
        let full_name = repo.full_name();
        inner
            .issues
            .iter()
            .rev()
            .filter(|i| i.repo.eq_ignore_ascii_case(&full_name))
            .filter(|i| i.pull.as_ref().is_some_and(|p| keep(i, p)))
            .map(|i| pull_json(&state, &repo, i, branches.as_ref()))
            .collect()
    };
    caller.reply(StatusCode::OK, Some(Value::Array(items)))
}

/// `GET /repos/{owner}/{repo}/pulls/{number}`.
pub(super) async fn get_one(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    respond(&state, &caller, &owner, &name, &number, None).await
}

/// `PATCH /repos/{owner}/{repo}/pulls/{number}` with any of `title`, `body`,
/// `state` (`open` | `closed`) and `base`.
pub(super) async fn update(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((owner, name, number)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let caller = caller!(state, headers);
    if !caller.has_scope(&["repo"]) {
        return caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    }
    let Ok(request) = serde_json::from_slice::<PullUpdate>(&body) else {
        return caller.reply(StatusCode::BAD_REQUEST, Some(problems_parsing_json()));
    };
    respond(&state, &caller, &owner, &name, &number, Some(request)).await
}

/// The pull request as JSON after applying `update`, or GitHub's refusal.
async fn respond(
    state: &Shared,
    caller: &Caller,
    owner: &str,
    name: &str,
    number: &str,
    update: Option<PullUpdate>,
) -> Response {
    let not_found = || caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    let (Some(repo), Ok(number)) = (state.find_repo(owner, name), number.parse::<u64>()) else {
        return not_found();
    };
    let branches = match branches_of(caller, &repo).await {
        Ok(branches) => branches,
        Err(response) => return *response,
    };
    let full_name = repo.full_name();
    let mut inner = state.lock();
    let Some(issue) = inner.find_issue(&full_name, number) else {
        return not_found();
    };
    let Some(pull) = &issue.pull else {
        return not_found();
    };
    let Some(update) = update else {
        return caller.reply(
            StatusCode::OK,
            Some(pull_json(state, &repo, issue, branches.as_ref())),
        );
    };
    let field_error = |field: &str| {
        let error = json!({"resource": "PullRequest", "field": field, "code": "invalid"});
        caller.reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(validation_failed(&[error])),
        )
    };
    let reopen = match update.state.as_deref() {
        None => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(_) => return field_error("state"),
    };
    if let Some(base) = &update.base
        && sha_of(branches.as_ref(), base).is_none()
    {
        return field_error("base");
    }
    let head = pull.head.clone();
    let other_open = inner.issues.iter().any(|i| {
        i.number != number
            && i.repo.eq_ignore_ascii_case(&full_name)
            && i.closed_at.is_none()
            && i.pull.as_ref().is_some_and(|p| p.head == head)
    });
    if reopen == Some(true) && other_open {
        let message = format!("A pull request already exists for {}:{head}.", repo.owner);
        let error = json!({"resource": "PullRequest", "code": "custom", "message": message});
        return caller.reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(validation_failed(&[error])),
        );
    }
    let Some(issue) = inner.find_issue_mut(&full_name, number) else {
        return not_found();
    };
    let now = timestamp();
    if let Some(title) = update.title {
        issue.title = title;
    }
    if let Some(body) = update.body {
        issue.body = Some(body);
    }
    match reopen {
        Some(true) => issue.closed_at = None,
        Some(false) if issue.closed_at.is_none() => issue.closed_at = Some(now.clone()),
        _ => {}
    }
    if let (Some(base), Some(pull)) = (update.base, issue.pull.as_mut()) {
        pull.base_sha = sha_of(branches.as_ref(), &base).unwrap_or_default();
        pull.base = base;
    }
    issue.updated_at = now;
    let body = pull_json(state, &repo, issue, branches.as_ref());
    drop(inner);
    caller.reply(StatusCode::OK, Some(body))
}

/// A pull request as GitHub shows it; the branches' commits are the current
/// ones when known.
fn pull_json(
    state: &Shared,
    repo: &RepoView,
    issue: &Issue,
    branches: Option<&HashMap<String, String>>,
) -> Value {
    let Some(pull) = &issue.pull else {
        return Value::Null;
    };
    let base_url = &state.base_url;
    let full_name = repo.full_name();
    let api_url = format!("{base_url}/repos/{full_name}");
    let web = html_url(state, &full_name, issue.number, true);
    let repo_json = repos::repo_json(state, repo);
    let current = |branch: &str, fallback: &str| {
        branches
            .and_then(|b| b.get(branch).cloned())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let side = |branch: &str, sha: &str| {
        json!({
            "label": format!("{}:{branch}", repo.owner),
            "ref": branch,
            "sha": current(branch, sha),
            "user": repo_json["owner"],
            "repo": repo_json,
        })
    };
    let user = &state.directory.users[issue.user];
    let open = issue.closed_at.is_none();
    json!({
        "id": issue.id + PULL_ID_OFFSET,
        "node_id": format!("PR_fake{}", issue.id),
        "number": issue.number,
        "url": format!("{api_url}/pulls/{}", issue.number),
        "html_url": web,
        "diff_url": format!("{web}.diff"),
        "patch_url": format!("{web}.patch"),
        "issue_url": format!("{api_url}/issues/{}", issue.number),
        "comments_url": format!("{api_url}/issues/{}/comments", issue.number),
        "state": if open { "open" } else { "closed" },
        "locked": false,
        "title": issue.title,
        "body": issue.body,
        "draft": pull.draft,
        "user": api::simple_user(base_url, user),
        "head": side(&pull.head, &pull.head_sha),
        "base": side(&pull.base, &pull.base_sha),
        "labels": [],
        "assignees": [],
        "requested_reviewers": [],
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
        "merged_at": null,
        "merge_commit_sha": null,
        "merged": false,
        "mergeable": null,
        "author_association": super::issues::association(state, &user.login, &repo.owner),
    })
}
