//! Per-sandbox cgroups for the local backend: memory (no swap beyond it),
//! processes and CPU, on cgroup v2 where the host has it and on the v1
//! `memory`, `pids` and `cpu` hierarchies otherwise. Each sandbox gets a group
//! under the coordinator's own (`<own>/dockhand/<scope>/<sandbox>`, the scope
//! naming this coordinator's data), so the coordinator's own limits cover its
//! sandboxes too and two coordinators on one host leave each other alone. A command joins the group
//! before bubblewrap starts (the launch script writes its pid into each
//! `cgroup.procs`), so everything it starts is counted.

use std::path::Path;
use std::path::PathBuf;

use crate::LimitMarks;
use crate::Limits;
use crate::Result;
use crate::SandboxError;

const ROOT: &str = "/sys/fs/cgroup";
const PERIOD_US: i64 = 100_000;

/// Where this host keeps cgroups, and the coordinator's own groups in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    trees: Trees,
    /// This coordinator's directory under `dockhand/`.
    scope: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Trees {
    /// One unified tree; the coordinator's group.
    V2(PathBuf),
    /// Separate trees; the coordinator's group in `memory`, `pids` and `cpu`.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
    },
}

/// One sandbox's group(s).
#[derive(Clone, Debug)]
pub(crate) struct Group {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory.
    procs: Vec<String>,
    /// `memory.oom_control` (v1) or `memory.events` (v2).
    memory_events: PathBuf,
    pids_events: PathBuf,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |e| SandboxError::io(what, e)
}

impl Hierarchy {
    /// Finds the host's cgroups from `/proc/self/cgroup` and the mounts under
    /// `/sys/fs/cgroup`, for the coordinator `scope` names; `Err` says why they
    /// cannot be used.
    pub(crate) fn probe(scope: &str) -> std::result::Result<Hierarchy, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
        let root = Path::new(ROOT);
        let trees = if root.join("cgroup.controllers").is_file() {
            let path = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
            Trees::V2(root.join(path.trim_start_matches('/')))
        } else {
            let find = |controller: &str| -> std::result::Result<PathBuf, String> {
                let path = own
                    .lines()
                    .find_map(|l| {
                        let mut parts = l.splitn(3, ':');
                        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                        controllers
                            .split(',')
                            .any(|c| c == controller)
                            .then_some(path)
                    })
                    .ok_or_else(|| format!("no cgroup v1 {controller} controller"))?;
                let dir = root.join(controller).join(path.trim_start_matches('/'));
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(format!("{} is not mounted", dir.display()))
                }
            };
            Trees::V1 {
                memory: find("memory")?,
                pids: find("pids")?,
                cpu: find("cpu")?,
            }
        };
        let hierarchy = Hierarchy {
            trees,
            scope: scope.to_owned(),
        };
        // Prove a group can be made and limited here.
        let probe = hierarchy.create(&format!("probe-{}", std::process::id()), &Limits::default());
        match probe {
            Ok(group) => {
                group.remove_now();
                Ok(hierarchy)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// `cgroup v2` or `cgroup v1`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.trees {
            Trees::V2(_) => "cgroup v2",
            Trees::V1 { .. } => "cgroup v1",
        }
    }

    /// Makes (or reuses) the group for sandbox `name` and sets `limits` on it.
    pub(crate) fn create(&self, name: &str, limits: &Limits) -> Result<Group> {
        let rel = Path::new("dockhand").join(&self.scope).join(name);
        let memory = limits.memory_bytes.to_string();
        let pids = limits.pids.to_string();
        let quota = (limits.nano_cpus * PERIOD_US / 1_000_000_000).max(1000);
        let group = match &self.trees {
            Trees::V2(own) => {
                // Each parent hands the controllers down; v2 wants it to hold no process.
                let top = own.join("dockhand");
                for parent in [top.clone(), top.join(&self.scope)] {
                    make(&parent)?;
                    let control = parent.join("cgroup.subtree_control");
                    let _ = std::fs::write(&control, "+memory +pids +cpu");
                }
                let dir = own.join(&rel);
                make(&dir)?;
                write(&dir, "memory.max", &memory)?;
                let _ = write(&dir, "memory.swap.max", "0");
                write(&dir, "pids.max", &pids)?;
                write(&dir, "cpu.max", &format!("{quota} {PERIOD_US}"))?;
                Group::new(
                    vec![dir.clone()],
                    dir.join("memory.events"),
                    dir.join("pids.events"),
                )
            }
            Trees::V1 {
                memory: m,
                pids: p,
                cpu: c,
            } => {
                let (md, pd, cd) = (m.join(&rel), p.join(&rel), c.join(&rel));
                for dir in [&md, &pd, &cd] {
                    make(dir)?;
                }
                write(&md, "memory.limit_in_bytes", &memory)?;
                // Present only with swap accounting; without it there is no swap to bound.
                if md.join("memory.memsw.limit_in_bytes").exists() {
                    write(&md, "memory.memsw.limit_in_bytes", &memory)?;
                }
                write(&pd, "pids.max", &pids)?;
                write(&cd, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
                write(&cd, "cpu.cfs_quota_us", &quota.to_string())?;
                let (memory_events, pids_events) =
                    (md.join("memory.oom_control"), pd.join("pids.events"));
                Group::new(vec![md, pd, cd], memory_events, pids_events)
            }
        };
        Ok(group)
    }

    /// Removes this coordinator's (empty) scope, when it stops.
    pub(crate) fn remove_scope(&self) {
        for parent in self.scopes() {
            let _ = std::fs::remove_dir(parent);
        }
    }

    fn scopes(&self) -> Vec<PathBuf> {
        match &self.trees {
            Trees::V2(own) => vec![own.join("dockhand").join(&self.scope)],
            Trees::V1 { memory, pids, cpu } => [memory, pids, cpu]
                .iter()
                .map(|d| d.join("dockhand").join(&self.scope))
                .collect(),
        }
    }

    /// Removes groups this coordinator left in an earlier run (their processes
    /// died with it), and the empty scopes of coordinators that are gone (a live
    /// one makes its scope again when it needs it).
    pub(crate) fn remove_stale(&self) {
        for scope in self.scopes() {
            let Some(top) = scope.parent() else { continue };
            for entry in std::fs::read_dir(top).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.path() != scope {
                    // Fails, harmlessly, while the scope still holds a sandbox's group.
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        for parent in self.scopes() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }
}

fn make(dir: &Path) -> Result<()> {
    // Once more if a parent vanished meanwhile (another coordinator tidying up).
    std::fs::create_dir_all(dir)
        .or_else(|_| std::fs::create_dir_all(dir))
        .map_err(io(format!("creating cgroup {}", dir.display())))
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(io(format!("setting {}", path.display())))
}

impl Group {
    fn new(dirs: Vec<PathBuf>, memory_events: PathBuf, pids_events: PathBuf) -> Group {
        let procs = dirs
            .iter()
            .map(|d| d.join("cgroup.procs").to_string_lossy().into_owned())
            .collect();
        Group {
            dirs,
            procs,
            memory_events,
            pids_events,
        }
    }

    /// The `cgroup.procs` files a command writes its pid into.
    pub(crate) fn procs_files(&self) -> &[String] {
        &self.procs
    }

    /// OOM kills and PID-limit hits so far.
    pub(crate) fn marks(&self) -> LimitMarks {
        crate::docker::limits::read_host(&self.memory_events, &self.pids_events).unwrap_or_default()
    }

    /// Removes a group that never held a process.
    fn remove_now(&self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Removes the group once its processes are gone: a killed sandbox's last
    /// processes leave the group moments after bubblewrap has exited.
    pub(crate) async fn remove(&self) {
        for dir in &self.dirs {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing a sandbox cgroup");
                        break;
                    }
                }
            }
        }
    }
}
