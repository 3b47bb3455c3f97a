//! The repository's environment within the operator's policy: the network
//! level, limits and image that apply (with a `policy` phase event for each
//! request not granted), and `setup` baked into a cached environment image.

use std::time::Duration;
use std::time::Instant;

use dockhand_forge::Environment;
use dockhand_protocol::ErrorEvent;
use dockhand_protocol::EventBody;
use dockhand_sandbox::EnvironmentBuild;
use dockhand_sandbox::SandboxError;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use super::super::error::RunError;
use super::super::events::StepOutput;
use super::super::events::phase;
use crate::policy::Applied;
use crate::services::Services;

/// What applies to the task, each request above the ceiling noted.
pub(super) fn policy(s: &Services, task: &TaskRow, env: &Environment) -> Applied {
    let applied = crate::policy::apply(&s.config, env);
    for note in &applied.notes {
        phase(
            &s.store,
            &task.id,
            "policy",
            Duration::ZERO,
            Some(note.clone()),
        );
    }
    applied
}

/// The image the sandbox runs: the task's own choice (checked when it was
/// submitted), else the repository's when the policy grants it, with `setup`
/// baked in when the repository has one. `None` is the default image.
pub(super) async fn image(
    s: &Services,
    task: &TaskRow,
    env: &Environment,
    applied: &Applied,
    cancel: &CancellationToken,
) -> Result<Option<String>, RunError> {
    let mut image = task.image.clone();
    if let (None, Some(asked)) = (&image, &env.image) {
        image = granted(s, task, asked).await;
    }
    match env.setup.as_deref() {
        Some(script) => setup(s, task, script, applied, image, cancel).await,
        None => Ok(image),
    }
}

/// The repository's image if the policy allows it; otherwise a `policy` note.
async fn granted(s: &Services, task: &TaskRow, asked: &str) -> Option<String> {
    let cfg = &s.config;
    match crate::policy::image_allowed(cfg, s.sandboxes.images(), asked, task.user_id).await {
        Ok(()) => Some(asked.to_owned()),
        Err(why) => {
            let detail = format!(
                "image: the repository asked for {asked:?}, which {why}; the default image {:?} applies",
                cfg.default_image()
            );
            phase(&s.store, &task.id, "policy", Duration::ZERO, Some(detail));
            None
        }
    }
}

/// Builds (or finds cached) the environment image with `setup` run on `base`.
async fn setup(
    s: &Services,
    task: &TaskRow,
    script: &str,
    applied: &Applied,
    base: Option<String>,
    cancel: &CancellationToken,
) -> Result<Option<String>, RunError> {
    let Some(images) = s.sandboxes.images() else {
        let message = format!(
            "this repository's environment has `setup`, which needs a backend that runs images \
             (docker); the {} backend skipped it",
            s.sandboxes.backend()
        );
        let _ = s
            .store
            .append(&task.id, EventBody::Error(ErrorEvent { message }));
        return Ok(base);
    };
    let t = Instant::now();
    let cfg = &s.config;
    let mut out = StepOutput::new(&s.store, &task.id, "setup");
    let build = EnvironmentBuild {
        base_image: base,
        setup: script.to_owned(),
        owner: task.user_id.to_string(),
        repo: task.repo.clone(),
        network: crate::policy::setup_network(cfg, applied.network),
        limits: applied.limits,
        timeout: Duration::from_secs(cfg.sandbox.setup_timeout_secs),
    };
    let mut output = |b: &[u8]| out.push(b);
    let built = tokio::select! {
        r = images.build(&build, &mut output) => r,
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
    };
    let built = built.map_err(|e| match e {
        SandboxError::Environment(why) => RunError::Setup(why),
        other => RunError::Sandbox(other),
    })?;
    s.store.touch_env_image(&built.image).await?;
    let how = if built.built { "built" } else { "cached" };
    let detail = Some(format!("{how} {}", built.image));
    phase(&s.store, &task.id, "setup", t.elapsed(), detail);
    Ok(Some(built.image))
}
