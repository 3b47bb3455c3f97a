//! Importing checkpoints. A task's checkpoints arrive from its sandbox as a chain
//! of incremental bundles, each holding [`CHECKPOINT_REF`]. They are fetched in
//! order into a repository the coordinator owns (its mirror, or a scratch bare
//! repository), with every object checked, as any bundle from a sandbox is.

use std::path::Path;

use crate::ForgeError;
use crate::Result;
use crate::git::bundle_heads;
use crate::git::git;

/// The ref a checkpoint bundle holds, and the ref that keeps the newest
/// checkpoint reachable inside the sandbox (outside `refs/heads`, so the agent's
/// branches and `HEAD` never see it).
pub const CHECKPOINT_REF: &str = "refs/dockhand/checkpoint";

/// Fetches one checkpoint bundle (the file `bundle`, which must hold exactly
/// `commit` as [`CHECKPOINT_REF`]) into the repository at `repo` as `target`, a
/// ref under `refs/dockhand/`, checking its objects (`transfer.fsckObjects`).
/// Its prerequisite, the previous checkpoint or the task's base commit, must
/// already be in `repo`.
pub async fn fetch_checkpoint(
    bundle: &Path,
    repo: &Path,
    commit: &str,
    target: &str,
) -> Result<()> {
    if !target.starts_with("refs/dockhand/") {
        return Err(ForgeError::BadBundle(format!(
            "a checkpoint goes under refs/dockhand/, not {target}"
        )));
    }
    let heads = bundle_heads(bundle).await?;
    match heads.as_slice() {
        [(c, r)] if c == commit && r == CHECKPOINT_REF => {}
        _ => {
            return Err(ForgeError::BadBundle(format!(
                "expected exactly {CHECKPOINT_REF} at {commit}, found {heads:?}"
            )));
        }
    }
    let path = bundle.to_string_lossy().into_owned();
    let refspec = format!("+{CHECKPOINT_REF}:{target}");
    git(
        &format!("fetching checkpoint {commit} into {}", repo.display()),
        Some(repo),
        &[
            "-c",
            "transfer.fsckObjects=true",
            "fetch",
            "--quiet",
            "--no-tags",
            &path,
            &refspec,
        ],
    )
    .await?;
    Ok(())
}
