//! The tools the model can call, all executed through the task's sandbox.
//!
//! Flow of one call: the loop records the call (durably) → [`Tools::call`]
//! dispatches by name → the tool runs inside the sandbox, streaming output
//! through an [`OutputStreamer`] → the result, capped, goes back to the model.
//! A tool failure the model can act on is an `is_error` result, never an `Err`.

mod bash;
mod editor;
mod streamer;

use std::sync::Arc;
use std::time::Duration;

use dockhand_model::ToolSpec;
use dockhand_sandbox::Sandbox;
use serde_json::Value;

pub use bash::BashTool;
pub use editor::EditorTool;
pub use streamer::OutputStreamer;

/// Tool name of the bash tool.
pub const BASH: &str = "bash";
/// Tool name of the text editor tool.
pub const EDITOR: &str = "str_replace_based_edit_tool";

/// What a tool call produced, as the model will see it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    /// Result text (already capped).
    pub text: String,
    /// True when the tool failed (bad input, timeout, dead shell).
    pub is_error: bool,
    /// The command's exit code, for commands that ran to the end.
    pub exit_code: Option<i32>,
}

impl ToolOutcome {
    pub(crate) fn error(text: impl Into<String>) -> Self {
        ToolOutcome {
            text: text.into(),
            is_error: true,
            exit_code: None,
        }
    }

    pub(crate) fn ok(text: impl Into<String>) -> Self {
        ToolOutcome {
            text: text.into(),
            is_error: false,
            exit_code: None,
        }
    }
}

/// Limits for the tools.
#[derive(Clone, Debug)]
pub struct ToolLimits {
    /// A bash command is killed after this long.
    pub command_timeout: Duration,
    /// Most characters of a result sent to the model.
    pub result_cap: usize,
    /// Most bytes of a command's output streamed as `tool_output` events.
    pub stream_cap: usize,
    /// Largest file the editor reads.
    pub max_file_bytes: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        ToolLimits {
            command_timeout: Duration::from_secs(600),
            result_cap: 16_000,
            stream_cap: 256 * 1024,
            max_file_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The tool set of one agent run.
pub struct Tools {
    sandbox: Arc<dyn Sandbox>,
    bash: BashTool,
    editor: EditorTool,
}

impl Tools {
    /// Tools running in `sandbox`.
    pub fn new(sandbox: Arc<dyn Sandbox>, limits: ToolLimits) -> Self {
        Tools {
            sandbox,
            bash: BashTool::new(limits.clone()),
            editor: EditorTool::new(limits),
        }
    }

    /// The definitions sent to the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec::Bash,
            ToolSpec::TextEditor {
                max_characters: Some(self.editor.result_cap() as u32),
            },
        ]
    }

    /// Runs one call.
    pub async fn call(
        &mut self,
        name: &str,
        input: &Value,
        out: &mut OutputStreamer,
    ) -> ToolOutcome {
        let mut outcome = match name {
            BASH => self.bash.call(self.sandbox.as_ref(), input, out).await,
            EDITOR => self.editor.call(self.sandbox.as_ref(), input).await,
            other => ToolOutcome::error(format!(
                "unknown tool `{other}`; the tools are `{BASH}` and `{EDITOR}`"
            )),
        };
        // A lost container replaced during the call: the model hears it here.
        if let Some(notice) = self.sandbox.take_notice() {
            let id = self.sandbox.info().id;
            let short = &id[..id.len().min(12)];
            out.phase("replaced", format!("{short}, on the same workspace"));
            outcome.text = format!("[{notice}]\n{}", outcome.text);
        }
        outcome
    }

    /// Stops the shell (after a cancel, or at the end of a run).
    pub async fn shutdown(&mut self) {
        self.bash.shutdown().await;
    }
}
