//! The pure half of the docker backend: the container a task gets, as an Engine API body.
//!
//! Everything that makes the container a sandbox is decided here and unit-tested without
//! Docker: a non-root user, no capabilities, `no-new-privileges`, memory (without swap),
//! CPU and PID limits, and exactly one host path, the task's workspace at `/workspace`
//! (no Docker socket, no data dir). PID 1 is Docker's own init, which reaps orphans, with
//! `sleep infinity` as its only child; every command is an exec (DESIGN.md, "Sandbox").
//! The root filesystem stays writable: the agent may break its own container, and
//! [`Sandbox::replace`](crate::Sandbox::replace) makes a fresh one.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use bollard::models::HostConfig;

use super::config::DockerConfig;
use crate::NetworkLevel;
use crate::Result;
use crate::SandboxError;
use crate::SandboxSpec;
use crate::WORKSPACE;

/// Every container this backend makes carries this label, valued with the coordinator's id.
pub const LABEL_COORDINATOR: &str = "dockhand.coordinator";
/// A task's container carries the task id under this label.
pub const LABEL_TASK: &str = "dockhand.task";
/// A warm-pool container carries its slot id under this label instead of a task.
pub const LABEL_POOL: &str = "dockhand.pool";

/// The network of `open` containers: a bridge with inter-container traffic off,
/// so one task's sandbox cannot reach another's.
pub const OPEN_NETWORK: &str = "dockhand-open";

/// The user every process in the container runs as (`uid:gid`).
pub const SANDBOX_USER: &str = "1000:1000";
/// Its uid.
pub const SANDBOX_UID: u32 = 1000;

/// `PATH` inside the container.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a container is for; decides its labels, which cannot change after creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves the task with this id.
    Task(String),
    /// Waits in the warm pool in this slot.
    Pool(String),
}

/// The labels of a container made by `coordinator_id` for `role`.
pub fn labels(coordinator_id: &str, role: &Role) -> HashMap<String, String> {
    let mut labels = HashMap::from([(LABEL_COORDINATOR.to_owned(), coordinator_id.to_owned())]);
    match role {
        Role::Task(task) => labels.insert(LABEL_TASK.to_owned(), task.clone()),
        Role::Pool(slot) => labels.insert(LABEL_POOL.to_owned(), slot.clone()),
    };
    labels
}

/// The image a spec runs: its own, else the configured default.
pub fn image<'a>(config: &'a DockerConfig, spec: &'a SandboxSpec) -> &'a str {
    spec.image.as_deref().unwrap_or(&config.image)
}

/// The container-create body for `spec`. Call [`validate_spec`] first: the workspace
/// path goes into a `Binds` entry, where a `:` or `,` would change its meaning.
pub fn plan(
    config: &DockerConfig,
    spec: &SandboxSpec,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let workspace = spec.workspace.to_string_lossy();
    // `allowlist` has no interface either: its traffic leaves through the
    // forwarder and an exec stream, never through the engine's network.
    let network = match spec.network {
        NetworkLevel::None | NetworkLevel::Allowlist => "none",
        NetworkLevel::Open => OPEN_NETWORK,
    };
    let host_config = HostConfig {
        // The workspace is the only thing from the host the container sees.
        binds: Some(vec![format!("{workspace}:{WORKSPACE}:rw")]),
        mounts: None,
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: None,
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        memory: Some(spec.limits.memory_bytes),
        // Equal to `memory`: no swap on top of the memory limit.
        memory_swap: Some(spec.limits.memory_bytes),
        nano_cpus: Some(spec.limits.nano_cpus),
        pids_limit: Some(spec.limits.pids),
        network_mode: Some(network.to_owned()),
        runtime: config.runtime.clone(),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,exec,nosuid,size={}", config.tmp_size),
        )])),
        // Docker's init as PID 1 reaps the orphans of everything the agent starts.
        init: Some(true),
        auto_remove: Some(false),
        privileged: Some(false),
        readonly_rootfs: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image(config, spec).to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "infinity".to_owned()]),
        // The image's own entrypoint would run instead of our sleep.
        entrypoint: Some(Vec::new()),
        user: Some(SANDBOX_USER.to_owned()),
        working_dir: Some(WORKSPACE.to_owned()),
        env: Some(container_env(spec)),
        labels: Some(labels),
        tty: Some(false),
        open_stdin: Some(false),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The container's environment: fixed basics (and the proxy at `allowlist`), then
/// the spec's, which win on a clash.
fn container_env(spec: &SandboxSpec) -> Vec<String> {
    let mut extra = match spec.network {
        NetworkLevel::Allowlist => crate::egress::proxy_env(),
        _ => Vec::new(),
    };
    extra.retain(|(k, _)| !spec.env.iter().any(|(key, _)| key == k));
    extra.extend(spec.env.iter().cloned());
    let extra = &extra;
    let base = [
        ("PATH", SANDBOX_PATH),
        ("HOME", "/tmp"),
        ("USER", "agent"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
    ];
    base.iter()
        .filter(|(key, _)| !extra.iter().any(|(k, _)| k == key))
        .map(|(key, value)| format!("{key}={value}"))
        .chain(extra.iter().map(|(key, value)| format!("{key}={value}")))
        .collect()
}

/// A container name for `role`: `dockhand-<task>-<suffix>`, with characters Docker
/// does not accept in names replaced.
pub fn container_name(role: &Role, suffix: &str) -> String {
    let (kind, id) = match role {
        Role::Task(task) => ("", task.as_str()),
        Role::Pool(slot) => ("pool-", slot.as_str()),
    };
    let id: String = id
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("dockhand-{kind}{id}-{suffix}")
}

/// Rejects specs the plan cannot express safely.
pub fn validate_spec(spec: &SandboxSpec) -> Result<()> {
    let ws = &spec.workspace;
    let Some(path) = ws.to_str() else {
        return Err(SandboxError::Invalid(format!(
            "workspace {} is not UTF-8",
            ws.display()
        )));
    };
    if !ws.is_absolute() {
        return Err(SandboxError::Invalid(format!(
            "workspace {path} must be an absolute path"
        )));
    }
    // `Binds` is `src:dst:opts`; these would split or extend the entry.
    if path.contains([':', ',', '\0']) {
        return Err(SandboxError::Invalid(format!(
            "workspace {path:?} contains ':', ',' or a NUL byte"
        )));
    }
    validate_env(&spec.env)
}

/// Rejects environment variable names Docker would misread, and NUL bytes.
pub fn validate_env(env: &[(String, String)]) -> Result<()> {
    for (key, value) in env {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(SandboxError::Invalid(format!(
                "environment variable {key:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
