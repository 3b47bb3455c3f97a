//! One task's container: the [`Sandbox`] implementation.

use std::sync::Arc;

use async_trait::async_trait;

use super::api::short;
use super::container::Container;
use super::lifecycle;
use super::oneshot;
use super::plan;
use super::plan::Role;
use super::scripts;
use super::shell;
use crate::ExecOutput;
use crate::ExecRequest;
use crate::LimitMarks;
use crate::OutputSink;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::ShellProcess;

pub(crate) const BACKEND: &str = "docker";

/// A task's container.
pub(crate) struct DockerSandbox {
    pub(crate) container: Arc<Container>,
}

#[async_trait]
impl Sandbox for DockerSandbox {
    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: BACKEND.to_owned(),
            id: self.container.id(),
            task_id: match &self.container.role {
                Role::Task(task) => Some(task.clone()),
                Role::Pool(_) => None,
            },
        }
    }

    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        validate_argv(&req.argv)?;
        plan::validate_env(&req.env)?;
        if let Some(cwd) = &req.cwd
            && cwd.contains('\0')
        {
            return Err(SandboxError::Invalid(format!(
                "cwd {cwd:?} contains a NUL byte"
            )));
        }
        let container = &*self.container;
        let seen = container.id();
        tracing::debug!(container = short(&seen), argv = ?req.argv, "exec");
        let kills = container.kill_count();
        let before = container.cheap_marks().await;
        let argv = scripts::wrapped(scripts::WRAPPER, req.argv);
        let open = || {
            container.open(
                argv.clone(),
                req.cwd.as_deref(),
                &req.env,
                req.stdin.is_some(),
            )
        };
        // Nothing ran yet, so a lost container is replaced and the command started there.
        let opened = match open().await {
            Err(e) if !container.recover(&seen).await? => return Err(e),
            Err(_) => open().await?,
            Ok(opened) => opened,
        };
        let mut out = oneshot::run(
            container,
            opened,
            req.stdin,
            req.timeout,
            req.output_cap,
            sink,
        )
        .await?;
        if container.kill_count() != kills {
            // Killed by `kill_all`: like a signal death, no exit code.
            out.exit_code = None;
        }
        if let (Some(before), Some(after)) = (before, container.cheap_marks().await) {
            out.killed_reason = container.explain(before, after);
        }
        Ok(out)
    }

    async fn spawn_shell(&self, argv: Vec<String>) -> Result<ShellProcess> {
        validate_argv(&argv)?;
        tracing::debug!(
            container = short(&self.container.id()),
            ?argv,
            "spawn shell"
        );
        let seen = self.container.id();
        let argv = scripts::wrapped(scripts::SHELL_WRAPPER, argv);
        let spawn = || shell::spawn(Arc::clone(&self.container), argv.clone());
        match spawn().await {
            Err(e) if !self.container.recover(&seen).await? => Err(e),
            Err(_) => spawn().await,
            ok => ok,
        }
    }

    fn take_notice(&self) -> Option<String> {
        self.container.take_notice()
    }

    async fn kill_all(&self) -> Result<()> {
        self.container.kill_all().await
    }

    async fn destroy(&self) -> Result<()> {
        lifecycle::remove(&self.container.docker, &self.container.id()).await
    }

    async fn limit_marks(&self) -> LimitMarks {
        let mut marks = self.container.marks().await;
        marks.egress_refused = self.container.refusals.total();
        marks
    }

    fn explain_limits(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        let mut lines: Vec<String> = self.container.explain(before, after).into_iter().collect();
        if after.egress_refused > before.egress_refused {
            lines.extend(self.container.refusals.since(before.egress_refused));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    async fn replace(&self) -> Result<()> {
        self.container.replace().await
    }
}

fn validate_argv(argv: &[String]) -> Result<()> {
    if argv.is_empty() {
        return Err(SandboxError::Invalid("empty argv".to_owned()));
    }
    match argv.iter().find(|arg| arg.contains('\0')) {
        Some(arg) => Err(SandboxError::Invalid(format!(
            "argument {arg:?} contains a NUL byte"
        ))),
        None => Ok(()),
    }
}
