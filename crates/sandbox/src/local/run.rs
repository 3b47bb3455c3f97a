//! The I/O half of the local backend: starts bwrap with a planned argv, streams its
//! output, enforces timeouts and kills.
//!
//! Every plan unshares the pid namespace and sets `--die-with-parent`, so killing the
//! bwrap process we started makes the kernel kill the sandbox's pid 1 and with it every
//! process in the namespace, however deep or detached.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitStatus;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ExecOutput;
use crate::OutputSink;
use crate::OutputStream;
use crate::ProcessControl;
use crate::Result;
use crate::SandboxError;
use crate::ShellProcess;

/// How long output may keep flowing after bwrap itself has exited. The pipes close
/// as soon as the namespace's last process is gone, which takes moments; this only
/// bounds the wait if something unexpected keeps a pipe open.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

const READ_CHUNK: usize = 64 * 1024;

/// Stands in for an unrepresentable deadline (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The processes a sandbox started that are still running, so `kill_all` reaches them.
#[derive(Default)]
pub(crate) struct Tracker {
    procs: Mutex<Procs>,
}

#[derive(Default)]
struct Procs {
    next_id: u64,
    running: HashMap<u64, Tracked>,
}

struct Tracked {
    kill: watch::Sender<bool>,
    /// Closes when the owner has finished with the process.
    done: watch::Receiver<()>,
}

impl Tracker {
    /// Registers a process about to start.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let (kill_tx, kill_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(());
        let mut procs = self.procs.lock().unwrap_or_else(PoisonError::into_inner);
        let id = procs.next_id;
        procs.next_id += 1;
        procs.running.insert(
            id,
            Tracked {
                kill: kill_tx.clone(),
                done: done_rx,
            },
        );
        Registration {
            tracker: Arc::clone(self),
            id,
            kill_tx,
            kill_rx,
            done_tx,
        }
    }

    /// Kills every registered process and waits until their owners have seen them die.
    pub(crate) async fn kill_all(&self) {
        let waits: Vec<watch::Receiver<()>> = {
            let procs = self.procs.lock().unwrap_or_else(PoisonError::into_inner);
            procs
                .running
                .values()
                .map(|p| {
                    p.kill.send_replace(true);
                    p.done.clone()
                })
                .collect()
        };
        for mut done in waits {
            // Nothing is ever sent on `done`: this returns when its sender is dropped.
            let _ = done.changed().await;
        }
    }
}

/// The owner's side of a tracked process. Dropping it unregisters the process and
/// tells waiting killers it is gone.
pub(crate) struct Registration {
    tracker: Arc<Tracker>,
    id: u64,
    kill_tx: watch::Sender<bool>,
    kill_rx: watch::Receiver<bool>,
    done_tx: watch::Sender<()>,
}

impl Registration {
    /// Resolves when someone asks for the process to be killed.
    async fn kill_requested(&mut self) {
        if self.kill_rx.wait_for(|kill| *kill).await.is_err() {
            // Unreachable while `kill_tx` lives in `self`; never resolve rather than kill.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut procs = self
            .tracker
            .procs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        procs.running.remove(&self.id);
    }
}

/// A bwrap command line: the program and its planned arguments.
pub(crate) struct Launch<'a> {
    pub(crate) bwrap: &'a Path,
    pub(crate) args: Vec<String>,
}

impl Launch<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.bwrap);
        // bwrap needs no environment of its own; the sandbox's is set by `--setenv`.
        cmd.args(&self.args).env_clear().kill_on_drop(true);
        cmd
    }

    fn spawn_error(&self, source: std::io::Error) -> SandboxError {
        SandboxError::Spawn {
            what: self.bwrap.display().to_string(),
            source,
        }
    }
}

/// Runs a one-shot command to completion, timeout or kill.
pub(crate) async fn exec(
    launch: Launch<'_>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    output_cap: usize,
    mut reg: Registration,
    sink: OutputSink<'_>,
) -> Result<ExecOutput> {
    let mut cmd = launch.command();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| launch.spawn_error(e))?;
    // `checked_add`: a caller may pass `Duration::MAX` for "no timeout".
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + FAR_FUTURE);

    // Fed from its own task so a command that writes a lot before reading cannot
    // deadlock against us. Errors (the command closed stdin early) are its business.
    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), stdin) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }

    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; READ_CHUNK];
    let mut err_buf = vec![0u8; READ_CHUNK];
    let mut capture = Capture {
        cap: output_cap,
        out: ExecOutput::default(),
    };
    let mut status: Option<ExitStatus> = None;
    let mut drain_until: Option<Instant> = None;
    let mut killed = false;

    // Until bwrap has exited and both pipes are closed: the pipes close only when
    // every process in the sandbox is gone, so returning means nothing is left running.
    while status.is_none() || stdout.is_some() || stderr.is_some() {
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf), if stdout.is_some() => match read {
                Ok(n) if n > 0 => capture.push(OutputStream::Stdout, &out_buf[..n], sink),
                _ => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf), if stderr.is_some() => match read {
                Ok(n) if n > 0 => capture.push(OutputStream::Stderr, &err_buf[..n], sink),
                _ => stderr = None,
            },
            waited = child.wait(), if status.is_none() => {
                let exited = waited.map_err(|e| SandboxError::io("waiting for bwrap", e))?;
                status = Some(exited);
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(deadline), if !killed && status.is_none() => {
                killed = true;
                capture.out.timed_out = true;
                let _ = child.start_kill();
            }
            () = reg.kill_requested(), if !killed && status.is_none() => {
                killed = true;
                let _ = child.start_kill();
            }
            () = sleep_until_opt(drain_until), if drain_until.is_some() => {
                tracing::warn!(
                    grace = ?DRAIN_GRACE,
                    "sandbox output still open after bwrap exited; leaving it"
                );
                break;
            }
        }
    }
    drop(reg);

    let mut out = capture.out;
    out.exit_code = if killed {
        None
    } else {
        status.and_then(|s| s.code())
    };
    Ok(out)
}

/// Keeps at most `cap` bytes of each stream and counts the rest.
struct Capture {
    cap: usize,
    out: ExecOutput,
}

impl Capture {
    fn push(&mut self, stream: OutputStream, chunk: &[u8], sink: OutputSink<'_>) {
        let kept = match stream {
            OutputStream::Stdout => &mut self.out.stdout,
            OutputStream::Stderr => &mut self.out.stderr,
        };
        let room = self.cap.saturating_sub(kept.len()).min(chunk.len());
        let (keep, rest) = chunk.split_at(room);
        if !keep.is_empty() {
            kept.extend_from_slice(keep);
            // The sink sees what is kept: a runaway command cannot flood the event log.
            sink(stream, keep);
        }
        self.out.dropped_bytes += rest.len() as u64;
    }
}

async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match reader {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts a long-lived process with stdin attached and stdout and stderr on one pipe.
pub(crate) fn spawn_shell(launch: Launch<'_>, reg: Registration) -> Result<ShellProcess> {
    // One OS pipe behind both streams keeps the output in the order it was written.
    let (reader, writer) =
        std::io::pipe().map_err(|e| SandboxError::io("creating the shell's output pipe", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| SandboxError::io("creating the shell's output pipe", e))?;
    let mut cmd = launch.command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2));
    let mut child = cmd.spawn().map_err(|e| launch.spawn_error(e))?;
    // The command still holds our copies of the write end; without dropping it the
    // output would never reach end-of-file.
    drop(cmd);

    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| SandboxError::io("opening the shell's stdin", missing_pipe()))?;
    let output = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| SandboxError::io("reading the shell's output", e))?;
    let control = ShellControl {
        kill: reg.kill_tx.clone(),
        done: reg.done_tx.subscribe(),
    };
    tokio::spawn(supervise(child, reg));
    Ok(ShellProcess {
        stdin: Box::new(stdin),
        output: Box::new(output),
        control: Box::new(control),
    })
}

fn missing_pipe() -> std::io::Error {
    std::io::Error::other("no pipe")
}

/// Owns a shell's bwrap process until it exits or is killed.
async fn supervise(mut child: Child, mut reg: Registration) {
    tokio::select! {
        _ = child.wait() => {}
        () = reg.kill_requested() => {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// Kills a shell. Dropping it kills the shell too.
///
/// `kill` returns once bwrap is reaped. By then the kernel has already sent SIGKILL to
/// the sandbox's pid 1 (bwrap's parent-death signal), which takes the whole namespace
/// with it; the shell's output reaches end-of-file when the last process is gone.
struct ShellControl {
    kill: watch::Sender<bool>,
    done: watch::Receiver<()>,
}

#[async_trait]
impl ProcessControl for ShellControl {
    async fn kill(&self) {
        self.kill.send_replace(true);
        let mut done = self.done.clone();
        // Returns once the supervisor has reaped bwrap (its sender is dropped).
        let _ = done.changed().await;
    }

    async fn killed_reason(&self) -> Option<String> {
        None
    }
}

impl Drop for ShellControl {
    fn drop(&mut self) {
        self.kill.send_replace(true);
    }
}
