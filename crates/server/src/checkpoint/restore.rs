//! Bringing a task's checkpoints back: the bundle chain from the store, fetched
//! in order into a repository the coordinator owns, with every object checked.

use std::path::Path;

use dockhand_protocol::TaskId;
use dockhand_store::CheckpointRow;
use dockhand_store::Store;

use super::error::CheckpointError;

/// Fetches a task's checkpoints, oldest first, into the repository at `repo`,
/// which must hold the task's base commit (its mirror does), and points
/// `refs/dockhand/checkpoints/<task>` at the newest. Each bundle passes through a
/// file in `scratch`, a directory the coordinator owns, and is removed after.
/// Returns the newest checkpoint, whose commit a replacement sandbox can start
/// from; `None` when the task has none.
pub async fn restore(
    store: &Store,
    task: &TaskId,
    repo: &Path,
    scratch: &Path,
) -> Result<Option<CheckpointRow>, CheckpointError> {
    let chain = store.checkpoints(task)?;
    let target = format!("refs/dockhand/checkpoints/{task}");
    for checkpoint in &chain {
        let bundle = store.blob(checkpoint.blob_id)?;
        let file = scratch.join(format!("{task}-checkpoint-{}.bundle", checkpoint.id));
        crate::data_dir::write_private(&file, &bundle).map_err(|source| CheckpointError::Io {
            what: format!("writing {}", file.display()),
            source,
        })?;
        let fetched =
            dockhand_forge::fetch_checkpoint(&file, repo, &checkpoint.commit, &target).await;
        let _ = std::fs::remove_file(&file);
        fetched?;
    }
    Ok(chain.into_iter().last())
}
