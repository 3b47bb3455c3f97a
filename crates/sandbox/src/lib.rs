//! Sandboxes: where a task's commands run.
//!
//! A [`SandboxProvider`] makes one [`Sandbox`] per task, with the task's workspace
//! at `/workspace`. Everything the agent does to files and processes goes through
//! [`Sandbox::exec`] or a [`ShellProcess`]: the coordinator never opens workspace
//! paths itself (DESIGN.md, "Workspaces and the trust boundary").

pub mod docker;
pub mod egress;
mod error;
mod exec;
mod files;
pub mod helper;
mod images;
pub mod local;
pub(crate) mod mux;
pub(crate) mod mux_wire;
mod provider;
mod warm;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;

pub use egress::NetworkLevel;
pub use error::Result;
pub use error::SandboxError;
pub use exec::ExecOutput;
pub use exec::ExecRequest;
pub use exec::OutputSink;
pub use exec::OutputStream;
pub use files::FileKind;
pub use images::BuiltImage;
pub use images::ENVIRONMENT_IMAGE_REPO;
pub use images::EnvironmentBuild;
pub use images::ImageInfo;
pub use images::ImageOwner;
pub use images::Images;
pub use provider::SandboxProvider;
pub use warm::WarmPool;
pub use warm::WarmSandbox;

/// The path where the workspace appears inside every sandbox.
pub const WORKSPACE: &str = "/workspace";

/// What a task's sandbox is made from.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// The task the sandbox serves.
    pub task_id: String,
    /// Host directory mounted read-write at `/workspace`.
    pub workspace: PathBuf,
    /// How much of the network commands reach.
    pub network: NetworkLevel,
    /// Memory, CPU and process limits.
    pub limits: Limits,
    /// Extra non-secret environment variables for every command.
    pub env: Vec<(String, String)>,
    /// The image to run, for backends that use one; the configured default when `None`.
    pub image: Option<String>,
}

/// A sandbox's resource limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Memory, with no swap beyond it, in bytes.
    pub memory_bytes: i64,
    /// CPU time, in billionths of a CPU.
    pub nano_cpus: i64,
    /// Processes (and threads) alive at once.
    pub pids: i64,
}

impl Default for Limits {
    /// 2 GiB, 2 CPUs, 512 processes.
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 30,
            nano_cpus: 2_000_000_000,
            pids: 512,
        }
    }
}

/// Identifies a sandbox to operators: `{backend, id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    /// `local` or `docker`.
    pub backend: String,
    /// The backend's own id.
    pub id: String,
    /// The task it serves, when known.
    pub task_id: Option<String>,
}

/// Counters of resource-limit hits in a sandbox. Compared before and after a
/// command, they tell whether the command ran into a limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitMarks {
    /// Processes killed by the out-of-memory killer.
    pub oom_kills: u64,
    /// Times a fork failed at the process limit.
    pub pid_limit_hits: u64,
    /// Connections the egress proxy refused.
    pub egress_refused: u64,
}

/// A long-lived process with stdin attached, such as the persistent bash session.
/// Its stderr is merged into `output` in the order the process wrote it.
pub struct ShellProcess {
    /// The process's stdin.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// Its stdout and stderr, merged.
    pub output: Box<dyn AsyncRead + Send + Unpin>,
    /// Kills it.
    pub control: Box<dyn ProcessControl>,
}

/// Control over a running [`ShellProcess`].
#[async_trait]
pub trait ProcessControl: Send + Sync {
    /// Kills the process and everything it started. Idempotent.
    async fn kill(&self);
    /// If the sandbox killed the process itself, why (for example out of memory).
    async fn killed_reason(&self) -> Option<String>;
}

/// A task's sandbox.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// Backend and id.
    fn info(&self) -> SandboxInfo;

    /// Runs a one-shot command, streaming its output to `sink` as it comes.
    /// A timeout kills the command's whole process tree.
    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput>;

    /// Starts a long-lived process (`argv`, in `/workspace`) with stdin attached.
    async fn spawn_shell(&self, argv: Vec<String>) -> Result<ShellProcess>;

    /// Kills every process running in the sandbox (cancel). The sandbox stays usable.
    async fn kill_all(&self) -> Result<()>;

    /// Releases the sandbox. The workspace on the host is kept.
    async fn destroy(&self) -> Result<()>;

    /// Current limit-hit counters; zeros when the backend has no limits to report.
    async fn limit_marks(&self) -> LimitMarks {
        LimitMarks::default()
    }

    /// Words for the model about limits hit between `before` and `after`, one
    /// line each, e.g. "command killed: out of memory (limit 2 GiB)" or "egress
    /// refused: evil.example:443 (not on the allowlist)"; `None` when none were hit.
    fn explain_limits(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        let _ = (before, after);
        None
    }

    /// What the model should be told about the sandbox since it last asked, for
    /// example that a lost container was replaced; `None` when nothing happened.
    fn take_notice(&self) -> Option<String> {
        None
    }

    /// Tidies up after each agent command: clears setuid and setgid bits the
    /// command set in the workspace, where the backend needs it.
    async fn after_command(&self) -> Result<()> {
        Ok(())
    }

    /// Replaces a [`SandboxError::Broken`] sandbox with a fresh one on the same
    /// workspace (processes and everything outside `/workspace` are lost). Afterwards
    /// [`info`](Sandbox::info) names the new one.
    async fn replace(&self) -> Result<()> {
        Err(SandboxError::Unsupported("replacing a sandbox".into()))
    }

    /// Reads a regular file inside the sandbox, refusing more than `max` bytes.
    async fn read_file(&self, path: &str, max: usize) -> Result<Vec<u8>> {
        let out = self
            .exec(files::read_request(path, max), &mut |_, _| {})
            .await?;
        files::read_answer(path, max, out)
    }

    /// Creates or replaces a file inside the sandbox, as the sandbox user.
    async fn write_file(&self, path: &str, data: &[u8]) -> Result<()> {
        let out = self
            .exec(files::write_request(path, data), &mut |_, _| {})
            .await?;
        files::write_answer(path, out)
    }

    /// Copies the regular file at `path` out of the sandbox, refusing a symlink
    /// (never followed), a directory or more than `max` bytes: how the coordinator
    /// takes bundles back, through an exec's stdout.
    async fn download(&self, path: &str, max: usize) -> Result<Vec<u8>> {
        let out = self
            .exec(files::download_request(path, max), &mut |_, _| {})
            .await?;
        files::read_answer(path, max, out)
    }

    /// What is at `path` inside the sandbox.
    async fn file_kind(&self, path: &str) -> Result<FileKind> {
        let out = self.exec(files::kind_request(path), &mut |_, _| {}).await?;
        files::kind_answer(path, out)
    }
}

/// Makes a workspace directory, private to its owner: `owner` (the sandbox user's
/// host uid) when the backend needs one, else the coordinator.
pub fn make_workspace(dir: &Path, owner: Option<u32>) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    }
    Ok(())
}
