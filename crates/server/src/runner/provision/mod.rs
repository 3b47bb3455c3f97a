//! Getting a task ready to run, in named steps: resolve the repository, bring
//! the mirror up to date and bundle the base branch, read the environment at
//! the base commit and apply it (policy, image, `setup`), start the sandbox,
//! seed the workspace inside it, and get it ready (`prepare`). Each step is a
//! `phase` event with its duration (setup, container or sandbox, clone,
//! prepare, ready), so a person sees where the time went.

mod environment;
mod sandbox;
pub(crate) mod seed;
mod workspace;

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use dockhand_forge::RepoSource;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use super::error::RunError;
use super::events::StepOutput;
use super::events::phase;
use crate::services::Services;

/// A provisioned task.
pub(crate) struct Provisioned {
    pub sandbox: Arc<dyn Sandbox>,
    /// A bash command is killed after this long (the repository may ask for less).
    pub command_timeout: Duration,
    /// Where the repository is, resolved once for the whole run.
    pub source: RepoSource,
}

/// Runs every step; the sandbox it returns is ready for the agent.
pub(crate) async fn provision(
    s: &Services,
    task: &mut TaskRow,
    cancel: &CancellationToken,
) -> Result<Provisioned, RunError> {
    let started = Instant::now();
    let source = resolve(s, task)?;
    let (ws, warm) = workspace::choose(s, task).await;
    let (env, fresh) = workspace::source(s, task, &ws, &source, cancel).await?;
    let applied = environment::policy(s, task, &env);
    let image = environment::image(s, task, &env, &applied, cancel).await?;
    let spec = sandbox::spec(task, &ws, &env, &applied, image);
    let sandbox = sandbox::start(s, task, spec, warm, cancel).await?;
    if let Some(fresh) = fresh {
        seed::seed(s, task, sandbox.as_ref(), fresh, &env, cancel).await?;
    }
    ready(s, task, &env, sandbox.as_ref(), cancel).await?;
    phase(&s.store, &task.id, "ready", started.elapsed(), None);
    Ok(Provisioned {
        sandbox,
        command_timeout: applied.command_timeout,
        source,
    })
}

/// Where the task's repository is, under the operator's rules.
fn resolve(s: &Services, task: &TaskRow) -> Result<RepoSource, RunError> {
    let cfg = &s.config;
    dockhand_forge::resolve_repo(&task.repo, cfg.local_repos_allowed(), &cfg.github.web_url)
        .map_err(RunError::Repo)
}

/// Runs the repository's `prepare`, once per workspace.
async fn ready(
    s: &Services,
    task: &mut TaskRow,
    env: &dockhand_forge::Environment,
    sandbox: &dyn Sandbox,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let (Some(script), false) = (env.prepare.as_deref(), task.prepared) else {
        return Ok(());
    };
    let t = Instant::now();
    let secs = s.config.sandbox.setup_timeout_secs;
    let mut out = StepOutput::new(&s.store, &task.id, "prepare");
    let mut req = ExecRequest::new(["sh", "-c", script]);
    req.timeout = Duration::from_secs(secs);
    req.output_cap = 64 * 1024;
    let mut sink = |_, b: &[u8]| out.push(b);
    let result = tokio::select! {
        r = sandbox.exec(req, &mut sink) => r?,
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
    };
    if result.exit_code != Some(0) {
        let why = match (result.timed_out, result.exit_code) {
            (true, _) => format!("timed out after {secs} s"),
            (false, Some(code)) => format!("exit code {code}"),
            (false, None) => "killed".to_owned(),
        };
        return Err(RunError::Prepare(format!("{why}:\n{}", out.tail())));
    }
    s.store.set_prepared(&task.id).await?;
    task.prepared = true;
    phase(&s.store, &task.id, "prepare", t.elapsed(), None);
    Ok(())
}
