//! Checkpoints: after every turn that changed files, the sandbox snapshots its
//! work tree as a commit on no branch and sends it as an incremental bundle,
//! which the coordinator keeps in the store (`checkpoints`, `blobs`). The agent
//! loop starts one when a turn's tool results are recorded and waits for it only
//! before the next tool call (see `dockhand_agent::Checkpointer`). A checkpoint
//! never fails its task: a failure or a bundle over `sandbox.checkpoint_max_mb`
//! is a `checkpoint` event with `skipped_reason`. [`restore`] brings a task's
//! chain back into a repository the coordinator owns.

mod error;
mod restore;
mod snapshot;

pub use error::CheckpointError;
pub use restore::restore;

use std::sync::Arc;

use async_trait::async_trait;
use dockhand_agent::Checkpointer;
use dockhand_protocol::CheckpointEvent;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_sandbox::Sandbox;
use dockhand_store::CheckpointRow;
use dockhand_store::NewCheckpoint;
use dockhand_store::Store;
use dockhand_store::TaskRow;

use self::snapshot::Author;
use self::snapshot::Previous;
use self::snapshot::Snapshot;
use crate::services::Services;

/// What one checkpoint came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The work tree was the previous checkpoint's: nothing stored.
    Unchanged,
    /// Stored.
    Stored(CheckpointRow),
    /// Over the cap: not stored, and a `checkpoint` event says so.
    TooBig {
        /// The bundle's size, at least.
        bytes: u64,
    },
}

/// The checkpointer of a task's run: `None` when checkpoints are off
/// (`sandbox.checkpoint_max_mb = 0`) or the task has no base commit yet.
pub(crate) fn for_task(
    s: &Services,
    task: &TaskRow,
    sandbox: Arc<dyn Sandbox>,
) -> Option<Arc<dyn Checkpointer>> {
    let max_mb = s.config.sandbox.checkpoint_max_mb;
    let base_commit = task.base_commit.clone().filter(|_| max_mb > 0)?;
    Some(Arc::new(SandboxCheckpointer {
        store: s.store.clone(),
        task: task.id.clone(),
        sandbox,
        base_commit,
        max_bytes: max_mb.saturating_mul(1 << 20),
        author_name: s.config.git.author_name.clone(),
        author_email: s.config.git.author_email.clone(),
    }))
}

/// Takes a task's checkpoints in its sandbox and stores them.
pub struct SandboxCheckpointer {
    /// Where checkpoints and events go.
    pub store: Store,
    /// The task.
    pub task: TaskId,
    /// Its sandbox.
    pub sandbox: Arc<dyn Sandbox>,
    /// The commit the task started from: the first checkpoint's parent.
    pub base_commit: String,
    /// Largest bundle kept.
    pub max_bytes: u64,
    /// Author and committer name of checkpoint commits.
    pub author_name: String,
    /// Their email.
    pub author_email: String,
}

impl SandboxCheckpointer {
    /// Snapshots and stores; `Ok` also when nothing changed or the bundle was too big.
    pub async fn try_checkpoint(&self, turn: u32) -> Result<Outcome, CheckpointError> {
        let last = self.store.last_checkpoint(&self.task)?;
        let prev = Previous {
            commit: last
                .as_ref()
                .map_or(self.base_commit.as_str(), |c| c.commit.as_str()),
            tree: last.as_ref().map_or("", |c| c.tree.as_str()),
            base: &self.base_commit,
        };
        let author = Author {
            name: &self.author_name,
            email: &self.author_email,
        };
        let snap =
            snapshot::take(self.sandbox.as_ref(), &prev, turn, self.max_bytes, &author).await?;
        Ok(match snap {
            Snapshot::Unchanged => Outcome::Unchanged,
            Snapshot::TooBig { commit, bytes } => {
                let reason = format!(
                    "the checkpoint is {} MiB, over sandbox.checkpoint_max_mb ({} MiB)",
                    bytes.div_ceil(1 << 20),
                    self.max_bytes >> 20
                );
                self.skipped(turn, Some(commit), bytes, reason);
                Outcome::TooBig { bytes }
            }
            Snapshot::Taken {
                commit,
                tree,
                bundle,
            } => Outcome::Stored(
                self.store
                    .add_checkpoint(NewCheckpoint {
                        task_id: self.task.clone(),
                        turn,
                        commit,
                        tree,
                        parent: last.map(|c| c.id),
                        bundle,
                    })
                    .await?,
            ),
        })
    }

    fn skipped(&self, turn: u32, commit: Option<String>, bytes: u64, reason: String) {
        tracing::warn!(task = %self.task, turn, bytes, reason, "checkpoint skipped");
        let body = EventBody::Checkpoint(CheckpointEvent {
            turn,
            commit,
            bytes,
            skipped_reason: Some(reason),
        });
        if let Err(e) = self.store.append(&self.task, body) {
            tracing::warn!(task = %self.task, error = %e, "dropping a checkpoint event");
        }
    }
}

#[async_trait]
impl Checkpointer for SandboxCheckpointer {
    async fn checkpoint(&self, turn: u32) {
        if let Err(e) = self.try_checkpoint(turn).await {
            self.skipped(turn, None, 0, e.to_string());
        }
    }
}
