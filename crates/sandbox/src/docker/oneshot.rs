//! One-shot commands: an opened exec run to its end or its timeout, its output
//! streamed to the caller and capped.

use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::api::api_error;
use super::container::Container;
use super::exec;
use super::exec::Opened;
use crate::ExecOutput;
use crate::OutputSink;
use crate::OutputStream;
use crate::Result;
use crate::exec::Capture;

/// How long output may keep flowing after a timeout's kill. Docker closes an exec's
/// streams at most about 2 s after its process exits even when an escaped background
/// process still holds them; this only bounds the wait if that ever changes.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Stands in for an unrepresentable deadline (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Runs an opened one-shot command to its end or its timeout.
pub(crate) async fn run(
    container: &Container,
    opened: Opened,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    output_cap: usize,
    sink: OutputSink<'_>,
) -> Result<ExecOutput> {
    let Opened {
        exec_id,
        mut output,
        mut input,
        pid,
        stdout,
        stderr,
    } = opened;
    // Fed from its own task so a command that writes a lot before reading cannot
    // deadlock against us. Errors (the command closed stdin early) are its business.
    if let Some(data) = stdin {
        tokio::spawn(async move {
            let _ = input.write_all(&data).await;
            // Half-closes the connection: the command sees end-of-file.
            let _ = input.shutdown().await;
        });
    }
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
    let mut capture = Capture::new(output_cap);
    capture.push(OutputStream::Stdout, &stdout, sink);
    capture.push(OutputStream::Stderr, &stderr, sink);
    let mut drain_until: Option<Instant> = None;

    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(LogOutput::StdErr { message })) => {
                    capture.push(OutputStream::Stderr, &message, sink);
                }
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    capture.push(OutputStream::Stdout, &message, sink);
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    // A broken connection after a kill is expected; otherwise report it.
                    if capture.out.timed_out {
                        break;
                    }
                    return Err(api_error("reading a command's output", e));
                }
                None => break,
            },
            () = tokio::time::sleep_until(deadline), if !capture.out.timed_out => {
                capture.out.timed_out = true;
                drain_until = Some(Instant::now() + DRAIN_GRACE);
                container.kill_tree(pid).await;
            }
            () = sleep_until_opt(drain_until), if drain_until.is_some() => {
                tracing::warn!(
                    grace = ?DRAIN_GRACE,
                    "command output still open after its timeout kill; leaving it"
                );
                break;
            }
        }
    }
    let mut out = capture.out;
    out.exit_code = if out.timed_out {
        None
    } else {
        exec::exit_code(&container.docker, &exec_id).await?
    };
    Ok(out)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
