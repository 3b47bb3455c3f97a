//! One async task per running task: provision → agent → publish.

mod error;
mod events;
pub(crate) mod provision;

use std::sync::Arc;
use std::sync::OnceLock;

use dockhand_agent::AgentCtx;
use dockhand_agent::AgentError;
use dockhand_protocol::SandboxRef;
use dockhand_protocol::TaskStatus;
use dockhand_sandbox::Sandbox;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::error::RunError;
use self::provision::Provisioned;
use crate::scheduler::RunFuture;
use crate::scheduler::TaskRunner;
use crate::services::Services;

/// Runs the tasks the scheduler claims, with the shared services.
pub(crate) struct Runner(pub(crate) Arc<Services>);

impl TaskRunner for Runner {
    fn run(
        &self,
        task: TaskRow,
        cancel: CancellationToken,
        reason: Arc<OnceLock<String>>,
    ) -> RunFuture {
        Box::pin(run_task(self.0.clone(), task, cancel, reason))
    }
}

/// Runs a claimed task to its end and records how it ended.
async fn run_task(
    s: Arc<Services>,
    task: TaskRow,
    cancel: CancellationToken,
    reason: Arc<OnceLock<String>>,
) {
    let id = task.id.clone();
    let outcome = drive(&s, task, &cancel)
        .instrument(tracing::info_span!("task", task = %id))
        .await;
    let (status, message) = match outcome {
        Ok(note) => (TaskStatus::Succeeded, Some(note)),
        Err(RunError::Cancelled) => (
            TaskStatus::Cancelled,
            Some(reason.get().cloned().unwrap_or_else(|| "cancelled".into())),
        ),
        Err(e) => (TaskStatus::Failed, Some(e.to_string())),
    };
    tracing::info!(task = %id, %status, message = message.as_deref().unwrap_or(""), "task run ended");
    if let Err(e) = s.store.set_status(&id, status, message).await {
        tracing::error!(task = %id, error = %e, "recording the end of a task");
    }
}

async fn drive(
    s: &Services,
    mut task: TaskRow,
    cancel: &CancellationToken,
) -> Result<String, RunError> {
    let provisioned = provision::provision(s, &mut task, cancel).await;
    // Refill after the task's own start-up, not during it (a no-op when full).
    if let Some(pool) = s.sandboxes.warm_pool() {
        pool.refill();
    }
    let provisioned = provisioned?;
    let sandbox = provisioned.sandbox.clone();
    let result = run_agent(s, &task, provisioned, cancel).await;
    // The sandbox may have been replaced during the run (a fork bomb, say).
    let info = sandbox.info();
    let now = Some(SandboxRef {
        backend: info.backend,
        id: info.id,
    });
    if now != task.sandbox {
        let _ = s.store.set_sandbox(&task.id, now).await;
    }
    // A kept sandbox (a docker container) stays for the idle window, so a
    // follow-up starts at once; the janitor removes it after.
    if !s.sandboxes.keeps_finished() {
        if let Err(e) = sandbox.destroy().await {
            tracing::warn!(task = %task.id, error = %e, "releasing the sandbox");
        }
    } else if let Err(e) = sandbox.kill_all().await {
        tracing::warn!(task = %task.id, error = %e, "stopping the finished task's processes");
    }
    result
}

async fn run_agent(
    s: &Services,
    task: &TaskRow,
    provisioned: Provisioned,
    cancel: &CancellationToken,
) -> Result<String, RunError> {
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    s.store
        .set_status(&task.id, TaskStatus::Running, None)
        .await?;
    let mut config = s.config.agent_config(&task.model);
    config.tools.command_timeout = provisioned.command_timeout;
    let sandbox: Arc<dyn Sandbox> = provisioned.sandbox;
    let ctx = AgentCtx {
        task: task.id.clone(),
        store: s.store.clone(),
        live: Arc::new(s.hub.clone()),
        model: s.model.clone(),
        sandbox: sandbox.clone(),
        config,
        cancel: cancel.clone(),
        checkpointer: crate::checkpoint::for_task(s, task, sandbox.clone()),
    };
    let (summary, budget) = match dockhand_agent::run(&ctx).await {
        Ok(done) => (done.final_text, None),
        Err(AgentError::Cancelled) => return Err(RunError::Cancelled),
        // Work done before a budget ran out is still handed back.
        Err(e @ AgentError::Budget(_)) => (String::new(), Some(e)),
        Err(e) => return Err(RunError::Agent(e)),
    };
    s.store
        .set_status(&task.id, TaskStatus::Publishing, None)
        .await?;
    let source = &provisioned.source;
    let published = crate::publish::publish(s, task, sandbox.as_ref(), &summary, source).await?;
    s.store.set_published(&task.id).await?;
    match budget {
        Some(e) => Err(RunError::Agent(e)),
        None => Ok(published),
    }
}
