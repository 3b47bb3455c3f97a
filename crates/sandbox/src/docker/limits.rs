//! Resource-limit counters of a container: OOM kills and PID-limit hits.
//!
//! The kernel counts both per cgroup. cgroup v1 keeps `oom_kill N` in the memory
//! controller's `memory.oom_control` (kernel 4.13 and later) and `max N` in the pids
//! controller's `pids.events`; cgroup v2 keeps `oom_kill N` in `memory.events` and
//! `max N` in `pids.events` of one directory. The host's cgroup filesystem is read when
//! the container's directory can be found there (cheap: two small reads); otherwise the
//! counters are read inside the container with an exec, where Docker mounts the
//! container's own cgroup at `/sys/fs/cgroup`. These files are written by the kernel,
//! not by the agent, so reading them on the host does not cross the trust boundary.

use std::path::Path;
use std::path::PathBuf;

use crate::LimitMarks;

/// Where a container's counters are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Files on the host.
    Host {
        /// `memory.oom_control` (v1) or `memory.events` (v2).
        memory: PathBuf,
        /// `pids.events`.
        pids: PathBuf,
    },
    /// Neither file was found on the host: read them inside the container.
    Exec,
}

/// Where cgroup filesystems are mounted on the host.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Finds the host files for container `id` under `root` (normally `/sys/fs/cgroup`).
/// `cgroup_parent` is the container's `HostConfig.CgroupParent`, when set; `host_pid`
/// its init's pid, whose `/proc/<pid>/cgroup` names the paths when the coordinator
/// shares the daemon's pid namespace.
pub(crate) fn probe(
    root: &Path,
    id: &str,
    cgroup_parent: Option<&str>,
    host_pid: Option<i64>,
) -> Source {
    let mut v1_dirs = vec![
        format!("docker/{id}"),
        format!("system.slice/docker-{id}.scope"),
    ];
    let mut v2_dirs = v1_dirs.clone();
    if let Some(parent) = cgroup_parent.filter(|p| !p.is_empty()) {
        let parent = parent.trim_matches('/');
        // systemd-style parents ("my.slice") nest scopes; cgroupfs ones nest ids.
        let dir = if parent.ends_with(".slice") {
            format!("{parent}/docker-{id}.scope")
        } else {
            format!("{parent}/{id}")
        };
        v1_dirs.insert(0, dir.clone());
        v2_dirs.insert(0, dir);
    }
    if let Some(pid) = host_pid.filter(|p| *p > 0) {
        let from_proc = proc_cgroups(
            &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default(),
        );
        if let Some(dir) = from_proc.memory {
            v1_dirs.insert(0, dir);
        }
        if let Some(dir) = from_proc.unified {
            v2_dirs.insert(0, dir);
        }
    }
    for dir in &v1_dirs {
        let memory = root.join("memory").join(dir).join("memory.oom_control");
        let pids = root.join("pids").join(dir).join("pids.events");
        if memory.is_file() && pids.is_file() {
            return Source::Host { memory, pids };
        }
    }
    for dir in &v2_dirs {
        let memory = root.join(dir).join("memory.events");
        let pids = root.join(dir).join("pids.events");
        if memory.is_file() && pids.is_file() {
            return Source::Host { memory, pids };
        }
    }
    Source::Exec
}

/// [`probe`] on the host's real cgroup mount.
pub(crate) fn probe_host(id: &str, cgroup_parent: Option<&str>, host_pid: Option<i64>) -> Source {
    probe(Path::new(CGROUP_ROOT), id, cgroup_parent, host_pid)
}

/// The memory (v1) and unified (v2) paths in a `/proc/<pid>/cgroup` file, relative.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcCgroups {
    pub(crate) memory: Option<String>,
    pub(crate) unified: Option<String>,
}

pub(crate) fn proc_cgroups(text: &str) -> ProcCgroups {
    let mut found = ProcCgroups::default();
    for line in text.lines() {
        // `hierarchy-id:controllers:path`
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        // "/" would be the host's root cgroup (no private namespace view): useless.
        if path.is_empty() {
            continue;
        }
        if controllers.is_empty() {
            found.unified = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "memory") {
            found.memory = Some(path.to_owned());
        }
    }
    found
}

/// Reads the counters from host files.
pub(crate) fn read_host(memory: &Path, pids: &Path) -> Option<LimitMarks> {
    let memory = std::fs::read_to_string(memory).ok()?;
    let pids = std::fs::read_to_string(pids).ok()?;
    Some(LimitMarks {
        oom_kills: counter(&memory, "oom_kill").unwrap_or(0),
        pid_limit_hits: counter(&pids, "max").unwrap_or(0),
        egress_refused: 0,
    })
}

/// Prints the counter files as the container sees its own cgroup, each after a marker
/// line, for [`parse_exec`]. v1 first; on v2 the v1 paths simply do not exist.
pub(crate) const EXEC_SCRIPT: &str = "\
echo @memory; cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null
echo @pids; cat /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events 2>/dev/null
exit 0";

/// Parses [`EXEC_SCRIPT`]'s output. The sections matter: v2's `memory.events` has a
/// `max` line too, which counts memory-limit hits, not PID-limit hits.
pub(crate) fn parse_exec(output: &str) -> LimitMarks {
    let (memory, pids) = output.split_once("@pids").unwrap_or((output, ""));
    LimitMarks {
        oom_kills: counter(memory, "oom_kill").unwrap_or(0),
        pid_limit_hits: counter(pids, "max").unwrap_or(0),
        egress_refused: 0,
    }
}

/// The value of the `key N` line in a flat-keyed cgroup file.
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Words for the model about the limits hit between `before` and `after`.
pub(crate) fn explain(
    before: LimitMarks,
    after: LimitMarks,
    memory_bytes: i64,
    pids_limit: i64,
) -> Option<String> {
    let mut reasons = Vec::new();
    let ooms = after.oom_kills.saturating_sub(before.oom_kills);
    if ooms > 0 {
        let limit = human_bytes(memory_bytes);
        reasons.push(if ooms == 1 {
            format!("command killed: out of memory (limit {limit})")
        } else {
            format!("command killed: out of memory (limit {limit}; {ooms} processes killed)")
        });
    }
    if after.pid_limit_hits > before.pid_limit_hits {
        reasons.push(format!(
            "the sandbox hit its process limit ({pids_limit} processes); new processes could not start"
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// `2 GiB`, `64 MiB`, `1.5 GiB`, `1000 bytes`.
pub(crate) fn human_bytes(bytes: i64) -> String {
    const UNITS: [(&str, i64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                // One decimal is plenty for a message.
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
