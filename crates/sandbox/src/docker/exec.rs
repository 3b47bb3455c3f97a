//! Execs: starting a process in a container and waiting for its exit code.
//!
//! Every process runs under [`WRAPPER`](super::scripts::WRAPPER) (or the shell's), which
//! first prints its pid: Docker reports only the host's pid, useless inside the
//! container, and a timeout needs the pid to kill the command's whole process tree with
//! [`KILL_SCRIPT`](super::scripts::KILL_SCRIPT). The line also proves the process
//! started: when runc cannot start it, Docker says so on the output stream and exits
//! 126, which [`open`] turns into an error (or a retry, when the PID limit was full).

use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::CreateExecOptions;
use bollard::exec::StartExecOptions;
use bollard::exec::StartExecResults;
use futures_util::Stream;
use futures_util::StreamExt;
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use super::api::api_error;
use super::api::message;
use super::api::short;
use super::plan::SANDBOX_USER;
use super::scripts::PidLine;
use crate::Result;
use crate::SandboxError;

/// How long an exec may report `Running` after its streams have closed.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// How long the wrapper may take to report its pid once the exec has started.
const PID_WAIT: Duration = Duration::from_secs(30);

/// Attempts to start a process while the container's PID limit is full (runc must fork
/// inside the container; a fork bomb leaves a free slot now and then).
const START_ATTEMPTS: u32 = 12;

/// Docker's multiplexed output of one exec.
pub(crate) type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// What an exec is asked to run.
pub(crate) struct Setup<'a> {
    pub(crate) argv: Vec<String>,
    pub(crate) cwd: &'a str,
    pub(crate) env: &'a [(String, String)],
    pub(crate) stdin: bool,
}

/// A started exec.
pub(crate) struct Started {
    pub(crate) exec_id: String,
    pub(crate) output: Output,
    pub(crate) input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// A process that has started: its wrapper has reported `pid`.
pub(crate) struct Opened {
    pub(crate) exec_id: String,
    pub(crate) output: Output,
    pub(crate) input: Pin<Box<dyn AsyncWrite + Send>>,
    pub(crate) pid: u32,
    /// The command's stdout that Docker delivered before the pid line. (Docker copies
    /// the two pipes independently, so their frames are not in the order written.)
    pub(crate) stdout: Vec<u8>,
    /// What came on stderr after the pid line in the same frame.
    pub(crate) stderr: Vec<u8>,
}

/// Starts a wrapped process and waits for its pid line. A start that failed because the
/// PID limit was full is retried a few times and then reported as
/// [`SandboxError::Broken`]; any other failure to start (a missing working directory or
/// program) as [`SandboxError::Failed`]. Retrying is safe: nothing of the command ran.
pub(crate) async fn open(docker: &Docker, container: &str, setup: Setup<'_>) -> Result<Opened> {
    let mut pause = Duration::from_millis(20);
    let mut attempt = 1;
    loop {
        let setup = Setup {
            argv: setup.argv.clone(),
            ..setup
        };
        let started = start(docker, container, setup).await?;
        let failure = match await_pid(docker, started).await? {
            Ok(opened) => return Ok(opened),
            Err(failure) => failure,
        };
        let id = short(container);
        if !is_resource_failure(&failure) {
            return Err(SandboxError::Failed {
                what: format!("starting a command in container {id}"),
                message: failure,
            });
        }
        if attempt >= START_ATTEMPTS {
            return Err(SandboxError::Broken {
                reason: format!("container {id} cannot start processes ({failure})"),
            });
        }
        tracing::debug!(container = id, attempt, failure, "start failed; retrying");
        attempt += 1;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Reads a started exec up to its wrapper's pid line. `Ok(Err(message))` when the
/// stream ended first: Docker's explanation of why the process never started.
async fn await_pid(docker: &Docker, started: Started) -> Result<Result<Opened, String>> {
    let Started {
        exec_id,
        mut output,
        input,
    } = started;
    let mut pid_line = PidLine::default();
    // Docker's own message when the process never started, or else the command's
    // first output, which overtook the pid line.
    let mut early_stdout = Vec::new();
    let read = tokio::time::timeout(PID_WAIT, async {
        while let Some(item) = output.next().await {
            match item.map_err(|e| api_error("reading a command's output", e))? {
                LogOutput::StdErr { message } => {
                    let rest = pid_line.feed(&message);
                    if let Some(pid) = pid_line.pid {
                        return Ok(Some((pid, rest)));
                    }
                    early_stdout.extend_from_slice(&rest);
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    early_stdout.extend_from_slice(&message);
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok::<_, SandboxError>(None)
    })
    .await;
    let found = match read {
        Ok(found) => found?,
        Err(_) => {
            return Err(SandboxError::Failed {
                what: "starting a command".to_owned(),
                message: format!("it did not report its pid within {PID_WAIT:?}"),
            });
        }
    };
    if let Some((pid, stderr)) = found {
        return Ok(Ok(Opened {
            exec_id,
            output,
            input,
            pid,
            stdout: early_stdout,
            stderr,
        }));
    }
    early_stdout.extend_from_slice(&pid_line.finish());
    let code = exit_code(docker, &exec_id).await?;
    let text = String::from_utf8_lossy(&early_stdout);
    Ok(Err(match runc_reason(&text) {
        "" => format!("it ended before starting (exit code {code:?})"),
        reason => reason.to_owned(),
    }))
}

/// The gist of runc's "OCI runtime exec failed: exec failed: unable to start container
/// process: <reason>: unknown".
fn runc_reason(text: &str) -> &str {
    let text = text.trim();
    let text = text
        .rsplit_once("unable to start container process: ")
        .map_or(text, |(_, reason)| reason);
    text.strip_suffix(": unknown").unwrap_or(text)
}

/// Whether a start failed for want of a free process slot. runc forks inside the
/// container while starting a process; at the PID limit that fork fails and runc
/// reports its half-started child's pipe being reset.
fn is_resource_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "init-p",
        "resource temporarily unavailable",
        "fork",
        "cannot allocate memory",
    ]
    .iter()
    .any(|hint| lower.contains(hint))
}

/// Creates and starts an exec as the sandbox user, attached.
async fn start(docker: &Docker, container: &str, setup: Setup<'_>) -> Result<Started> {
    let options = CreateExecOptions {
        attach_stdin: Some(setup.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        env: Some(
            setup
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect(),
        ),
        cmd: Some(setup.argv),
        user: Some(SANDBOX_USER.to_owned()),
        working_dir: Some(setup.cwd.to_owned()),
        ..Default::default()
    };
    let created = docker
        .create_exec(container, options)
        .await
        .map_err(|e| exec_error(container, e))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| exec_error(container, e))?;
    match started {
        StartExecResults::Attached { output, input } => Ok(Started {
            exec_id: created.id,
            output,
            input,
        }),
        StartExecResults::Detached => Err(SandboxError::Failed {
            what: format!("starting a command in container {}", short(container)),
            message: "Docker started it detached".to_owned(),
        }),
    }
}

/// Waits until Docker says the exec has ended and returns its exit code.
pub(crate) async fn exit_code(docker: &Docker, exec_id: &str) -> Result<Option<i32>> {
    let give_up = Instant::now() + EXIT_WAIT;
    let mut pause = Duration::from_millis(2);
    loop {
        let inspect = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| api_error("inspecting a finished command", e))?;
        if inspect.running != Some(true) {
            return Ok(inspect.exit_code.and_then(|c| i32::try_from(c).ok()));
        }
        if Instant::now() >= give_up {
            return Err(SandboxError::Failed {
                what: "waiting for a command's exit code".to_owned(),
                message: format!("Docker still reports it running after {EXIT_WAIT:?}"),
            });
        }
        // The streams close just before Docker records the exit; this rarely loops.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Maps a failure to start an exec: a container that is gone, stopped or out of
/// resources can no longer start processes ([`SandboxError::Broken`]).
pub(crate) fn exec_error(container: &str, err: DockerError) -> SandboxError {
    let id = short(container);
    let text = message(&err);
    let lower = text.to_ascii_lowercase();
    match &err {
        DockerError::DockerResponseServerError {
            status_code: 404, ..
        } => SandboxError::Broken {
            reason: format!("container {id} no longer exists ({text})"),
        },
        DockerError::DockerResponseServerError {
            status_code: 409, ..
        } => SandboxError::Broken {
            reason: format!("container {id} is not running ({text})"),
        },
        // The engine's word while a container is being stopped or removed.
        _ if lower.contains("cannot exec in a stopped state") => SandboxError::Broken {
            reason: format!("container {id} has stopped ({text})"),
        },
        _ if lower.contains("resource temporarily unavailable")
            || lower.contains("cannot allocate memory")
            || lower.contains("pids") =>
        {
            SandboxError::Broken {
                reason: format!("container {id} is out of resources ({text})"),
            }
        }
        _ => SandboxError::Failed {
            what: format!("starting a command in container {id}"),
            message: text,
        },
    }
}

/// Runs `argv` as root in `container` to its end, for the coordinator's own
/// small steps (not the agent's); fails unless it exits 0.
pub(crate) async fn run_as_root(docker: &Docker, container: &str, argv: &[&str]) -> Result<()> {
    let options = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv.iter().map(|a| (*a).to_owned()).collect()),
        user: Some("0".to_owned()),
        ..Default::default()
    };
    let created = docker
        .create_exec(container, options)
        .await
        .map_err(|e| exec_error(container, e))?;
    let started = docker
        .start_exec(&created.id, None::<StartExecOptions>)
        .await
        .map_err(|e| exec_error(container, e))?;
    let mut said = Vec::new();
    if let StartExecResults::Attached { mut output, .. } = started {
        while let Some(Ok(chunk)) = output.next().await {
            if said.len() < 4096 {
                said.extend_from_slice(&chunk.into_bytes());
            }
        }
    }
    match exit_code(docker, &created.id).await? {
        Some(0) => Ok(()),
        code => Err(SandboxError::Failed {
            what: format!("running {argv:?} in container {}", short(container)),
            message: format!("exit {code:?}: {}", String::from_utf8_lossy(&said).trim()),
        }),
    }
}
