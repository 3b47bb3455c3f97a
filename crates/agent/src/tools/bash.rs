//! The `bash` tool: one persistent shell per run, so `cd`, exported variables and
//! background jobs survive between calls.
//!
//! Each command is sent as `eval $'…'` (ANSI-C quoted, so any text is one safe
//! word and a syntax error cannot swallow what follows), with stdin from
//! /dev/null, followed by a sentinel line carrying a random nonce and `$?`.
//! stderr is merged into stdout by the shell itself (`exec 2>&1`).

use std::fmt::Write as _;

use dockhand_sandbox::LimitMarks;
use dockhand_sandbox::ProcessControl;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use serde_json::Value;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;

use super::OutputStreamer;
use super::ToolLimits;
use super::ToolOutcome;
use super::streamer::FLUSH_EVERY;
use crate::output::Capture;
use crate::output::cap_text;

struct Session {
    stdin: Box<dyn AsyncWrite + Send + Unpin>,
    output: Box<dyn AsyncRead + Send + Unpin>,
    control: Box<dyn ProcessControl>,
}

/// The persistent shell.
pub struct BashTool {
    session: Option<Session>,
    limits: ToolLimits,
    /// Limit counters at the end of the last command, so hits by background
    /// processes between commands are reported too.
    marks: Option<LimitMarks>,
}

enum Ended {
    Exit(i32),
    ShellGone,
    TimedOut,
}

impl BashTool {
    /// A tool with no shell yet; the first call starts one.
    pub fn new(limits: ToolLimits) -> Self {
        BashTool {
            session: None,
            limits,
            marks: None,
        }
    }

    /// Kills the shell and everything it started, and returns once the output
    /// pipe is closed: every process that held it has exited.
    pub async fn shutdown(&mut self) {
        // A new shell starts a new baseline for limit counters.
        self.marks = None;
        if let Some(mut s) = self.session.take() {
            s.control.kill().await;
            let mut sink = [0u8; 4096];
            let drained = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while matches!(s.output.read(&mut sink).await, Ok(n) if n > 0) {}
            });
            if drained.await.is_err() {
                tracing::warn!("the shell's output stayed open 5 s after it was killed");
            }
        }
    }

    /// Runs `{"command": ...}` or `{"restart": true}`.
    pub async fn call(
        &mut self,
        sandbox: &dyn Sandbox,
        input: &Value,
        out: &mut OutputStreamer,
    ) -> ToolOutcome {
        if input.get("restart").and_then(Value::as_bool) == Some(true) {
            self.shutdown().await;
            return match self.start_or_replace(sandbox).await {
                Ok(None) => ToolOutcome::ok("tool has been restarted."),
                Ok(Some(note)) => ToolOutcome::ok(format!("tool has been restarted.\n{note}")),
                Err(e) => ToolOutcome::error(e),
            };
        }
        let Some(command) = input.get("command").and_then(Value::as_str) else {
            return ToolOutcome::error("no command provided.");
        };
        let mut note = None;
        if self.session.is_none() {
            match self.start_or_replace(sandbox).await {
                Ok(n) => note = n,
                Err(e) => return ToolOutcome::error(e),
            }
        }
        let before = match (note.is_some(), self.marks) {
            (false, Some(m)) => m,
            _ => sandbox.limit_marks().await,
        };
        let (ended, capture) = self.run(command, out).await;
        out.finish();
        if let Err(e) = sandbox.after_command().await {
            tracing::warn!(error = %e, "tidying the workspace after a command");
        }
        let after = sandbox.limit_marks().await;
        self.marks = Some(after);
        let mut text = capture.text();
        if text.ends_with('\n') {
            text.pop();
        }
        let mut text = cap_text(&text, self.limits.result_cap);
        if let Some(why) = sandbox.explain_limits(before, after) {
            for line in why.lines() {
                let _ = write!(text, "{}[{line}]", sep(&text));
            }
        }
        if let Some(note) = note {
            text = format!("[{note}]\n{text}");
        }
        match ended {
            Ended::Exit(code) => {
                if code != 0 {
                    let _ = write!(text, "{}[exit code: {code}]", sep(&text));
                } else if text.is_empty() {
                    text.push_str("(no output)");
                }
                ToolOutcome {
                    text,
                    is_error: false,
                    exit_code: Some(code),
                }
            }
            Ended::TimedOut => {
                self.shutdown().await;
                let secs = self.limits.command_timeout.as_secs();
                let _ = write!(
                    text,
                    "{}[command timed out after {secs} s and was killed with everything it started; \
                     the shell was restarted, so the working directory and environment variables are reset]",
                    sep(&text)
                );
                ToolOutcome::error(text)
            }
            Ended::ShellGone => {
                let reason = match &self.session {
                    Some(s) => s.control.killed_reason().await,
                    None => None,
                };
                self.shutdown().await;
                let why = match reason {
                    Some(r) => format!("command killed: {r}"),
                    // Its sandbox may be gone (a removed or crashed container):
                    // replace it now, so this result says so.
                    None => match self.start_or_replace(sandbox).await {
                        Ok(Some(note)) => format!("the shell was lost: {note}"),
                        Ok(None) => "the shell exited".to_owned(),
                        Err(e) => format!("the shell exited, and {e}"),
                    },
                };
                let _ = write!(
                    text,
                    "{}[{why}; a new shell runs the next command, so the working directory and \
                     environment variables are reset]",
                    sep(&text)
                );
                ToolOutcome::error(text)
            }
        }
    }

    /// Starts the shell; when the sandbox can no longer start processes (a fork bomb
    /// filled its process limit), replaces it and says so in the returned note.
    async fn start_or_replace(&mut self, sandbox: &dyn Sandbox) -> Result<Option<String>, String> {
        let failed = |e: SandboxError| format!("could not start bash in the sandbox: {e}");
        match self.start(sandbox).await {
            Ok(()) => Ok(None),
            Err(SandboxError::Broken { reason }) => {
                sandbox.replace().await.map_err(|e| {
                    format!("the sandbox cannot start processes ({reason}) and could not be replaced: {e}")
                })?;
                self.start(sandbox).await.map_err(failed)?;
                // The sandbox's own notice says what was replaced and what is gone.
                Ok(Some(format!(
                    "the sandbox could not start new processes: {reason}"
                )))
            }
            Err(e) => Err(failed(e)),
        }
    }

    async fn start(&mut self, sandbox: &dyn Sandbox) -> Result<(), SandboxError> {
        let argv = ["bash", "--noprofile", "--norc"].map(String::from).to_vec();
        let mut p = sandbox.spawn_shell(argv).await?;
        p.stdin
            .write_all(b"exec 2>&1\ncd /workspace 2>/dev/null\n")
            .await
            .map_err(|e| SandboxError::Failed {
                what: "starting bash".into(),
                message: e.to_string(),
            })?;
        self.session = Some(Session {
            stdin: p.stdin,
            output: p.output,
            control: p.control,
        });
        Ok(())
    }

    async fn run(&mut self, command: &str, out: &mut OutputStreamer) -> (Ended, Capture) {
        let half = self.limits.result_cap * 2;
        let mut capture = Capture::new(half, half);
        let Some(s) = self.session.as_mut() else {
            return (Ended::ShellGone, capture);
        };
        let nonce = format!("{:016x}", rand::random::<u64>());
        let marker = format!("\n__DOCKHAND_{nonce}_").into_bytes();
        let script = format!(
            "eval {} </dev/null\nprintf '\\n__DOCKHAND_%s_%s__\\n' {nonce} \"$?\"\n",
            ansi_c_quote(command)
        );
        if s.stdin.write_all(script.as_bytes()).await.is_err() || s.stdin.flush().await.is_err() {
            return (Ended::ShellGone, capture);
        }
        let deadline = tokio::time::sleep(self.limits.command_timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let ended = loop {
            tokio::select! {
                read = s.output.read(&mut chunk) => {
                    let n = match read {
                        Ok(0) | Err(_) => {
                            capture.push(&pending);
                            out.push(&pending);
                            break Ended::ShellGone;
                        }
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = find(&pending, &marker) {
                        let rest = &pending[pos + marker.len()..];
                        if let Some(end) = find(rest, b"__") {
                            let code = std::str::from_utf8(&rest[..end])
                                .ok()
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(-1);
                            capture.push(&pending[..pos]);
                            out.push(&pending[..pos]);
                            break Ended::Exit(code);
                        }
                    } else {
                        // Hold back only a tail that could be the start of the marker.
                        let safe = pending.len() - partial_marker(&pending, &marker);
                        capture.push(&pending[..safe]);
                        out.push(&pending[..safe]);
                        pending.drain(..safe);
                    }
                }
                _ = tick.tick() => out.flush(),
                _ = &mut deadline => {
                    capture.push(&pending);
                    out.push(&pending);
                    break Ended::TimedOut;
                }
            }
        };
        (ended, capture)
    }
}

fn sep(text: &str) -> &'static str {
    if text.is_empty() { "" } else { "\n" }
}

/// Length of the longest tail of `buf` that is a proper prefix of `marker`.
fn partial_marker(buf: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(buf.len() + 1))
        .rev()
        .find(|&n| buf.ends_with(&marker[..n]))
        .unwrap_or(0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Quotes text as one bash word, `$'…'`, escaping everything but plain printable ASCII.
fn ansi_c_quote(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 3);
    q.push_str("$'");
    for b in text.bytes() {
        match b {
            b'\\' => q.push_str("\\\\"),
            b'\'' => q.push_str("\\'"),
            b'\n' => q.push_str("\\n"),
            0x20..=0x7e => q.push(b as char),
            _ => {
                let _ = write!(q, "\\x{b:02x}");
            }
        }
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_possible_marker_start_is_held_back() {
        let marker = b"\n__DOCKHAND_ab_";
        assert_eq!(partial_marker(b"started\n", marker), 1);
        assert_eq!(partial_marker(b"started\n__DOCK", marker), 7);
        assert_eq!(partial_marker(b"started", marker), 0);
        assert_eq!(partial_marker(b"", marker), 0);
    }

    #[test]
    fn quoting_escapes_quotes_backslashes_and_bytes() {
        assert_eq!(ansi_c_quote("echo 'a' \\ b"), r"$'echo \'a\' \\ b'");
        assert_eq!(ansi_c_quote("a\nb\tc"), r"$'a\nb\x09c'");
        assert_eq!(ansi_c_quote("é"), r"$'\xc3\xa9'");
    }
}
