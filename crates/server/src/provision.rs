//! Getting a task ready to run: the workspace (a warm-pool slot or a fresh
//! directory), the clone, the repository's environment, the image (with the
//! environment cache for `setup`), the container, and `prepare`. Each step is a
//! `phase` event with its duration, so a person sees where the time went.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use dockhand_forge::Environment;
use dockhand_forge::RepoSource;
use dockhand_protocol::ErrorEvent;
use dockhand_protocol::EventBody;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::SandboxRef;
use dockhand_protocol::TaskId;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxSpec;
use dockhand_sandbox::docker::env_cache::EnvBuild;
use dockhand_sandbox::docker::env_cache::ensure_env_image;
use dockhand_store::Store;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use crate::runner::RunError;
use crate::runner::phase;
use crate::services::Services;

/// Output of `setup` or `prepare` kept in the failure message.
const TAIL: usize = 4000;

/// A provisioned task.
pub(crate) struct Provisioned {
    pub sandbox: Arc<dyn Sandbox>,
    /// A bash command is killed after this long (the repository may ask for less).
    pub command_timeout: Duration,
}

/// Creates an empty workspace directory, owned by `owner` (the host uid the
/// sandbox user is) when the backend needs it.
pub(crate) fn make_workspace_dir(dir: &Path, owner: Option<u32>) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    }
    Ok(())
}

/// Empties a directory left half-filled by a crash, keeping the directory itself
/// (a warm-pool container has it bind-mounted).
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Gives the fresh clone to the sandbox user, without following symlinks.
async fn chown_tree(dir: &Path, uid: u32) -> Result<(), RunError> {
    let out = tokio::process::Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{uid}"), "--"])
        .arg(dir)
        .output()
        .await
        .map_err(|e| RunError::Io(format!("chown {}: {e}", dir.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(RunError::Io(format!(
            "chown {}: {}",
            dir.display(),
            err.trim()
        )));
    }
    Ok(())
}

/// Streams a step's output as `tool_output` events under the id `setup` or `prepare`.
struct StepOutput {
    store: Store,
    task: TaskId,
    id: &'static str,
    kept: Vec<u8>,
}

impl StepOutput {
    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        if self.kept.len() > 2 * TAIL {
            self.kept.drain(..self.kept.len() - TAIL);
        }
        let body = EventBody::ToolOutput(dockhand_protocol::ToolOutputEvent {
            id: self.id.to_owned(),
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
        let _ = self.store.append(&self.task, body);
    }
}

pub(crate) async fn provision(
    deps: &Services,
    task: &mut TaskRow,
    cancel: &CancellationToken,
) -> Result<Provisioned, RunError> {
    let started = Instant::now();
    let cfg = &deps.config;
    let docker = deps.docker.is_some();
    let owner = deps.sandboxes.workspace_owner();
    let source =
        dockhand_forge::resolve_repo(&task.repo, cfg.local_repos_allowed(), &cfg.github.web_url)
            .map_err(RunError::Repo)?;

    // The workspace: kept from an earlier run, a warm-pool slot, or a new directory.
    let mut warm: Option<Arc<dyn Sandbox>> = None;
    let ws: PathBuf = match &task.workspace {
        Some(p) => PathBuf::from(p),
        None => match (&deps.pool, task.sandbox.is_none()) {
            (Some(pool), true) => match pool.take(task.id.as_str()).await {
                Some((dir, sb)) => {
                    warm = Some(sb);
                    dir
                }
                None => deps.workspace_dir(&task.id),
            },
            _ => deps.workspace_dir(&task.id),
        },
    };

    let t = Instant::now();
    let env = if task.base_commit.is_none() {
        if ws.exists() {
            clear_dir(&ws).map_err(|e| RunError::Io(format!("clearing {}: {e}", ws.display())))?;
        }
        make_workspace_dir(&ws, owner)
            .map_err(|e| RunError::Io(format!("creating {}: {e}", ws.display())))?;
        // Remote repositories come through the mirror, fetched with the user's token;
        // the workspace's origin is the plain URL, with no credentials in it.
        let (from, origin, via) = match &source {
            RepoSource::Local { .. } => (source.clone(), None, ""),
            RepoSource::Remote { url } => {
                // The mirror sends it only to GitHub itself.
                let token = deps.user_token(task.user_id);
                let mirror = tokio::select! {
                    r = deps.forge.mirrors.sync(url, token.as_deref()) => r.map_err(RunError::Clone)?,
                    _ = cancel.cancelled() => return Err(RunError::Cancelled),
                };
                (
                    RepoSource::Local { path: mirror },
                    Some(url.as_str()),
                    " via the mirror",
                )
            }
        };
        let info = tokio::select! {
            r = dockhand_forge::clone_workspace(&from, &ws, task.base_branch.as_deref(), &task.branch, origin) => r.map_err(RunError::Clone)?,
            _ = cancel.cancelled() => return Err(RunError::Cancelled),
        };
        if let Some(uid) = owner {
            chown_tree(&ws, uid).await?;
        }
        // Read once, from the clone as the repository has it, before the agent can touch it.
        let env = Environment::read(&ws).map_err(RunError::Environment)?;
        let env_json = serde_json::to_string(&env).map_err(|e| RunError::Io(e.to_string()))?;
        deps.store
            .set_base(&task.id, info.base_branch.clone(), info.base_commit.clone())
            .await?;
        deps.store
            .set_workspace(&task.id, ws.to_string_lossy().into_owned(), env_json)
            .await?;
        let short = &info.base_commit[..info.base_commit.len().min(12)];
        phase(
            &deps.store,
            &task.id,
            "clone",
            t.elapsed(),
            Some(format!("{} at {short}{via}", info.base_branch)),
        );
        task.base_ref = Some(info.base_branch);
        task.base_commit = Some(info.base_commit);
        env
    } else {
        phase(
            &deps.store,
            &task.id,
            "clone",
            t.elapsed(),
            Some("workspace kept from the previous run".into()),
        );
        match task.environment.as_deref() {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| RunError::Io(format!("stored environment: {e}")))?,
            None => Environment::default(),
        }
    };
    task.workspace = Some(ws.to_string_lossy().into_owned());

    let applied = crate::policy::apply(cfg, &env);
    for note in &applied.notes {
        phase(
            &deps.store,
            &task.id,
            "policy",
            Duration::ZERO,
            Some(note.clone()),
        );
    }
    // The task's own choice (checked when it was submitted) wins over the
    // repository's, which is granted only within the operator's policy.
    let mut image = task.image.clone();
    if let (None, Some(asked)) = (&image, &env.image) {
        match crate::policy::image_allowed(cfg, deps.docker.as_deref(), asked, task.user_id).await {
            Ok(()) => image = Some(asked.clone()),
            Err(why) => {
                let detail = format!(
                    "image: the repository asked for {asked:?}, which {why}; the default image {:?} applies",
                    cfg.default_image()
                );
                phase(
                    &deps.store,
                    &task.id,
                    "policy",
                    Duration::ZERO,
                    Some(detail),
                );
            }
        }
    }
    if let Some(setup) = env.setup.as_deref() {
        match &deps.docker {
            Some(provider) => {
                let t = Instant::now();
                let base = image
                    .clone()
                    .unwrap_or_else(|| provider.config().image.clone());
                let mut out = StepOutput {
                    store: deps.store.clone(),
                    task: task.id.clone(),
                    id: "setup",
                    kept: Vec::new(),
                };
                let build = EnvBuild {
                    base_image: base,
                    setup: setup.to_owned(),
                    owner: task.user_id.to_string(),
                    repo: task.repo.clone(),
                    network: crate::policy::setup_network(cfg, applied.network),
                    limits: applied.limits,
                    labels: [(
                        dockhand_sandbox::docker::LABEL_COORDINATOR.to_owned(),
                        provider.config().coordinator_id.clone(),
                    )]
                    .into(),
                    timeout: Duration::from_secs(cfg.sandbox.setup_timeout_secs),
                };
                let built = tokio::select! {
                    r = ensure_env_image(provider.client(), &build, Some(deps.egress.clone()), |b| out.push(b)) => r,
                    _ = cancel.cancelled() => return Err(RunError::Cancelled),
                };
                let built = built.map_err(|e| RunError::Setup(e.to_string()))?;
                deps.store.touch_env_image(&built.image).await?;
                let detail = if built.built {
                    format!("built {}", built.image)
                } else {
                    format!("cached {}", built.image)
                };
                phase(&deps.store, &task.id, "setup", t.elapsed(), Some(detail));
                image = Some(built.image);
            }
            None => {
                let message = "this repository's environment has `setup`, which needs the docker backend; it was skipped".to_owned();
                let _ = deps
                    .store
                    .append(&task.id, EventBody::Error(ErrorEvent { message }));
            }
        }
    }

    let t = Instant::now();
    let spec = SandboxSpec {
        task_id: task.id.to_string(),
        workspace: ws.clone(),
        network: applied.network,
        limits: applied.limits,
        env: env
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        image: image.clone(),
    };
    let provider = &deps.sandboxes;
    let attached = match &task.sandbox {
        Some(r) if r.backend == provider.backend() => provider.attach(&r.id, spec.clone()).await?,
        _ => None,
    };
    let (sandbox, how) = match (attached, warm) {
        (Some(s), warm) => {
            if let Some(w) = warm {
                let _ = w.destroy().await;
            }
            (s, "re-attached")
        }
        // A pool container has the default image, level and limits, and no variables.
        (None, Some(w))
            if image.is_none()
                && spec.env.is_empty()
                && spec.network == cfg.sandbox.network.level
                && spec.limits == cfg.sandbox.limits() =>
        {
            (w, "warm pool")
        }
        (None, warm) => {
            if let Some(w) = warm {
                let _ = w.destroy().await;
            }
            let s = tokio::select! {
                r = provider.create(spec) => r?,
                _ = cancel.cancelled() => return Err(RunError::Cancelled),
            };
            (s, "new")
        }
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
    let name = if docker { "container" } else { "sandbox" };
    let short = &info.id[..info.id.len().min(12)];
    let body = EventBody::Phase(PhaseEvent {
        phase: name.into(),
        duration_ms: t.elapsed().as_millis() as u64,
        detail: Some(format!("{how} {} {short}", info.backend)),
        network: Some(applied.network),
    });
    if let Err(e) = deps.store.append(&task.id, body) {
        tracing::warn!(task = %task.id, error = %e, "dropping phase event");
    }

    if let (Some(script), false) = (env.prepare.as_deref(), task.prepared) {
        let t = Instant::now();
        let mut out = StepOutput {
            store: deps.store.clone(),
            task: task.id.clone(),
            id: "prepare",
            kept: Vec::new(),
        };
        let mut req = ExecRequest::new(["sh", "-c", script]);
        req.timeout = Duration::from_secs(cfg.sandbox.setup_timeout_secs);
        req.output_cap = 64 * 1024;
        let mut sink = |_, b: &[u8]| out.push(b);
        let result = tokio::select! {
            r = sandbox.exec(req, &mut sink) => r?,
            _ = cancel.cancelled() => return Err(RunError::Cancelled),
        };
        if result.exit_code != Some(0) {
            let why = match (result.timed_out, result.exit_code) {
                (true, _) => format!("timed out after {} s", cfg.sandbox.setup_timeout_secs),
                (false, Some(code)) => format!("exit code {code}"),
                (false, None) => "killed".to_owned(),
            };
            return Err(RunError::Prepare(format!(
                "{why}:\n{}",
                crate::text::tail(&String::from_utf8_lossy(&out.kept), TAIL)
            )));
        }
        deps.store.set_prepared(&task.id).await?;
        task.prepared = true;
        phase(&deps.store, &task.id, "prepare", t.elapsed(), None);
    }
    phase(&deps.store, &task.id, "ready", started.elapsed(), None);
    Ok(Provisioned {
        sandbox,
        command_timeout: applied.command_timeout,
    })
}
