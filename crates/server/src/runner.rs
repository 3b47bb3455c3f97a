//! One async task per running task: provision (clone, sandbox) → agent → publish.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;

use dockhand_agent::AgentCtx;
use dockhand_agent::AgentError;
use dockhand_forge::ForgeError;
use dockhand_model::Model;
use dockhand_protocol::EventBody;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::SandboxRef;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::SandboxSpec;
use dockhand_store::Store;
use dockhand_store::StoreError;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::hub::Hub;
use crate::publish::PublishError;

/// What every runner shares.
pub struct RunnerDeps {
    /// The store.
    pub store: Store,
    /// Live events.
    pub hub: Hub,
    /// The model.
    pub model: Arc<dyn Model>,
    /// Sandboxes.
    pub sandboxes: Arc<dyn SandboxProvider>,
    /// Configuration.
    pub config: Arc<Config>,
}

impl RunnerDeps {
    /// The host directory of a task's workspace.
    pub fn workspace(&self, id: &TaskId) -> PathBuf {
        self.config.data_dir.join("workspaces").join(id.as_str())
    }
}

/// Why a run did not succeed. The Display text is the task's error.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Cancelled(String),
    #[error("repository: {0}")]
    Repo(ForgeError),
    #[error("{0}")]
    Clone(ForgeError),
    #[error("starting the sandbox: {0}")]
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

/// Cuts text to at most `max` bytes at a character boundary.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Runs a claimed task to its end and records how it ended.
pub async fn run_task(
    deps: Arc<RunnerDeps>,
    task: TaskRow,
    cancel: CancellationToken,
    reason: Arc<OnceLock<String>>,
) {
    let id = task.id.clone();
    let outcome = drive(&deps, task, &cancel, &reason)
        .instrument(tracing::info_span!("task", task = %id))
        .await;
    let (status, message) = match outcome {
        Ok(note) => (TaskStatus::Succeeded, Some(note)),
        Err(RunError::Cancelled(m)) => (TaskStatus::Cancelled, Some(m)),
        Err(e) => (TaskStatus::Failed, Some(e.to_string())),
    };
    tracing::info!(task = %id, %status, message = message.as_deref().unwrap_or(""), "task run ended");
    let from = [
        TaskStatus::Provisioning,
        TaskStatus::Running,
        TaskStatus::Publishing,
    ];
    if let Err(e) = deps.store.set_status(&id, &from, status, message).await {
        tracing::error!(task = %id, error = %e, "recording the end of a task");
    }
}

fn phase(store: &Store, id: &TaskId, phase: &str, took: Duration, detail: Option<String>) {
    let body = EventBody::Phase(PhaseEvent {
        phase: phase.into(),
        duration_ms: took.as_millis() as u64,
        detail,
    });
    if let Err(e) = store.append(id, body) {
        tracing::warn!(task = %id, error = %e, "dropping phase event");
    }
}

fn cancelled(reason: &OnceLock<String>) -> RunError {
    RunError::Cancelled(reason.get().cloned().unwrap_or_else(|| "cancelled".into()))
}

async fn drive(
    deps: &RunnerDeps,
    mut task: TaskRow,
    cancel: &CancellationToken,
    reason: &OnceLock<String>,
) -> Result<String, RunError> {
    let started = Instant::now();
    let cfg = &deps.config;
    let source =
        dockhand_forge::resolve_repo(&task.repo, cfg.allow_local_repos, &cfg.github.web_url)
            .map_err(RunError::Repo)?;
    let ws = deps.workspace(&task.id);

    let t = Instant::now();
    if task.base_commit.is_none() {
        // A clone cut short by a crash leaves a partial directory: start over.
        if ws.exists() {
            std::fs::remove_dir_all(&ws)
                .map_err(|e| RunError::Io(format!("clearing {}: {e}", ws.display())))?;
        }
        if let Some(parent) = ws.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| RunError::Io(format!("creating {}: {e}", parent.display())))?;
        }
        let info = tokio::select! {
            r = dockhand_forge::clone_workspace(&source, &ws, task.base_branch.as_deref(), &task.branch) => r.map_err(RunError::Clone)?,
            _ = cancel.cancelled() => return Err(cancelled(reason)),
        };
        deps.store
            .set_base(&task.id, info.base_branch.clone(), info.base_commit.clone())
            .await?;
        let short = &info.base_commit[..info.base_commit.len().min(12)];
        phase(
            &deps.store,
            &task.id,
            "clone",
            t.elapsed(),
            Some(format!("{} at {short}", info.base_branch)),
        );
        task.base_ref = Some(info.base_branch);
        task.base_commit = Some(info.base_commit);
    } else {
        phase(
            &deps.store,
            &task.id,
            "clone",
            t.elapsed(),
            Some("workspace kept from the previous run".into()),
        );
    }

    let t = Instant::now();
    let spec = SandboxSpec {
        task_id: task.id.to_string(),
        workspace: ws.clone(),
        network: cfg.sandbox.network,
        env: Vec::new(),
        image: None,
    };
    let provider = &deps.sandboxes;
    let attached = match &task.sandbox {
        Some(r) if r.backend == provider.backend() => provider.attach(&r.id, spec.clone()).await?,
        _ => None,
    };
    let sandbox: Arc<dyn Sandbox> = match attached {
        Some(s) => s,
        None => provider.create(spec).await?,
    };
    let info = sandbox.info();
    deps.store
        .set_sandbox(
            &task.id,
            Some(SandboxRef {
                backend: info.backend.clone(),
                id: info.id.clone(),
            }),
        )
        .await?;
    phase(
        &deps.store,
        &task.id,
        "sandbox",
        t.elapsed(),
        Some(format!("{} {}", info.backend, info.id)),
    );
    phase(&deps.store, &task.id, "ready", started.elapsed(), None);

    let result = run_agent(deps, &task, sandbox.clone(), cancel, reason, &source).await;
    if let Err(e) = sandbox.destroy().await {
        tracing::warn!(task = %task.id, error = %e, "releasing the sandbox");
    }
    result
}

async fn run_agent(
    deps: &RunnerDeps,
    task: &TaskRow,
    sandbox: Arc<dyn Sandbox>,
    cancel: &CancellationToken,
    reason: &OnceLock<String>,
    source: &dockhand_forge::RepoSource,
) -> Result<String, RunError> {
    if cancel.is_cancelled() {
        return Err(cancelled(reason));
    }
    let running = [TaskStatus::Provisioning, TaskStatus::Running];
    deps.store
        .set_status(&task.id, &running, TaskStatus::Running, None)
        .await?;
    let ctx = AgentCtx {
        task: task.id.clone(),
        store: deps.store.clone(),
        live: Arc::new(deps.hub.clone()),
        model: deps.model.clone(),
        sandbox: sandbox.clone(),
        config: deps.config.agent_config(&task.model),
        cancel: cancel.clone(),
    };
    let (summary, budget) = match dockhand_agent::run(&ctx).await {
        Ok(s) => (s.final_text, None),
        Err(AgentError::Cancelled) => return Err(cancelled(reason)),
        // Work done before a budget ran out is still handed back.
        Err(e @ AgentError::Budget(_)) => (String::new(), Some(e)),
        Err(e) => return Err(RunError::Agent(e)),
    };
    deps.store
        .set_status(
            &task.id,
            &[TaskStatus::Running],
            TaskStatus::Publishing,
            None,
        )
        .await?;
    let published = crate::publish::publish(deps, task, sandbox.as_ref(), &summary, source).await?;
    match budget {
        Some(e) => Err(RunError::Agent(e)),
        None => Ok(published),
    }
}
