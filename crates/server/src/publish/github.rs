//! Pushing a task's branch and opening (or updating) its pull request.

use std::path::Path;

use dockhand_forge::github::NewPullRequest;
use dockhand_store::TaskRow;

use super::PublishError;
use crate::services::Services;
use crate::text::clip;

/// Hidden in every comment and body Dockhand writes, so its own comments never trigger it.
pub const MARKER: &str = "<!-- dockhand -->";

fn task_link(deps: &Services, task: &TaskRow) -> String {
    format!("{}/#/tasks/{}", deps.config.public_url(), task.id)
}

fn pr_body(deps: &Services, task: &TaskRow, summary: &str, stat: &str) -> String {
    let summary = if summary.trim().is_empty() {
        "(the agent left no summary)"
    } else {
        summary.trim()
    };
    format!(
        "{MARKER}\n{}\n\n## Summary\n\n{}\n\n## Changes\n\n```\n{}```\n\nDockhand task: {}\n",
        clip(task.prompt.trim(), 4000),
        clip(summary, 8000),
        clip(stat, 4000),
        task_link(deps, task)
    )
}

/// Pushes the bundle's branch to `url`, then, for a GitHub repository, opens the
/// pull request or (for a follow-up) comments on the one already open.
pub(super) async fn push_and_open_pr(
    deps: &Services,
    task: &TaskRow,
    url: &str,
    bundle: &Path,
    summary: &str,
    stat: &str,
) -> Result<String, PublishError> {
    let gh_repo = deps.forge.github.repo_of(url);
    let token = deps.user_token(task.user_id);
    if gh_repo.is_some() && token.is_none() {
        return Err(PublishError::GitHub(format!(
            "cannot push to {url}: the task's owner has no GitHub token (sign in with GitHub at {}/auth/github/login). \
             The work is committed in the task's workspace",
            deps.config.public_url()
        )));
    }
    deps.forge
        .mirrors
        .push_bundle(
            url,
            token.as_deref(),
            bundle,
            task.id.as_str(),
            &task.branch,
        )
        .await?;
    let (Some((owner, repo)), Some(token)) = (gh_repo, token) else {
        return Ok(format!("pushed {} to {url}", task.branch));
    };
    let base = task.base_ref.clone().unwrap_or_else(|| "main".into());
    let body = pr_body(deps, task, summary, stat);
    let new = NewPullRequest {
        owner: &owner,
        repo: &repo,
        head: &task.branch,
        base: &base,
        title: &task.title,
        body: &body,
        draft: deps.config.git.draft_pull_requests,
    };
    let gh_err = |e: dockhand_forge::github::GitHubError| {
        PublishError::GitHub(format!("{e}. The branch was pushed"))
    };
    let (pr, created) = deps
        .forge
        .github
        .open_pr(&token, &new)
        .await
        .map_err(gh_err)?;
    deps.store
        .set_pull_request(&task.id, pr.html_url.clone(), pr.number, !created)
        .await
        .map_err(|e| PublishError::Commit(e.to_string()))?;
    if created {
        note_on_issue(deps, task, &token, &pr.html_url).await;
    } else {
        let note = format!(
            "{MARKER}\n**Follow-up pushed** ([task]({})).\n\n{}\n\n```\n{}```\n",
            task_link(deps, task),
            clip(summary.trim(), 6000),
            clip(stat, 3000)
        );
        deps.forge
            .github
            .comment(&token, &owner, &repo, pr.number, &note)
            .await
            .map_err(gh_err)?;
    }
    Ok(format!(
        "pushed {} to {owner}/{repo}; pull request #{}: {}",
        task.branch, pr.number, pr.html_url
    ))
}

/// Tells the issue that asked for the task where its pull request is.
async fn note_on_issue(deps: &Services, task: &TaskRow, token: &str, pr_url: &str) {
    let Some((issue_repo, number)) = task.origin_issue.as_deref().and_then(parse_issue) else {
        return;
    };
    let note = format!("{MARKER}\nDockhand opened {pr_url} for this.");
    if let Some((o, r)) = issue_repo.split_once('/')
        && let Err(e) = deps.forge.github.comment(token, o, r, number, &note).await
    {
        tracing::warn!(task = %task.id, error = %e, "commenting on the originating issue");
    }
}

/// `owner/name#N` → (`owner/name`, N).
pub(crate) fn parse_issue(s: &str) -> Option<(String, u64)> {
    let (repo, n) = s.rsplit_once('#')?;
    Some((repo.to_owned(), n.parse().ok()?))
}
