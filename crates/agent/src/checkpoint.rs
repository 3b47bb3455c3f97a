//! The checkpoint hook. When a turn's tool results are recorded, the loop starts
//! a checkpoint of the workspace and goes straight on to the next model request,
//! so the snapshot costs the agent nothing while the model thinks. The loop waits
//! for it before the next tool call runs, and before the run ends: every turn
//! before the one in progress is checkpointed.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::JoinHandle;

/// Snapshots a task's workspace after a turn.
#[async_trait]
pub trait Checkpointer: Send + Sync {
    /// Checkpoints the workspace after the turn whose tool results are
    /// conversation message `turn`. It never fails the task: an implementation
    /// reports its own failures (a log line, an event).
    async fn checkpoint(&self, turn: u32);
}

/// The checkpoint in flight, if any.
#[derive(Default)]
pub(crate) struct InFlight(Option<JoinHandle<()>>);

impl InFlight {
    /// Starts a checkpoint after message `turn`, behind any still running.
    pub(crate) fn start(&mut self, checkpointer: Option<&Arc<dyn Checkpointer>>, turn: u32) {
        let Some(checkpointer) = checkpointer.cloned() else {
            return;
        };
        let before = self.0.take();
        self.0 = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            checkpointer.checkpoint(turn).await;
        }));
    }

    /// Waits until the checkpoint in flight has finished.
    pub(crate) async fn finish(&mut self) {
        if let Some(handle) = self.0.take()
            && let Err(e) = handle.await
        {
            tracing::warn!(error = %e, "a checkpoint did not finish");
        }
    }
}
