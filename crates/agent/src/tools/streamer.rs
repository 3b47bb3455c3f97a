use std::time::Duration;

use dockhand_protocol::EventBody;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::TaskId;
use dockhand_protocol::ToolOutputEvent;
use dockhand_store::Store;

use crate::output::Utf8Carry;

/// Turns a command's output into `tool_output` events: coalesced (at most one
/// event per `FLUSH_BYTES` or per flush tick) and capped per call.
pub struct OutputStreamer {
    store: Store,
    task: TaskId,
    tool_use_id: String,
    utf8: Utf8Carry,
    buf: String,
    streamed: usize,
    cap: usize,
    capped: bool,
}

/// Flush at this size without waiting for the tick.
const FLUSH_BYTES: usize = 8 * 1024;

/// How often buffered output is flushed while a command is quiet.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

impl OutputStreamer {
    /// A streamer for one tool call.
    pub fn new(store: Store, task: TaskId, tool_use_id: String, cap: usize) -> Self {
        OutputStreamer {
            store,
            task,
            tool_use_id,
            utf8: Utf8Carry::default(),
            buf: String::new(),
            streamed: 0,
            cap,
            capped: false,
        }
    }

    /// Adds output bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let text = self.utf8.decode(bytes);
        self.buf.push_str(&text);
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Emits what is buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() || self.capped {
            self.buf.clear();
            return;
        }
        let mut text = std::mem::take(&mut self.buf);
        if self.streamed + text.len() > self.cap {
            let mut keep = self.cap.saturating_sub(self.streamed);
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
            text.push_str(&format!(
                "\n[live output stops here: over {} KiB streamed; the result shows the end of the output]\n",
                self.cap / 1024
            ));
            self.capped = true;
        }
        self.streamed += text.len();
        let body = EventBody::ToolOutput(ToolOutputEvent {
            id: self.tool_use_id.clone(),
            text,
        });
        if let Err(e) = self.store.append(&self.task, body) {
            tracing::warn!(error = %e, "dropping tool output event");
        }
    }

    /// Records a `phase` event for the task (a sandbox replaced mid-run).
    pub fn phase(&self, phase: &str, detail: String) {
        let body = EventBody::Phase(PhaseEvent {
            phase: phase.to_owned(),
            duration_ms: 0,
            detail: Some(detail),
            network: None,
        });
        if let Err(e) = self.store.append(&self.task, body) {
            tracing::warn!(error = %e, "dropping a phase event");
        }
    }

    /// Emits the rest at the end of the call.
    pub fn finish(&mut self) {
        let rest = self.utf8.finish();
        self.buf.push_str(&rest);
        self.flush();
    }
}
