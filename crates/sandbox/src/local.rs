//! The `local` backend: bubblewrap, for laptops and CI without Docker.
//!
//! Every command gets its own bwrap invocation from the same [`plan`]: the sandbox is
//! the task's workspace plus a fixed read-only view of the host's programs, so a local
//! sandbox keeps no state beyond the workspace. Processes die with the coordinator
//! (`--die-with-parent`), which is why [`SandboxProvider::attach`] simply makes a fresh
//! sandbox on the same workspace.
//!
//! When the coordinator runs as root, commands never do: the launch joins the
//! sandbox's cgroups, then drops to an unprivileged host uid (`setpriv`) before
//! bubblewrap starts, so the sandbox user maps to that uid, never to root. What
//! bwrap binds is then reached through a runtime directory under `/run` (the
//! workspace by a `nosuid,nodev` bind), so the data directory can stay 0700.
//!
//! This file holds the provider. Below it, each file imports only those further down:
//! `sandbox` (the [`Sandbox`] implementation and the registry of live sandboxes) runs
//! each command's `plan` through `run`, in a `cgroup`, with `mount`'s workspace bind and
//! `net`'s egress socket; `run` uses `net` and `runtime`; `fs`, `seccomp` and `plan`
//! sit at the bottom.

mod cgroup;
mod fs;
mod mount;
mod net;
mod plan;
mod run;
mod runtime;
mod sandbox;
mod seccomp;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;

use self::cgroup::Hierarchy;
use self::fs::make_dir;
use self::fs::write_state_file;
pub use self::mount::NosuidMount;
use self::mount::WorkspaceBind;
pub use self::mount::nosuid_mount;
use self::net::EgressSocket;
pub use self::plan::ETC_ENTRIES;
pub use self::plan::HostLayout;
pub use self::plan::ROOT_DIRS;
pub use self::plan::Request;
pub use self::plan::RootEntry;
pub use self::plan::SANDBOX_PATH;
pub use self::plan::SANDBOX_UID;
pub use self::plan::plan;
use self::run::HostSide;
use self::runtime::RuntimeDir;
use self::sandbox::BACKEND;
use self::sandbox::Live;
use self::sandbox::LocalSandbox;
use crate::ExecRequest;
use crate::NetworkLevel;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxProvider;
use crate::SandboxSpec;
use crate::egress::Egress;
use crate::egress::RefusalLog;

const INSTALL_FIX: &str = "apt-get install bubblewrap";

// The usual reason bwrap is installed but cannot make a sandbox.
const USERNS_FIX: &str = "allow unprivileged user namespaces (sysctl \
     kernel.unprivileged_userns_clone=1, and on Ubuntu 24.04 or later \
     kernel.apparmor_restrict_unprivileged_userns=0), or run the coordinator \
     in a container allowed to create namespaces";

/// How the local backend finds bubblewrap and where it keeps its files.
#[derive(Clone)]
pub struct LocalConfig {
    /// The bwrap program: a path, or a name looked up on `PATH`.
    pub bwrap: PathBuf,
    /// A directory of the coordinator's for seccomp programs and pipes, and, unless
    /// the coordinator is root (then they are under `/run/dockhand`), the generated
    /// `etc/passwd` and `etc/group`, the helper and egress sockets. Sandboxes see
    /// the generated files, the helper and their own socket, nothing else of it.
    pub state_dir: PathBuf,
    /// When the coordinator runs as root: the unprivileged host uid (and gid)
    /// commands run as, and the sandbox user maps to. Never 0.
    pub host_uid: u32,
    /// Limit memory, processes and CPU per sandbox with cgroups; without them a
    /// sandbox is unbounded.
    pub cgroups: bool,
    /// The coordinator's egress proxy, for `allowlist` sandboxes; without it they
    /// reach nothing, as at `none`.
    pub egress: Option<Arc<dyn Egress>>,
}

impl std::fmt::Debug for LocalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConfig")
            .field("bwrap", &self.bwrap)
            .field("state_dir", &self.state_dir)
            .field("host_uid", &self.host_uid)
            .field("cgroups", &self.cgroups)
            .field("egress", &self.egress.is_some())
            .finish()
    }
}

/// The host uid commands run as when the coordinator is root, unless configured.
pub const DEFAULT_HOST_UID: u32 = 100_000;

impl LocalConfig {
    /// `bwrap` from `PATH`, with state in `state_dir`, cgroup limits, commands as
    /// [`DEFAULT_HOST_UID`] when root, and no egress proxy.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            bwrap: PathBuf::from("bwrap"),
            state_dir: state_dir.into(),
            host_uid: DEFAULT_HOST_UID,
            cgroups: true,
            egress: None,
        }
    }
}

/// Makes bubblewrap sandboxes.
pub struct LocalProvider {
    state_dir: PathBuf,
    host: Arc<HostLayout>,
    side: Arc<HostSide>,
    cgroups: Option<Hierarchy>,
    egress: Option<Arc<dyn Egress>>,
    live: Arc<Live>,
    next_generation: AtomicU64,
}

/// The id of the local sandbox serving `task_id`.
pub fn sandbox_id(task_id: &str) -> String {
    format!("{BACKEND}-{task_id}")
}

impl LocalProvider {
    /// Finds bwrap (and, as root, setpriv), writes the generated `/etc` files, the
    /// helper and the seccomp programs, sets up cgroups and looks at the host's
    /// layout. Fails with [`SandboxError::Unavailable`] when something it needs is
    /// missing, naming the fix.
    pub fn new(config: LocalConfig) -> Result<LocalProvider> {
        let bwrap = require_program(&config.bwrap, "bubblewrap", INSTALL_FIX)?;
        let version = std::process::Command::new(&bwrap)
            .arg("--version")
            .output()
            .map_err(|e| SandboxError::Spawn {
                what: bwrap.display().to_string(),
                source: e,
            })?;
        let disable_userns = supports_disable_userns(&String::from_utf8_lossy(&version.stdout));
        let root = rustix::process::geteuid().is_root();
        let drop_to = if root {
            if config.host_uid == 0 {
                return Err(SandboxError::Invalid(
                    "the local sandbox's host uid must not be 0 (sandbox.local_uid)".into(),
                ));
            }
            let setpriv = require_program(
                Path::new("setpriv"),
                "setpriv",
                "apt-get install util-linux",
            )?;
            Some((setpriv, config.host_uid))
        } else {
            None
        };
        let cgroups = if config.cgroups {
            let hierarchy =
                Hierarchy::probe(&cgroup_scope(&config.state_dir)).map_err(|reason| {
                    SandboxError::Unavailable {
                        what: "limits for local sandboxes (cgroups)".to_owned(),
                        reason,
                        fix: "run the coordinator as root on a host with cgroups, or set \
                      sandbox.local_limits = \"none\" (DOCKHAND_LOCAL_LIMITS=none) to run \
                      local sandboxes without memory, process and CPU limits"
                            .to_owned(),
                    }
                })?;
            hierarchy.remove_stale();
            Some(hierarchy)
        } else {
            None
        };

        let state_dir = &config.state_dir;
        make_dir(state_dir, 0o700)?;
        make_dir(&state_dir.join("run"), 0o700)?;
        // Absolute, because bwrap resolves bind sources against its own cwd.
        let state_dir = std::fs::canonicalize(state_dir)
            .map_err(|e| SandboxError::io(format!("resolving {}", state_dir.display()), e))?;
        // What bwrap binds by path: under /run when it runs as the sandbox uid.
        let runtime = match drop_to {
            Some(_) => Some(Arc::new(RuntimeDir::create()?)),
            None => {
                for sub in ["etc", "egress"] {
                    make_dir(&state_dir.join(sub), 0o700)?;
                }
                None
            }
        };
        let shared = runtime.as_ref().map_or(state_dir.as_path(), |r| r.path());
        let etc = shared.join("etc");
        let passwd = write_state_file(
            &etc.join("passwd"),
            plan::passwd_contents().as_bytes(),
            0o644,
        )?;
        let group = write_state_file(&etc.join("group"), plan::group_contents().as_bytes(), 0o644)?;
        let resolv = write_state_file(
            &etc.join("resolv-slirp.conf"),
            b"nameserver 10.0.2.3\n",
            0o644,
        )?;
        let helper = write_state_file(&etc.join("helper"), crate::helper::HELPER, 0o755)?;
        let [eperm, enosys] = seccomp::programs()?;
        let eperm = write_state_file(&state_dir.join("seccomp-eperm.bpf"), &eperm, 0o600)?;
        let enosys = write_state_file(&state_dir.join("seccomp-enosys.bpf"), &enosys, 0o600)?;
        let side = HostSide {
            bwrap,
            drop_to,
            seccomp: [PathBuf::from(eperm), PathBuf::from(enosys)],
            slirp4netns: find_program(Path::new("slirp4netns")),
            run_dir: state_dir.join("run"),
            egress_dir: shared.join("egress"),
            runtime,
        };
        Ok(LocalProvider {
            host: Arc::new(HostLayout::probe(
                passwd,
                group,
                disable_userns,
                helper,
                resolv,
            )),
            state_dir,
            side: Arc::new(side),
            cgroups,
            egress: config.egress,
            live: Arc::default(),
            next_generation: AtomicU64::new(0),
        })
    }

    /// For `dockhand doctor`: the bubblewrap version, after making a throwaway sandbox
    /// to prove this host lets bwrap create one.
    pub async fn check(&self) -> Result<String> {
        let version = tokio::process::Command::new(&self.side.bwrap)
            .arg("--version")
            .output()
            .await
            .map_err(|e| SandboxError::Spawn {
                what: self.side.bwrap.display().to_string(),
                source: e,
            })?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();

        let workspace = self.state_dir.join("check-workspace");
        make_dir(&workspace, 0o700)?;
        if let Some(uid) = self.workspace_owner() {
            std::os::unix::fs::chown(&workspace, Some(uid), Some(uid))
                .map_err(|e| SandboxError::io(format!("chown {}", workspace.display()), e))?;
        }
        let sandbox = self.make(SandboxSpec {
            task_id: "check".to_owned(),
            workspace,
            network: NetworkLevel::None,
            limits: crate::Limits::default(),
            env: Vec::new(),
            image: None,
        })?;
        let mut req = ExecRequest::new(["true"]);
        req.timeout = Duration::from_secs(30);
        let out = sandbox.exec(req, &mut |_, _| {}).await;
        let _ = sandbox.destroy().await;
        let out = out?;
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

    /// How sandboxes are limited (`cgroup v1`, `cgroup v2`); `None` without limits.
    pub fn limits_kind(&self) -> Option<&'static str> {
        self.cgroups.as_ref().map(Hierarchy::kind)
    }

    fn make(&self, spec: SandboxSpec) -> Result<LocalSandbox> {
        sandbox::validate_spec(&spec)?;
        let id = sandbox_id(&spec.task_id);
        let group = match &self.cgroups {
            Some(h) => Some(h.create(&id, &spec.limits)?),
            None => None,
        };
        let refusals = RefusalLog::default();
        let egress = match (spec.network, &self.egress) {
            (NetworkLevel::Allowlist, Some(egress)) => {
                let path = self.side.egress_dir.join(format!("{id}.sock"));
                let owner = self.side.drop_to.as_ref().map(|(_, uid)| *uid);
                let socket = EgressSocket::bind(
                    path,
                    owner,
                    egress.clone(),
                    spec.task_id.clone(),
                    refusals.clone(),
                )?;
                Some(socket)
            }
            _ => None,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let bind = match &self.side.runtime {
            Some(runtime) => Some(WorkspaceBind::new(
                &spec.workspace,
                runtime.path().join("ws").join(generation.to_string()),
            )?),
            None => None,
        };
        Ok(LocalSandbox {
            id,
            spec,
            bind,
            host: Arc::clone(&self.host),
            side: Arc::clone(&self.side),
            group,
            egress,
            refusals,
            tracker: Arc::default(),
            live: Arc::clone(&self.live),
            generation,
        })
    }
}

impl Drop for LocalProvider {
    fn drop(&mut self) {
        if let Some(h) = &self.cgroups {
            h.remove_scope();
        }
    }
}

#[async_trait]
impl SandboxProvider for LocalProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn workspace_owner(&self) -> Option<u32> {
        self.side.drop_to.as_ref().map(|(_, uid)| *uid)
    }

    async fn create(&self, spec: SandboxSpec) -> Result<Arc<dyn Sandbox>> {
        let sandbox = self.make(spec)?;
        self.live
            .insert(&sandbox.id, sandbox.generation, &sandbox.spec.task_id);
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
        Ok(self.live.infos())
    }
}

/// A name for this coordinator's cgroups: a hash of where its state lives.
fn cgroup_scope(state_dir: &Path) -> String {
    use sha2::Digest;
    let path = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = sha2::Sha256::digest(path.to_string_lossy().as_bytes());
    format!("c{}", &hex::encode(digest)[..12])
}

fn require_program(program: &Path, what: &str, fix: &str) -> Result<PathBuf> {
    find_program(program).ok_or_else(|| SandboxError::Unavailable {
        what: what.to_owned(),
        reason: if program.components().count() > 1 {
            format!("no program at {}", program.display())
        } else {
            format!("{} not found on PATH", program.display())
        },
        fix: fix.to_owned(),
    })
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
