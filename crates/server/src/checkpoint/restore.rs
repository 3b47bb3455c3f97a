//! Bringing a task's checkpoints back: the bundle chain from the store, fetched
//! in order into a repository the coordinator owns, with every object checked.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
        write_new(&file, &bundle)?;
        let fetched =
            dockhand_forge::fetch_checkpoint(&file, repo, &checkpoint.commit, &target).await;
        let _ = std::fs::remove_file(&file);
        fetched?;
    }
    Ok(chain.into_iter().last())
}

/// Writes `data` to a new file readable by its owner only.
fn write_new(path: &Path, data: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    // A file left by an interrupted restore goes first.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}
