//! One async task per running task: provision → agent → publish.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use dockhand_agent::AgentCtx;
use dockhand_agent::AgentError;
use dockhand_forge::ForgeError;
use dockhand_protocol::EventBody;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::SandboxRef;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use dockhand_store::Store;
use dockhand_store::StoreError;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::publish::PublishError;
use crate::services::Services;

/// Why a run did not succeed. The Display text is the task's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cancelled")]
    Cancelled,
    #[error("repository: {0}")]
    Repo(ForgeError),
    #[error("{0}")]
    Clone(ForgeError),
    #[error("{0}")]
    Environment(ForgeError),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("prepare failed: {0}")]
    Prepare(String),
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Agent(AgentError),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

pub(crate) fn phase(
    store: &Store,
    id: &TaskId,
    phase: &str,
    took: Duration,
    detail: Option<String>,
) {
    let body = EventBody::Phase(PhaseEvent {
        phase: phase.into(),
        duration_ms: took.as_millis() as u64,
        detail,
        network: None,
    });
    if let Err(e) = store.append(id, body) {
        tracing::warn!(task = %id, error = %e, "dropping phase event");
    }
}

/// Runs a claimed task to its end and records how it ended.
pub async fn run_task(
    deps: Arc<Services>,
    task: TaskRow,
    cancel: CancellationToken,
    reason: Arc<OnceLock<String>>,
) {
    let id = task.id.clone();
    let outcome = drive(&deps, task, &cancel)
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
    if let Err(e) = deps.store.set_status(&id, status, message).await {
        tracing::error!(task = %id, error = %e, "recording the end of a task");
    }
}

async fn drive(
    deps: &Services,
    mut task: TaskRow,
    cancel: &CancellationToken,
) -> Result<String, RunError> {
    let provisioned = crate::provision::provision(deps, &mut task, cancel).await;
    // Refill after the task's own start-up, not during it (a no-op when full).
    if let Some(pool) = &deps.pool {
        pool.refill();
    }
    let provisioned = provisioned?;
    let sandbox = provisioned.sandbox;
    let result = run_agent(
        deps,
        &task,
        sandbox.clone(),
        provisioned.command_timeout,
        cancel,
    )
    .await;
    // The sandbox may have been replaced during the run (a fork bomb, say).
    let info = sandbox.info();
    let now = Some(SandboxRef {
        backend: info.backend,
        id: info.id,
    });
    if now != task.sandbox {
        let _ = deps.store.set_sandbox(&task.id, now).await;
    }
    // A docker container stays for the idle window, so a follow-up starts at once;
    // the janitor removes it after. Local sandboxes hold nothing worth keeping.
    if deps.docker.is_none() {
        if let Err(e) = sandbox.destroy().await {
            tracing::warn!(task = %task.id, error = %e, "releasing the sandbox");
        }
    } else if let Err(e) = sandbox.kill_all().await {
        tracing::warn!(task = %task.id, error = %e, "stopping the finished task's processes");
    }
    result
}

async fn run_agent(
    deps: &Services,
    task: &TaskRow,
    sandbox: Arc<dyn Sandbox>,
    command_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, RunError> {
    if cancel.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    let source = dockhand_forge::resolve_repo(
        &task.repo,
        deps.config.local_repos_allowed(),
        &deps.config.github.web_url,
    )
    .map_err(RunError::Repo)?;
    deps.store
        .set_status(&task.id, TaskStatus::Running, None)
        .await?;
    let ctx = AgentCtx {
        task: task.id.clone(),
        store: deps.store.clone(),
        live: Arc::new(deps.hub.clone()),
        model: deps.model.clone(),
        sandbox: sandbox.clone(),
        config: {
            let mut config = deps.config.agent_config(&task.model);
            config.tools.command_timeout = command_timeout;
            config
        },
        cancel: cancel.clone(),
    };
    let (summary, budget) = match dockhand_agent::run(&ctx).await {
        Ok(s) => (s.final_text, None),
        Err(AgentError::Cancelled) => return Err(RunError::Cancelled),
        // Work done before a budget ran out is still handed back.
        Err(e @ AgentError::Budget(_)) => (String::new(), Some(e)),
        Err(e) => return Err(RunError::Agent(e)),
    };
    deps.store
        .set_status(&task.id, TaskStatus::Publishing, None)
        .await?;
    let published =
        crate::publish::publish(deps, task, sandbox.as_ref(), &summary, &source).await?;
    deps.store.set_published(&task.id).await?;
    match budget {
        Some(e) => Err(RunError::Agent(e)),
        None => Ok(published),
    }
}
