//! The `local` backend: bubblewrap, for laptops and CI without Docker.
//!
//! Every command gets its own bwrap invocation from the same [`plan`]: the sandbox is
//! the task's workspace plus a fixed read-only view of the host's programs, so a local
//! sandbox keeps no state beyond the workspace. Processes die with the coordinator
//! (`--die-with-parent`), which is why [`SandboxProvider::attach`] simply makes a fresh
//! sandbox on the same workspace.

mod plan;
mod run;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;

pub use self::plan::ETC_ENTRIES;
pub use self::plan::HostLayout;
pub use self::plan::ROOT_DIRS;
pub use self::plan::RootEntry;
pub use self::plan::SANDBOX_PATH;
pub use self::plan::SANDBOX_UID;
pub use self::plan::plan;
use self::run::Launch;
use self::run::Tracker;
use crate::ExecOutput;
use crate::ExecRequest;
use crate::OutputSink;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxProvider;
use crate::SandboxSpec;
use crate::ShellProcess;

const BACKEND: &str = "local";

const INSTALL_FIX: &str = "apt-get install bubblewrap";

// The usual reason bwrap is installed but cannot make a sandbox.
const USERNS_FIX: &str = "allow unprivileged user namespaces (sysctl \
     kernel.unprivileged_userns_clone=1, and on Ubuntu 24.04 or later \
     kernel.apparmor_restrict_unprivileged_userns=0), or run the coordinator \
     in a container allowed to create namespaces";

/// How the local backend finds bubblewrap and where it keeps its files.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The bwrap program: a path, or a name looked up on `PATH`.
    pub bwrap: PathBuf,
    /// A directory private to the coordinator for the generated `etc/passwd` and
    /// `etc/group`. Sandboxes see these two files and nothing else of it.
    pub state_dir: PathBuf,
}

impl LocalConfig {
    /// `bwrap` from `PATH`, with state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            bwrap: PathBuf::from("bwrap"),
            state_dir: state_dir.into(),
        }
    }
}

/// Makes bubblewrap sandboxes.
pub struct LocalProvider {
    bwrap: PathBuf,
    state_dir: PathBuf,
    host: Arc<HostLayout>,
    live: Arc<Live>,
    next_generation: AtomicU64,
}

/// Sandboxes made and not destroyed: id to (generation, task id). The generation lets a
/// destroyed sandbox leave alone a newer one made for the same task.
type Live = Mutex<HashMap<String, (u64, String)>>;

/// The id of the local sandbox serving `task_id`.
pub fn sandbox_id(task_id: &str) -> String {
    format!("{BACKEND}-{task_id}")
}

impl LocalProvider {
    /// Finds bwrap, writes the generated `/etc` files and looks at the host's layout.
    /// Fails with [`SandboxError::Unavailable`] when bwrap is missing.
    pub fn new(config: LocalConfig) -> Result<LocalProvider> {
        let bwrap = find_program(&config.bwrap).ok_or_else(|| SandboxError::Unavailable {
            what: "bubblewrap".to_owned(),
            reason: if config.bwrap.components().count() > 1 {
                format!("no program at {}", config.bwrap.display())
            } else {
                format!("{} not found on PATH", config.bwrap.display())
            },
            fix: INSTALL_FIX.to_owned(),
        })?;
        let version = std::process::Command::new(&bwrap)
            .arg("--version")
            .output()
            .map_err(|e| SandboxError::Spawn {
                what: bwrap.display().to_string(),
                source: e,
            })?;
        let disable_userns = supports_disable_userns(&String::from_utf8_lossy(&version.stdout));

        let etc = config.state_dir.join("etc");
        std::fs::create_dir_all(&etc)
            .map_err(|e| SandboxError::io(format!("creating {}", etc.display()), e))?;
        // Absolute, because bwrap resolves bind sources against its own cwd.
        let state_dir = std::fs::canonicalize(&config.state_dir).map_err(|e| {
            SandboxError::io(format!("resolving {}", config.state_dir.display()), e)
        })?;
        let etc = state_dir.join("etc");
        let passwd = write_state_file(&etc.join("passwd"), &plan::passwd_contents())?;
        let group = write_state_file(&etc.join("group"), &plan::group_contents())?;

        Ok(LocalProvider {
            bwrap,
            state_dir,
            host: Arc::new(HostLayout::probe(passwd, group, disable_userns)),
            live: Arc::default(),
            next_generation: AtomicU64::new(0),
        })
    }

    /// For `dockhand doctor`: the bubblewrap version, after making a throwaway sandbox
    /// to prove this host lets bwrap create one.
    pub async fn check(&self) -> Result<String> {
        let version = tokio::process::Command::new(&self.bwrap)
            .arg("--version")
            .output()
            .await
            .map_err(|e| SandboxError::Spawn {
                what: self.bwrap.display().to_string(),
                source: e,
            })?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();

        let workspace = self.state_dir.join("check-workspace");
        std::fs::create_dir_all(&workspace)
            .map_err(|e| SandboxError::io(format!("creating {}", workspace.display()), e))?;
        let sandbox = self.make(SandboxSpec {
            task_id: "check".to_owned(),
            workspace,
            network: false,
            env: Vec::new(),
            image: None,
        })?;
        let mut req = ExecRequest::new(["true"]);
        req.timeout = Duration::from_secs(30);
        let out = sandbox.exec(req, &mut |_, _| {}).await?;
        if out.exit_code != Some(0) {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(SandboxError::Unavailable {
                what: "bubblewrap".to_owned(),
                reason: format!("{version} cannot make a sandbox here: {stderr}"),
                fix: USERNS_FIX.to_owned(),
            });
        }
        Ok(version)
    }

    /// What the plans assume about this host.
    pub fn host_layout(&self) -> &HostLayout {
        &self.host
    }

    fn make(&self, spec: SandboxSpec) -> Result<LocalSandbox> {
        validate_spec(&spec)?;
        Ok(LocalSandbox {
            id: sandbox_id(&spec.task_id),
            spec,
            bwrap: self.bwrap.clone(),
            host: Arc::clone(&self.host),
            tracker: Arc::default(),
            live: Arc::clone(&self.live),
            generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
        })
    }
}

#[async_trait]
impl SandboxProvider for LocalProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn create(&self, spec: SandboxSpec) -> Result<Arc<dyn Sandbox>> {
        let sandbox = self.make(spec)?;
        lock(&self.live).insert(
            sandbox.id.clone(),
            (sandbox.generation, sandbox.spec.task_id.clone()),
        );
        Ok(Arc::new(sandbox))
    }

    async fn attach(&self, id: &str, spec: SandboxSpec) -> Result<Option<Arc<dyn Sandbox>>> {
        // Nothing survives a coordinator but the workspace, so "the same sandbox" is a
        // fresh one on it.
        if id != sandbox_id(&spec.task_id) || !spec.workspace.is_dir() {
            return Ok(None);
        }
        self.create(spec).await.map(Some)
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        let live = lock(&self.live);
        let mut infos: Vec<SandboxInfo> = live
            .iter()
            .map(|(id, (_, task_id))| SandboxInfo {
                backend: BACKEND.to_owned(),
                id: id.clone(),
                task_id: Some(task_id.clone()),
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }
}

/// One task's bubblewrap sandbox.
///
/// `--die-with-parent` follows the *thread* that started bwrap, not the process: a
/// command started from a thread that later exits dies with it. Tokio's worker
/// threads live as long as the runtime, so call it from async code, not from inside
/// `spawn_blocking`.
struct LocalSandbox {
    id: String,
    spec: SandboxSpec,
    bwrap: PathBuf,
    host: Arc<HostLayout>,
    tracker: Arc<Tracker>,
    live: Arc<Live>,
    generation: u64,
}

impl LocalSandbox {
    fn launch(&self, argv: &[String], cwd: Option<&str>, env: &[(String, String)]) -> Launch<'_> {
        Launch {
            bwrap: &self.bwrap,
            args: plan(&self.host, &self.spec, argv, cwd, env),
        }
    }
}

#[async_trait]
impl Sandbox for LocalSandbox {
    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: BACKEND.to_owned(),
            id: self.id.clone(),
            task_id: Some(self.spec.task_id.clone()),
        }
    }

    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        validate_argv(&req.argv)?;
        validate_env(&req.env)?;
        if let Some(cwd) = &req.cwd {
            no_nul("cwd", cwd)?;
        }
        tracing::debug!(sandbox = %self.id, argv = ?req.argv, "exec");
        let launch = self.launch(&req.argv, req.cwd.as_deref(), &req.env);
        let reg = self.tracker.register();
        run::exec(launch, req.stdin, req.timeout, req.output_cap, reg, sink).await
    }

    async fn spawn_shell(&self, argv: Vec<String>) -> Result<ShellProcess> {
        validate_argv(&argv)?;
        tracing::debug!(sandbox = %self.id, ?argv, "spawn shell");
        let launch = self.launch(&argv, None, &[]);
        run::spawn_shell(launch, self.tracker.register())
    }

    async fn kill_all(&self) -> Result<()> {
        self.tracker.kill_all().await;
        Ok(())
    }

    async fn destroy(&self) -> Result<()> {
        self.tracker.kill_all().await;
        let mut live = lock(&self.live);
        if live
            .get(&self.id)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            live.remove(&self.id);
        }
        Ok(())
    }
}

fn lock(live: &Live) -> std::sync::MutexGuard<'_, HashMap<String, (u64, String)>> {
    live.lock().unwrap_or_else(PoisonError::into_inner)
}

fn validate_spec(spec: &SandboxSpec) -> Result<()> {
    let ws = &spec.workspace;
    if !ws.is_absolute() || ws.to_str().is_none() {
        return Err(SandboxError::Invalid(format!(
            "workspace {} must be an absolute UTF-8 path",
            ws.display()
        )));
    }
    if !ws.is_dir() {
        return Err(SandboxError::Invalid(format!(
            "workspace {} is not a directory",
            ws.display()
        )));
    }
    no_nul("workspace", &ws.to_string_lossy())?;
    validate_env(&spec.env)
}

fn validate_argv(argv: &[String]) -> Result<()> {
    if argv.is_empty() {
        return Err(SandboxError::Invalid("empty argv".to_owned()));
    }
    argv.iter().try_for_each(|arg| no_nul("argument", arg))
}

fn validate_env(env: &[(String, String)]) -> Result<()> {
    for (key, value) in env {
        if key.is_empty() || key.contains('=') {
            return Err(SandboxError::Invalid(format!(
                "environment variable name {key:?}"
            )));
        }
        no_nul("environment variable", key)?;
        no_nul("environment variable", value)?;
    }
    Ok(())
}

fn no_nul(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(SandboxError::Invalid(format!(
            "{what} {value:?} contains a NUL byte"
        )));
    }
    Ok(())
}

/// `program` itself when it is a path, otherwise the first match on `PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// Whether `bwrap --version` output ("bubblewrap 0.8.0") names 0.8 or later.
fn supports_disable_userns(version: &str) -> bool {
    let Some(number) = version.split_whitespace().last() else {
        return false;
    };
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (0, 8),
        _ => false,
    }
}

/// Writes a generated file by rename, so a sandbox starting meanwhile never sees half
/// of it, and returns its path as a string for the plan.
fn write_state_file(path: &Path, contents: &str) -> Result<String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| SandboxError::Invalid(format!("state dir {} is not UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use super::supports_disable_userns;

    #[test]
    fn reads_bwrap_versions() {
        assert!(supports_disable_userns("bubblewrap 0.8.0\n"));
        assert!(supports_disable_userns("bubblewrap 0.11.0"));
        assert!(supports_disable_userns("bubblewrap 1.0"));
        assert!(!supports_disable_userns("bubblewrap 0.6.1"));
        assert!(!supports_disable_userns("garbage"));
        assert!(!supports_disable_userns(""));
    }
}
