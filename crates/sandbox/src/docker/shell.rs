//! The persistent shell: one long-lived exec with stdin attached.
//!
//! The shell runs under [`SHELL_WRAPPER`](super::scripts::SHELL_WRAPPER), which reports
//! its pid and then joins its stderr to its stdout, so the two arrive in the order the
//! shell wrote them. A pump task moves Docker's frames into an in-memory pipe that is the
//! [`ShellProcess::output`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::io::DuplexStream;
use tokio::sync::watch;

use super::container::Container;
use super::exec::Output;
use crate::LimitMarks;
use crate::ProcessControl;
use crate::Result;
use crate::ShellProcess;

/// Output held for a reader that is slow to read; the shell blocks when it is full.
const PIPE_BUFFER: usize = 256 * 1024;

/// How long a kill waits for the output to end. It takes milliseconds; this only
/// bounds a daemon that stopped answering.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// Starts `argv` (already wrapped) as a shell.
pub(crate) async fn spawn(container: Arc<Container>, argv: Vec<String>) -> Result<ShellProcess> {
    let marks_at_start = container.marks().await;
    let opened = container.open(argv, None, &[], true).await?;
    let (reader, writer) = tokio::io::duplex(PIPE_BUFFER);
    let (ended_tx, ended_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut first = opened.stdout;
    first.extend_from_slice(&opened.stderr);
    tokio::spawn(pump(opened.output, first, writer, ended_tx, stop_rx));
    let control = ShellControl {
        container,
        pid: opened.pid,
        ended: ended_rx,
        stop: stop_tx,
        marks_at_start,
    };
    Ok(ShellProcess {
        stdin: Box::new(opened.input),
        output: Box::new(reader),
        control: Box::new(control),
    })
}

/// Copies the shell's output (`first`, then Docker's frames) to `writer` until Docker
/// closes the stream, then drops `writer` (end-of-file for the reader) and signals
/// `ended`. Once `stop` is set it stops forwarding, so a reader that no longer reads
/// cannot keep a kill waiting.
async fn pump(
    mut output: Output,
    first: Vec<u8>,
    mut writer: DuplexStream,
    ended: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut forwarding = writer.write_all(&first).await.is_ok();
    while let Some(item) = output.next().await {
        let bytes = match item {
            Ok(
                LogOutput::StdErr { message }
                | LogOutput::StdOut { message }
                | LogOutput::Console { message },
            ) => message,
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "shell output ended with an error");
                break;
            }
        };
        if forwarding && !bytes.is_empty() {
            tokio::select! {
                written = writer.write_all(&bytes) => forwarding = written.is_ok(),
                _ = stop.wait_for(|s| *s) => forwarding = false,
            }
        }
    }
    drop(writer);
    ended.send_replace(true);
}

/// Kills a shell. Dropping it kills the shell too.
struct ShellControl {
    container: Arc<Container>,
    /// The shell's pid inside the container: its session and process group id.
    pid: u32,
    ended: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    marks_at_start: LimitMarks,
}

#[async_trait]
impl ProcessControl for ShellControl {
    async fn kill(&self) {
        kill(&self.container, self.pid, self.ended.clone(), &self.stop).await;
    }

    async fn killed_reason(&self) -> Option<String> {
        let now = self.container.marks().await;
        self.container.explain(self.marks_at_start, now)
    }
}

/// Kills the shell's tree and returns once its output has ended.
async fn kill(
    container: &Container,
    pid: u32,
    mut ended: watch::Receiver<bool>,
    stop: &watch::Sender<bool>,
) {
    if *ended.borrow() {
        return;
    }
    container.kill_tree(pid).await;
    stop.send_replace(true);
    if tokio::time::timeout(KILL_WAIT, ended.wait_for(|e| *e))
        .await
        .is_err()
    {
        tracing::warn!(pid, "shell output still open {KILL_WAIT:?} after its kill");
    }
}

impl Drop for ShellControl {
    fn drop(&mut self) {
        if *self.ended.borrow() {
            return;
        }
        // Kill in the background: the owner is gone and nobody waits.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let container = Arc::clone(&self.container);
        let pid = self.pid;
        let ended = self.ended.clone();
        let stop = self.stop.clone();
        runtime.spawn(async move { kill(&container, pid, ended, &stop).await });
    }
}
