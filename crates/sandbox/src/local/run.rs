//! The I/O half of the local backend: starts bwrap with a planned argv, streams its
//! output, enforces timeouts and kills.
//!
//! Every plan unshares the pid namespace and sets `--die-with-parent`, so killing the
//! bwrap process we started makes the kernel kill the sandbox's pid 1 and with it every
//! process in the namespace, however deep or detached.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
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

use super::net;
use super::runtime::RuntimeDir;
use crate::ExecOutput;
use crate::OutputSink;
use crate::OutputStream;
use crate::ProcessControl;
use crate::Result;
use crate::SandboxError;
use crate::ShellProcess;
use crate::exec::Capture;

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

/// Runs on the host before bubblewrap: joins the sandbox's cgroups (each file
/// before `--`), then opens the seccomp programs (and, at `open`, the slirp
/// pipes) on the descriptors the plan names and execs the rest of the line:
/// `setpriv` dropping root when the coordinator is root, then bwrap.
const LAUNCH: &str = r#"
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
eperm=$1 enosys=$2 info=$3 block=$4; shift 5
if [ -n "$info" ]; then exec "$@" 3<"$eperm" 4<"$enosys" 5>"$info" 6<"$block"; fi
exec "$@" 3<"$eperm" 4<"$enosys"
"#;

/// What every command of one provider shares on the host side.
#[derive(Clone, Debug)]
pub(crate) struct HostSide {
    pub(crate) bwrap: PathBuf,
    /// `setpriv` and the uid to become, when the coordinator is root.
    pub(crate) drop_to: Option<(PathBuf, u32)>,
    /// The `EPERM` and `ENOSYS` seccomp programs.
    pub(crate) seccomp: [PathBuf; 2],
    /// slirp4netns, for `open`.
    pub(crate) slirp4netns: Option<PathBuf>,
    /// Where per-command pipes are made.
    pub(crate) run_dir: PathBuf,
    /// Where egress sockets are made.
    pub(crate) egress_dir: PathBuf,
    /// As root: the runtime directory, kept while any sandbox lives.
    pub(crate) runtime: Option<Arc<RuntimeDir>>,
}

/// A bwrap command line: the planned arguments, and how to start them.
pub(crate) struct Launch<'a> {
    pub(crate) host: &'a HostSide,
    pub(crate) args: Vec<String>,
    /// `cgroup.procs` files the command joins first.
    pub(crate) cgroup_procs: &'a [String],
    /// The sandbox is at `open`: slirp4netns joins it before it runs.
    pub(crate) open: bool,
}

/// A started command: bwrap, and for `open` the slirp4netns serving it.
struct Started {
    child: Child,
    slirp: Option<net::Slirp>,
}

impl Launch<'_> {
    async fn start(&self, configure: impl FnOnce(&mut Command)) -> Result<Started> {
        let pipes = if self.open {
            Some(net::Pipes::make(&self.host.run_dir)?)
        } else {
            None
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(LAUNCH).arg("dockhand-launch");
        cmd.args(self.cgroup_procs).arg("--");
        cmd.args(&self.host.seccomp);
        match &pipes {
            Some(p) => cmd.arg(&p.info).arg(&p.block),
            None => cmd.args(["", ""]),
        };
        cmd.arg("--");
        if let Some((setpriv, uid)) = &self.host.drop_to {
            let id = uid.to_string();
            cmd.arg(setpriv)
                .args(["--reuid", &id, "--regid", &id])
                .args([
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--no-new-privs",
                    "--",
                ]);
        }
        cmd.arg(&self.host.bwrap).args(&self.args);
        // bwrap needs no environment of its own; the sandbox's is set by `--setenv`.
        cmd.env_clear().kill_on_drop(true);
        configure(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        let slirp = match pipes {
            None => None,
            Some(pipes) => {
                let slirp =
                    self.host
                        .slirp4netns
                        .as_deref()
                        .ok_or_else(|| SandboxError::Unavailable {
                            what: "open networking".into(),
                            reason: "slirp4netns is not installed".into(),
                            fix: "apt-get install slirp4netns".into(),
                        });
                match slirp {
                    Ok(program) => match net::Slirp::attach(program, pipes).await {
                        Ok(s) => Some(s),
                        Err(e) => {
                            let _ = child.start_kill();
                            return Err(e);
                        }
                    },
                    Err(e) => {
                        let _ = child.start_kill();
                        return Err(e);
                    }
                }
            }
        };
        Ok(Started { child, slirp })
    }

    fn spawn_error(&self, source: std::io::Error) -> SandboxError {
        SandboxError::Spawn {
            what: self.host.bwrap.display().to_string(),
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
    let has_stdin = stdin.is_some();
    let started = launch
        .start(|cmd| {
            cmd.stdin(if has_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        })
        .await?;
    let mut child = started.child;
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
    let mut capture = Capture::new(output_cap);
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
    drop(started.slirp);

    let mut out = capture.out;
    out.exit_code = if killed {
        None
    } else {
        status.and_then(|s| s.code())
    };
    Ok(out)
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
pub(crate) async fn spawn_shell(launch: Launch<'_>, reg: Registration) -> Result<ShellProcess> {
    // One OS pipe behind both streams keeps the output in the order it was written.
    let (reader, writer) =
        std::io::pipe().map_err(|e| SandboxError::io("creating the shell's output pipe", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| SandboxError::io("creating the shell's output pipe", e))?;
    // The command holds our copies of the write end until `start` returns and drops
    // it; without that the output would never reach end-of-file.
    let started = launch
        .start(move |cmd| {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::from(writer))
                .stderr(Stdio::from(writer2));
        })
        .await?;
    let mut child = started.child;

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
    tokio::spawn(supervise(child, reg, started.slirp));
    Ok(ShellProcess {
        stdin: Box::new(stdin),
        output: Box::new(output),
        control: Box::new(control),
    })
}

fn missing_pipe() -> std::io::Error {
    std::io::Error::other("no pipe")
}

/// Owns a shell's bwrap process (and its slirp4netns) until it exits or is killed.
async fn supervise(mut child: Child, mut reg: Registration, _slirp: Option<net::Slirp>) {
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
