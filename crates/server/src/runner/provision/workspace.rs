//! The workspace: kept from an earlier run, a warm-pool slot, or a new
//! directory; filled by cloning from the mirror (remote repositories) or the
//! repository itself (local ones), and read for the repository's environment.

use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

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

/// Clones the repository into `ws` on the first run, or keeps what the last
/// run left; either way, the repository's environment as it was cloned.
pub(super) async fn fill(
    s: &Services,
    task: &mut TaskRow,
    ws: &Path,
    source: &RepoSource,
    cancel: &CancellationToken,
) -> Result<Environment, RunError> {
    let t = Instant::now();
    let env = if task.base_commit.is_none() {
        clone(s, task, ws, source, cancel).await?
    } else {
        let detail = Some("workspace kept from the previous run".into());
        phase(&s.store, &task.id, "clone", t.elapsed(), detail);
        match task.environment.as_deref() {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| RunError::Io(format!("stored environment: {e}")))?,
            None => Environment::default(),
        }
    };
    task.workspace = Some(ws.to_string_lossy().into_owned());
    Ok(env)
}

/// A fresh clone, recorded with its base and environment.
async fn clone(
    s: &Services,
    task: &mut TaskRow,
    ws: &Path,
    source: &RepoSource,
    cancel: &CancellationToken,
) -> Result<Environment, RunError> {
    let t = Instant::now();
    let owner = s.sandboxes.workspace_owner();
    if ws.exists() {
        clear_dir(ws).map_err(|e| RunError::Io(format!("clearing {}: {e}", ws.display())))?;
    }
    dockhand_sandbox::make_workspace(ws, owner)
        .map_err(|e| RunError::Io(format!("creating {}: {e}", ws.display())))?;
    let (from, origin, via) = mirror(s, task, source, cancel).await?;
    let src = RepoSource::Local { path: from.clone() };
    let info = tokio::select! {
        r = dockhand_forge::clone_workspace(&src, ws, task.base_branch.as_deref(), &task.branch, origin) => r.map_err(RunError::Clone)?,
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
    };
    if let Some(uid) = owner {
        chown_tree(ws, uid).await?;
    }
    // Read from the repository at the base commit, never from the workspace.
    let env = Environment::read_at(&from, &info.base_commit)
        .await
        .map_err(RunError::Environment)?;
    let env_json = serde_json::to_string(&env).map_err(|e| RunError::Io(e.to_string()))?;
    let store = &s.store;
    store
        .set_base(&task.id, info.base_branch.clone(), info.base_commit.clone())
        .await?;
    store
        .set_workspace(&task.id, ws.to_string_lossy().into_owned(), env_json)
        .await?;
    let short = &info.base_commit[..info.base_commit.len().min(12)];
    let detail = Some(format!("{} at {short}{via}", info.base_branch));
    phase(store, &task.id, "clone", t.elapsed(), detail);
    task.base_ref = Some(info.base_branch);
    task.base_commit = Some(info.base_commit);
    Ok(env)
}

/// The repository to clone from: a local one as it is, a remote one through
/// its mirror, fetched with the user's token (sent only to GitHub itself); the
/// workspace's origin is the plain URL, with no credentials in it.
async fn mirror<'a>(
    s: &Services,
    task: &TaskRow,
    source: &'a RepoSource,
    cancel: &CancellationToken,
) -> Result<(PathBuf, Option<&'a str>, &'static str), RunError> {
    match source {
        RepoSource::Local { path } => Ok((path.clone(), None, "")),
        RepoSource::Remote { url } => {
            let token = s.user_token(task.user_id);
            let mirror = tokio::select! {
                r = s.forge.mirrors.sync(url, token.as_deref()) => r.map_err(RunError::Clone)?,
                _ = cancel.cancelled() => return Err(RunError::Cancelled),
            };
            Ok((mirror, Some(url.as_str()), " via the mirror"))
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

/// Gives the fresh clone to the sandbox user, without following symlinks.
async fn chown_tree(dir: &Path, uid: u32) -> Result<(), RunError> {
    let out = tokio::process::Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{uid}"), "--"])
        .arg(dir)
        .output()
        .await
        .map_err(|e| RunError::Io(format!("chown {}: {e}", dir.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(RunError::Io(format!(
            "chown {}: {}",
            dir.display(),
            err.trim()
        )));
    }
    Ok(())
}
