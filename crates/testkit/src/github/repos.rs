//! Repositories: the configured ones and the bare repositories under
//! `repos_dir`, their JSON, `GET /repos/{owner}/{repo}`, `GET /user/repos`,
//! [`FakeGitHub::create_repo`], and the few read-only git queries the pulls
//! API needs.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::http::header;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;

use super::FakeGitHub;
use super::Shared;
use super::api;
use super::api::caller;
use super::form;

/// Ids of repositories found in `repos_dir` start here, past configured ones.
const FIRST_BARE_REPO_ID: u64 = 800_001;
/// Commits made by [`FakeGitHub::create_repo`] get this author and date, so
/// their hashes are the same from run to run.
const AUTHOR_NAME: &str = "fake";
const AUTHOR_EMAIL: &str = "fake@example.com";
const AUTHOR_DATE: &str = "2020-01-01T00:00:00Z";

/// A repository as the API shows it, whichever way the fake knows it.
#[derive(Clone, Debug)]
pub(super) struct RepoView {
    pub(super) id: u64,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) default_branch: String,
    /// The bare repository, when there is one under `repos_dir`.
    pub(super) bare: Option<PathBuf>,
}

impl RepoView {
    pub(super) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// Whether `s` can be an owner or repository name: GitHub's characters and
/// no leading dot, so a path built from it stays inside `repos_dir`.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Shared {
    /// `repos_dir/OWNER/NAME.git` when it is a directory.
    pub(super) fn bare_path(&self, owner: &str, name: &str) -> Option<PathBuf> {
        let root = self.repos_dir.as_ref()?;
        if !valid_name(owner) || !valid_name(name) {
            return None;
        }
        let path = root.join(owner).join(format!("{name}.git"));
        path.is_dir().then_some(path)
    }

    /// A configured repository or a bare one under `repos_dir`. Configured
    /// names match case-insensitively, as on GitHub; bare ones as the file
    /// system does.
    pub(super) fn find_repo(&self, owner: &str, name: &str) -> Option<RepoView> {
        let configured = self
            .directory
            .repos
            .iter()
            .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name));
        let (owner, name) = match configured {
            Some(repo) => (repo.owner.as_str(), repo.name.as_str()),
            None => (owner, name),
        };
        let bare = self.bare_path(owner, name);
        let id = match (configured, &bare) {
            (Some(repo), _) => repo.id,
            (None, Some(_)) => self.bare_repo_id(owner, name),
            (None, None) => return None,
        };
        Some(RepoView {
            id,
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: bare
                .as_deref()
                .and_then(head_branch)
                .unwrap_or_else(|| "main".to_owned()),
            bare,
        })
    }

    /// [`find_repo`](Self::find_repo), or a stand-in for `owner/name` when the
    /// fake does not know it: webhook payloads can name any repository.
    pub(super) fn repo_or_stub(&self, full_name: &str) -> RepoView {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name, ""));
        self.find_repo(owner, name).unwrap_or_else(|| RepoView {
            id: self.bare_repo_id(owner, name),
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: "main".to_owned(),
            bare: None,
        })
    }

    /// Every repository: the configured ones, then those only in `repos_dir`.
    pub(super) fn all_repos(&self) -> Vec<RepoView> {
        let mut repos: Vec<RepoView> = self
            .directory
            .repos
            .iter()
            .filter_map(|r| self.find_repo(&r.owner, &r.name))
            .collect();
        for (owner, name) in self.bare_repo_names() {
            let known = repos.iter().any(|r| {
                r.owner.eq_ignore_ascii_case(&owner) && r.name.eq_ignore_ascii_case(&name)
            });
            if !known && let Some(repo) = self.find_repo(&owner, &name) {
                repos.push(repo);
            }
        }
        repos
    }

    /// `(owner, name)` of each `repos_dir/OWNER/NAME.git`, sorted.
    fn bare_repo_names(&self) -> Vec<(String, String)> {
        let Some(root) = &self.repos_dir else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for owner in dir_names(root) {
            if !valid_name(&owner) {
                continue;
            }
            for entry in dir_names(&root.join(&owner)) {
                if let Some(name) = entry.strip_suffix(".git")
                    && valid_name(name)
                {
                    names.push((owner.clone(), name.to_owned()));
                }
            }
        }
        names.sort();
        names
    }

    fn bare_repo_id(&self, owner: &str, name: &str) -> u64 {
        let mut inner = self.lock();
        let next = FIRST_BARE_REPO_ID + inner.repo_ids.len() as u64;
        *inner
            .repo_ids
            .entry(format!("{owner}/{name}").to_lowercase())
            .or_insert(next)
    }
}

/// The names of the directories in `dir`; none when it cannot be read.
fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// The branch the bare repository's `HEAD` names. Read from the file rather
/// than with git: it is one line, and this runs on every repository lookup.
fn head_branch(bare: &Path) -> Option<String> {
    let head = std::fs::read_to_string(bare.join("HEAD")).ok()?;
    head.trim()
        .strip_prefix("ref: refs/heads/")
        .map(str::to_owned)
}

/// `GET /repos/{owner}/{repo}`.
pub(super) async fn get_repo(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath((owner, name)): UrlPath<(String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    match state.find_repo(&owner, &name) {
        Some(repo) => caller.reply(StatusCode::OK, Some(repo_json(&state, &repo))),
        None => caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body())),
    }
}

/// `GET /user/repos?per_page&page&sort`, paginated with a `link` header.
pub(super) async fn user_repos(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let caller = caller!(state, headers);
    let params = form::parse(uri.query().unwrap_or_default());
    let number = |key, default: usize| {
        form::get(&params, key)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_page = number("per_page", 30).clamp(1, 100);
    let page = number("page", 1).max(1);
    let mut repos = state.all_repos();
    // GitHub's default order; every fake repo has the same dates, so the
    // date sorts keep the configured order.
    if form::get(&params, "sort").is_none_or(|s| s == "full_name") {
        repos.sort_by_key(|r| (r.owner.to_lowercase(), r.name.to_lowercase()));
    }
    let last = repos.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = repos
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|repo| repo_json(&state, repo))
        .collect();
    let mut response = caller.reply(StatusCode::OK, Some(Value::Array(items)));
    if let Some(link) = link_header(&state.base_url, &params, page, last)
        && let Ok(value) = link.parse()
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// `<...page=N>; rel="next"` etc., keeping the caller's other parameters;
/// `None` when everything fits on one page.
fn link_header(
    base: &str,
    params: &[(String, String)],
    page: usize,
    last: usize,
) -> Option<String> {
    let url = |page: usize| {
        let mut pairs: Vec<(&str, String)> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("page", page.to_string()));
        format!("<{base}/user/repos?{}>", form::encode(&pairs))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

/// A repository as the REST API shows it.
pub(super) fn repo_json(state: &Shared, repo: &RepoView) -> Value {
    let base = &state.base_url;
    let full_name = format!("{}/{}", repo.owner, repo.name);
    // The owner is a configured user or org when there is one; otherwise a
    // stand-in org with a stable id derived from the repo's.
    let (owner_id, owner_type) = match state.directory.user_index(&repo.owner) {
        Some(u) => (state.directory.users[u].id, "User"),
        None => match state.directory.org(&repo.owner) {
            Some(org) => (org.id, "Organization"),
            None => (repo.id + 100_000, "Organization"),
        },
    };
    json!({
        "id": repo.id,
        "node_id": format!("R_fake{}", repo.id),
        "name": repo.name,
        "full_name": full_name,
        "owner": {"login": repo.owner, "id": owner_id, "type": owner_type},
        "private": false,
        "visibility": "public",
        "fork": false,
        "archived": false,
        "default_branch": repo.default_branch,
        "url": format!("{base}/repos/{full_name}"),
        "html_url": format!("{base}/{full_name}"),
        "clone_url": format!("{base}/{full_name}.git"),
        "description": null,
        "permissions": {"admin": false, "maintain": false, "push": true, "triage": true, "pull": true},
        "created_at": api::CREATED_AT,
        "updated_at": api::CREATED_AT,
        "pushed_at": api::CREATED_AT,
    })
}

/// `GET /repos/{owner}/{repo}/collaborators/{username}/permission`. As on
/// GitHub, only callers who may push see it; the owner is `admin`, read-only
/// users `read`, everyone else `write`.
pub(super) async fn permission(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath((owner, name, username)): UrlPath<(String, String, String)>,
) -> Response {
    let caller = caller!(state, headers);
    let Some(repo) = state.find_repo(&owner, &name) else {
        return caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    };
    let caller_login = state.directory.users[caller.user].login.clone();
    if state.is_read_only(&caller_login) {
        let body = json!({
            "message": "Must have push access to view repository collaborators.",
            "documentation_url": api::DOCS,
            "status": "403",
        });
        return caller.reply(StatusCode::FORBIDDEN, Some(body));
    }
    let Some(user) = state.directory.user_index(&username) else {
        return caller.reply(StatusCode::NOT_FOUND, Some(api::not_found_body()));
    };
    let user = &state.directory.users[user];
    let permission = if user.login.eq_ignore_ascii_case(&repo.owner) {
        "admin"
    } else if state.is_read_only(&user.login) {
        "read"
    } else {
        "write"
    };
    let body = json!({
        "permission": permission,
        "role_name": permission,
        "user": api::simple_user(&state.base_url, user),
    });
    caller.reply(StatusCode::OK, Some(body))
}

/// A git command that ignores the user's and the system's configuration and
/// any `GIT_*` variables of the process that runs the fake.
pub(super) fn git_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new("git");
    command
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Branch name to commit of every branch of a bare repository.
pub(super) async fn branches(bare: &Path) -> io::Result<HashMap<String, String>> {
    let output = git_command()
        .arg("--git-dir")
        .arg(bare)
        .args([
            "for-each-ref",
            "--format=%(objectname) %(refname:lstrip=2)",
            "refs/heads/",
        ])
        .output()
        .await?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "git for-each-ref in {}: {}",
            bare.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(sha, name)| (name.to_owned(), sha.to_owned()))
        .collect())
}

/// How many commits `head` has that `base` has not.
pub(super) async fn commits_between(bare: &Path, base: &str, head: &str) -> io::Result<u64> {
    let output = git_command()
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-list", "--count", &format!("{base}..{head}")])
        .output()
        .await?;
    let count = String::from_utf8_lossy(&output.stdout).trim().parse().ok();
    match count {
        Some(count) if output.status.success() => Ok(count),
        _ => Err(io::Error::other(format!(
            "git rev-list in {}: {}",
            bare.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

impl FakeGitHub {
    /// Makes the bare repository `repos_dir/OWNER/NAME.git` with one commit on
    /// `default_branch` holding `files` (`(path, contents)`, paths relative
    /// with `/`), authored by `fake <fake@example.com>`, and returns its path.
    /// Blocks while git runs; fails without `repos_dir`, for a repository that
    /// already exists, or for a name or path that would leave the directory.
    pub fn create_repo(
        &self,
        owner: &str,
        name: &str,
        files: &[(&str, &str)],
        default_branch: &str,
    ) -> io::Result<PathBuf> {
        let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        let Some(root) = &self.state.repos_dir else {
            return invalid("the fake GitHub was started without repos_dir".into());
        };
        if !valid_name(owner) || !valid_name(name) {
            return invalid(format!("{owner:?}/{name:?} is not a repository name"));
        }
        let bare = root.join(owner).join(format!("{name}.git"));
        if bare.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", bare.display()),
            ));
        }
        // The work tree and index are temporary, so the bare repository ends
        // up as a push would leave it.
        let scratch = tempfile::tempdir()?;
        let tree = scratch.path().join("tree");
        std::fs::create_dir(&tree)?;
        for (path, contents) in files {
            let relative = Path::new(path);
            let safe = relative.components().all(|c| match c {
                std::path::Component::Normal(part) => part != ".git",
                _ => false,
            });
            if !safe {
                return invalid(format!("{path:?} is not a plain relative path"));
            }
            let target = tree.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, contents)?;
        }
        std::fs::create_dir_all(root.join(owner))?;
        let branch = format!("--initial-branch={default_branch}");
        run_git(&["init", "--quiet", "--bare", &branch], &bare, None)?;
        let index = scratch.path().join("index");
        let work = Some((tree.as_path(), index.as_path()));
        run_git(&["add", "--all", "."], &bare, work)?;
        let message = "Initial commit";
        run_git(
            &["commit", "--quiet", "--allow-empty", "-m", message],
            &bare,
            work,
        )?;
        Ok(bare)
    }
}

/// Runs git on `bare` (created by `init`), with a work tree and index file
/// when given, and fails with git's stderr.
fn run_git(args: &[&str], bare: &Path, work: Option<(&Path, &Path)>) -> io::Result<()> {
    let mut command = std::process::Command::new("git");
    command
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_AUTHOR_DATE", AUTHOR_DATE)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_DATE", AUTHOR_DATE)
        .stdin(Stdio::null());
    if args.first() == Some(&"init") {
        command.args(args).arg(bare);
    } else {
        command.arg("--git-dir").arg(bare);
        if let Some((tree, index)) = work {
            command
                .arg("--work-tree")
                .arg(tree)
                .current_dir(tree)
                .env("GIT_INDEX_FILE", index);
        }
        command.args(args);
    }
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "git {} in {}: {}",
            args.join(" "),
            bare.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
