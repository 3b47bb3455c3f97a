//! Handing the work back: commit inside the sandbox, record the diff stat, then
//! bring the branch out through a sandbox-written bundle, checked and size-bounded:
//! fetched into the user's own repository (local), or into the coordinator's mirror
//! and pushed from there, with a pull request (remote). The host never runs git in
//! the workspace, so nothing the agent wrote (hooks, filters, config) runs on the host.

pub(crate) mod commit;
mod github;

pub(crate) use github::MARKER;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;

use dockhand_forge::RepoSource;
use dockhand_protocol::DiffEvent;
use dockhand_protocol::EventBody;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::WORKSPACE;
use dockhand_store::TaskRow;
use dockhand_store::UserIdentity;

use crate::services::Services;

/// Errors while publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Committing or bundling inside the sandbox failed.
    #[error("committing the task's changes failed: {0}")]
    Commit(String),
    /// Bringing the branch back failed.
    #[error(transparent)]
    Forge(#[from] dockhand_forge::ForgeError),
    /// GitHub refused or could not be reached.
    #[error("{0}")]
    GitHub(String),
}

/// The commit message: the title, the agent's summary, the task, and the
/// person who asked as a co-author (GitHub links the noreply address to them).
fn message(s: &Services, task: &TaskRow, summary: &str) -> String {
    let mut message = format!("{}\n\n", task.title);
    message.push_str(&crate::text::clip(summary.trim(), 8000));
    message.push_str(&format!("\n\nDockhand-Task: {}\n", task.id));
    if let Ok(Some(UserIdentity {
        login,
        github_id: Some(id),
    })) = s.store.user_identity(task.user_id)
    {
        message.push_str(&format!(
            "Co-authored-by: {login} <{id}+{login}@users.noreply.github.com>\n"
        ));
    }
    message
}

/// Commits and hands the branch back; returns a one-line note for the person.
pub async fn publish(
    s: &Services,
    task: &TaskRow,
    sandbox: &dyn Sandbox,
    summary: &str,
    source: &RepoSource,
) -> Result<String, PublishError> {
    let base = task
        .base_commit
        .clone()
        .ok_or_else(|| PublishError::Commit("the task has no base commit".into()))?;
    let message = message(s, task, summary);
    let done = commit::commit(sandbox, task, &base, &s.config.git, message).await?;
    let changed = done.head != base;
    let (files_changed, insertions, deletions) = done.shortstat;
    let diff = DiffEvent {
        branch: task.branch.clone(),
        commit: changed.then(|| done.head.clone()),
        files_changed,
        insertions,
        deletions,
        stat: crate::text::clip(&done.stat, 8000),
    };
    s.store
        .append(&task.id, EventBody::Diff(diff))
        .map_err(|e| PublishError::Commit(e.to_string()))?;
    if !changed {
        return Ok("no changes to hand back".to_owned());
    }
    if !done.bundle {
        return Err(PublishError::Commit(
            "the sandbox did not write the bundle".into(),
        ));
    }
    let copy = take_bundle(s, task, sandbox).await?;
    let result = match source {
        RepoSource::Local { path } => fetch_back(&copy, task, path, &done.head)
            .await
            .map(|()| format!("branch {} is in {}", task.branch, path.display())),
        RepoSource::Remote { url } => {
            github::push_and_open_pr(s, task, url, &copy, summary, &done.stat).await
        }
    };
    // Kept after a failure, so a failed push loses nothing.
    if result.is_ok() {
        let _ = std::fs::remove_file(&copy);
    }
    result
}

/// Downloads the bundle the sandbox wrote (a regular file only, size bounded)
/// into the coordinator's own directory, private to it.
async fn take_bundle(
    s: &Services,
    task: &TaskRow,
    sandbox: &dyn Sandbox,
) -> Result<PathBuf, PublishError> {
    let max = s.config.git.max_bundle_bytes;
    let path = format!("{WORKSPACE}/{}", commit::BUNDLE);
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = sandbox.download(&path, limit).await.map_err(|e| match e {
        SandboxError::TooLarge { .. } => PublishError::Commit(format!(
            "the task's changes are too large to hand back (the bundle is over the limit; \
             git.max_bundle_bytes = {} MiB). The work is committed in the task's workspace; \
             remove large or generated files with a follow-up, or raise git.max_bundle_bytes",
            max >> 20
        )),
        other => PublishError::Commit(format!("taking the bundle back: {other}")),
    })?;
    let dir = s.config.data_dir.join("bundles");
    let copy = dir.join(format!("{}.bundle", task.id));
    let io = |what: String| move |source| dockhand_forge::ForgeError::Io { what, source };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    crate::data_dir::write_private(&copy, &bytes)
        .map_err(io(format!("writing {}", copy.display())))?;
    Ok(copy)
}

async fn fetch_back(
    copy: &Path,
    task: &TaskRow,
    repo: &Path,
    head: &str,
) -> Result<(), PublishError> {
    let commit = dockhand_forge::fetch_bundle(copy, repo, &task.branch).await?;
    if commit != head {
        return Err(PublishError::Commit(format!(
            "the bundle holds {commit}, not the committed head {head}"
        )));
    }
    Ok(())
}
