//! What a run tells the person as it goes: `phase` events with their
//! durations, and the output of `setup` and `prepare` as it comes.

use std::time::Duration;

use dockhand_protocol::EventBody;
use dockhand_protocol::NetworkLevel;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::TaskId;
use dockhand_protocol::ToolOutputEvent;
use dockhand_store::Store;

/// Output of `setup` or `prepare` kept for the failure message.
pub(crate) const TAIL: usize = 4000;

/// Records a `phase` event; a store that cannot take it only costs the event.
pub(crate) fn phase(
    store: &Store,
    id: &TaskId,
    phase: &str,
    took: Duration,
    detail: Option<String>,
) {
    phase_at(store, id, phase, took, detail, None);
}

/// A `phase` event that also says the task's network level.
pub(crate) fn phase_at(
    store: &Store,
    id: &TaskId,
    phase: &str,
    took: Duration,
    detail: Option<String>,
    network: Option<NetworkLevel>,
) {
    let body = EventBody::Phase(PhaseEvent {
        phase: phase.into(),
        duration_ms: took.as_millis() as u64,
        detail,
        network,
    });
    if let Err(e) = store.append(id, body) {
        tracing::warn!(task = %id, error = %e, "dropping phase event");
    }
}

/// Streams a step's output as `tool_output` events under the id `setup` or
/// `prepare`, keeping the last [`TAIL`] bytes for the failure message.
pub(crate) struct StepOutput {
    store: Store,
    task: TaskId,
    id: &'static str,
    kept: Vec<u8>,
}

impl StepOutput {
    pub(crate) fn new(store: &Store, task: &TaskId, id: &'static str) -> StepOutput {
        StepOutput {
            store: store.clone(),
            task: task.clone(),
            id,
            kept: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        if self.kept.len() > 2 * TAIL {
            self.kept.drain(..self.kept.len() - TAIL);
        }
        let body = EventBody::ToolOutput(ToolOutputEvent {
            id: self.id.to_owned(),
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
        let _ = self.store.append(&self.task, body);
    }

    /// The end of the output, for a failure message.
    pub(crate) fn tail(&self) -> String {
        crate::text::tail(&String::from_utf8_lossy(&self.kept), TAIL)
    }
}
