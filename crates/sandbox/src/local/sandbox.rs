//! One task's bubblewrap sandbox: every command a bwrap of the same plan, in
//! the sandbox's cgroup, with its egress socket at `allowlist`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use async_trait::async_trait;

use super::cgroup::Group;
use super::mount::WorkspaceBind;
use super::net::EgressSocket;
use super::plan::HostLayout;
use super::plan::Request;
use super::plan::plan;
use super::run;
use super::run::HostSide;
use super::run::Launch;
use super::run::Tracker;
use crate::ExecOutput;
use crate::ExecRequest;
use crate::LimitMarks;
use crate::NetworkLevel;
use crate::OutputSink;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxSpec;
use crate::ShellProcess;
use crate::egress::RefusalLog;

/// Clears setuid and setgid bits the agent set in `/workspace`: bwrap's binds
/// ignore them, but the workspace is also a directory on the host.
const STRIP_SPECIAL_BITS: &str =
    "find /workspace -xdev -perm /6000 -exec chmod ug-s {} + 2>/dev/null; exit 0";

pub(super) const BACKEND: &str = "local";

/// Sandboxes made and not destroyed: id to (generation, task id). The generation lets a
/// destroyed sandbox leave alone a newer one made for the same task.
#[derive(Default)]
pub(super) struct Live(Mutex<HashMap<String, (u64, String)>>);

impl Live {
    pub(super) fn insert(&self, id: &str, generation: u64, task_id: &str) {
        self.lock()
            .insert(id.to_owned(), (generation, task_id.to_owned()));
    }

    /// Forgets `id` unless a newer sandbox took its place.
    fn remove(&self, id: &str, generation: u64) {
        let mut live = self.lock();
        if live.get(id).is_some_and(|(g, _)| *g == generation) {
            live.remove(id);
        }
    }

    /// The live sandboxes, by id.
    pub(super) fn infos(&self) -> Vec<SandboxInfo> {
        let mut infos: Vec<SandboxInfo> = self
            .lock()
            .iter()
            .map(|(id, (_, task_id))| SandboxInfo {
                backend: BACKEND.to_owned(),
                id: id.clone(),
                task_id: Some(task_id.clone()),
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        infos
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, String)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One task's bubblewrap sandbox.
///
/// `--die-with-parent` follows the *thread* that started bwrap, not the process: a
/// command started from a thread that later exits dies with it. Tokio's worker
/// threads live as long as the runtime, so call it from async code, not from inside
/// `spawn_blocking`.
pub(super) struct LocalSandbox {
    pub(super) id: String,
    pub(super) spec: SandboxSpec,
    /// As root: the workspace bound where the sandbox uid reaches it.
    pub(super) bind: Option<WorkspaceBind>,
    pub(super) host: Arc<HostLayout>,
    pub(super) side: Arc<HostSide>,
    pub(super) group: Option<Group>,
    pub(super) egress: Option<EgressSocket>,
    pub(super) refusals: RefusalLog,
    pub(super) tracker: Arc<Tracker>,
    pub(super) live: Arc<Live>,
    pub(super) generation: u64,
}

impl LocalSandbox {
    /// Memory and process limits hit between `before` and `after`.
    fn explain_cgroup(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        let limits = &self.spec.limits;
        crate::docker::limits::explain(before, after, limits.memory_bytes, limits.pids)
    }

    fn launch(&self, argv: &[String], cwd: Option<&str>, env: &[(String, String)]) -> Launch<'_> {
        let socket = self.egress.as_ref().map(|e| e.path.to_string_lossy());
        let req = Request {
            spec: &self.spec,
            workspace: self
                .bind
                .as_ref()
                .map_or(&self.spec.workspace, |b| b.path()),
            argv,
            cwd,
            env,
            egress_socket: socket.as_deref(),
        };
        Launch {
            host: &self.side,
            args: plan(&self.host, &req),
            cgroup_procs: self.group.as_ref().map_or(&[][..], Group::procs_files),
            open: self.spec.network == NetworkLevel::Open,
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
        let before = self.group.as_ref().map(Group::marks).unwrap_or_default();
        let launch = self.launch(&req.argv, req.cwd.as_deref(), &req.env);
        let reg = self.tracker.register();
        let mut out = run::exec(launch, req.stdin, req.timeout, req.output_cap, reg, sink).await?;
        let after = self.group.as_ref().map(Group::marks).unwrap_or_default();
        out.killed_reason = self.explain_cgroup(before, after);
        Ok(out)
    }

    async fn spawn_shell(&self, argv: Vec<String>) -> Result<ShellProcess> {
        validate_argv(&argv)?;
        tracing::debug!(sandbox = %self.id, ?argv, "spawn shell");
        let launch = self.launch(&argv, None, &[]);
        run::spawn_shell(launch, self.tracker.register()).await
    }

    async fn kill_all(&self) -> Result<()> {
        self.tracker.kill_all().await;
        Ok(())
    }

    async fn destroy(&self) -> Result<()> {
        self.tracker.kill_all().await;
        if let Some(group) = &self.group {
            group.remove().await;
        }
        self.live.remove(&self.id, self.generation);
        Ok(())
    }

    async fn limit_marks(&self) -> LimitMarks {
        let mut marks = self.group.as_ref().map(Group::marks).unwrap_or_default();
        marks.egress_refused = self.refusals.total();
        marks
    }

    fn explain_limits(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        let mut lines = Vec::new();
        lines.extend(self.explain_cgroup(before, after));
        if after.egress_refused > before.egress_refused {
            lines.extend(self.refusals.since(before.egress_refused));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    async fn after_command(&self) -> Result<()> {
        let mut req = ExecRequest::new(["/bin/sh", "-c", STRIP_SPECIAL_BITS]);
        req.timeout = Duration::from_secs(60);
        req.output_cap = 4096;
        let launch = self.launch(&req.argv, None, &[]);
        let reg = self.tracker.register();
        run::exec(
            launch,
            None,
            req.timeout,
            req.output_cap,
            reg,
            &mut |_, _| {},
        )
        .await?;
        Ok(())
    }
}

pub(super) fn validate_spec(spec: &SandboxSpec) -> Result<()> {
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
