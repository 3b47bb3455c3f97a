//! The workspace: kept from an earlier run, a warm-pool slot, or a new
//! directory; on a first run, the bundle to seed it from (of the mirror for
//! remote repositories, of the repository itself for local ones) and the
//! repository's environment, read at the base commit.

use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

use dockhand_forge::Base;
use dockhand_forge::Environment;
use dockhand_forge::RepoSource;
use dockhand_sandbox::WarmSandbox;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use super::super::error::RunError;
use super::super::events::phase;
use crate::services::Services;

/// The task's workspace directory, and the warm-pool sandbox serving it, if
/// one was taken.
pub(super) async fn choose(s: &Services, task: &TaskRow) -> (PathBuf, Option<WarmSandbox>) {
    if let Some(kept) = &task.workspace {
        return (PathBuf::from(kept), None);
    }
    if let (Some(pool), None) = (s.sandboxes.warm_pool(), &task.sandbox)
        && let Some(warm) = pool.take(task.id.as_str()).await
    {
        return (warm.workspace.clone(), Some(warm));
    }
    (s.workspace_dir(&task.id), None)
}

/// What a workspace is seeded from: the repository's base branch, bundled
/// from the mirror (remote) or the repository itself (local), and, to
/// continue a task whose workspace was removed, the task's own branch.
pub(super) struct Fresh {
    pub base: Base,
    pub bundle: Vec<u8>,
    /// The ref holding the task's branch, in the bundle, when continuing it.
    pub task_ref: Option<String>,
    /// The workspace's `origin`: the remote's plain URL, or the local path.
    pub origin: String,
    /// How the repository was reached, for the `clone` phase.
    pub via: &'static str,
    /// When the clone step began.
    pub started: Instant,
}

/// The repository's environment, and on a first run what to seed the
/// workspace from; a later run keeps what the last one left, or, when that
/// was removed (`dockhand gc` removes only what was all handed back),
/// continues from the task's branch.
pub(super) async fn source(
    s: &Services,
    task: &mut TaskRow,
    ws: &Path,
    source: &RepoSource,
    cancel: &CancellationToken,
) -> Result<(Environment, Option<Fresh>), RunError> {
    let t = Instant::now();
    task.workspace = Some(ws.to_string_lossy().into_owned());
    let removed = task.workspace_removed_at.is_some() || !ws.is_dir();
    if task.base_commit.is_some() && !removed {
        let detail = Some("workspace kept from the previous run".into());
        phase(&s.store, &task.id, "clone", t.elapsed(), detail);
        let env = match task.environment.as_deref() {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| RunError::Io(format!("stored environment: {e}")))?,
            None => Environment::default(),
        };
        return Ok((env, None));
    }
    // Left half-filled by a crash: start again.
    if ws.exists() {
        clear_dir(ws).map_err(|e| RunError::Io(format!("clearing {}: {e}", ws.display())))?;
    }
    dockhand_sandbox::make_workspace(ws, s.sandboxes.workspace_owner())
        .map_err(|e| RunError::Io(format!("creating {}: {e}", ws.display())))?;
    let (repo, origin, via) = mirror(s, task, source, cancel).await?;
    let recorded = recorded_base(task);
    let task_ref = recorded.as_ref().map(|_| match source {
        RepoSource::Remote { .. } => format!("refs/dockhand/{}", task.id),
        RepoSource::Local { .. } => format!("refs/heads/{}", task.branch),
    });
    let max = s.config.git.max_bundle_bytes;
    let branch = match &recorded {
        Some(base) => Some(base.branch.as_str()),
        None => task.base_branch.as_deref(),
    };
    let (base, bundle) = tokio::select! {
        r = dockhand_forge::seed_bundle(&repo, branch, task_ref.as_deref(), max) => r.map_err(RunError::Clone)?,
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
    };
    // The task's own base stays what it started from.
    let base = recorded.unwrap_or(base);
    // Read from the repository at the base commit, never from the workspace.
    let env = Environment::read_at(&repo, &base.commit)
        .await
        .map_err(RunError::Environment)?;
    let fresh = Fresh {
        base,
        bundle,
        task_ref,
        origin: origin.unwrap_or_else(|| repo.to_string_lossy().into_owned()),
        via,
        started: t,
    };
    Ok((env, Some(fresh)))
}

/// The base a task that ran before recorded.
fn recorded_base(task: &TaskRow) -> Option<Base> {
    Some(Base {
        branch: task.base_ref.clone()?,
        commit: task.base_commit.clone()?,
    })
}

/// The repository to seed from: a local one as it is, a remote one through
/// its mirror, fetched with the user's token (sent only to GitHub itself); the
/// workspace's origin is the plain URL, with no credentials in it.
async fn mirror(
    s: &Services,
    task: &TaskRow,
    source: &RepoSource,
    cancel: &CancellationToken,
) -> Result<(PathBuf, Option<String>, &'static str), RunError> {
    match source {
        RepoSource::Local { path } => Ok((path.clone(), None, "")),
        RepoSource::Remote { url } => {
            let token = s.user_token(task.user_id);
            let mirror = tokio::select! {
                r = s.forge.mirrors.sync(url, token.as_deref()) => r.map_err(RunError::Clone)?,
                _ = cancel.cancelled() => return Err(RunError::Cancelled),
            };
            Ok((mirror, Some(url.clone()), " via the mirror"))
        }
    }
}

/// Empties a directory left half-filled by a crash, keeping the directory itself
/// (a warm-pool container has it bind-mounted).
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
