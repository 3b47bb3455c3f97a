//! Seeding a fresh workspace inside its sandbox: the coordinator hands over a
//! bundle of the base branch on one command's stdin, and the sandbox user
//! writes it and fetches from it in that same command, so the coordinator
//! never runs git in a workspace. The task's base and environment are recorded only once the
//! workspace holds them, so a crash before that seeds again.

use std::time::Duration;

use dockhand_forge::Environment;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use dockhand_store::TaskRow;
use tokio_util::sync::CancellationToken;

use super::super::error::RunError;
use super::super::events::phase;
use super::workspace::Fresh;
use crate::services::Services;
use crate::text::tail;

/// Runs as the sandbox user, the bundle on stdin: the base branch as a local branch tracking
/// `origin`, the task branch checked out (from the bundle's `$5` when it
/// continues one, else new from the base), the bundle gone.
pub const SCRIPT: &str = r#"set -eu
base="$1"; branch="$2"; origin="$3"; task_ref="$4"
bundle=/workspace/.dockhand-seed.bundle
cat > "$bundle"
cd /workspace
git init --quiet
git remote add -t "$base" origin "$origin"
set -- "+refs/heads/$base:refs/remotes/origin/$base"
[ -z "$task_ref" ] || set -- "$@" "+$task_ref:refs/heads/$branch"
git -c core.hooksPath=/dev/null fetch --quiet --no-tags "$bundle" "$@"
rm -f -- "$bundle"
git branch --quiet --track "$base" "refs/remotes/origin/$base"
if [ -n "$task_ref" ]; then
  git -c core.hooksPath=/dev/null checkout --quiet "$branch"
else
  git -c core.hooksPath=/dev/null checkout --quiet -b "$branch" "$base"
fi
"#;

/// Seeds the workspace from `fresh` and records the task's base and environment.
pub(super) async fn seed(
    s: &Services,
    task: &mut TaskRow,
    sandbox: &dyn Sandbox,
    fresh: Fresh,
    env: &Environment,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let failed = |why: String| RunError::Io(format!("seeding the workspace: {why}"));
    let base = &fresh.base;
    let argv = ["sh", "-c", SCRIPT, "seed", &base.branch];
    let task_ref = fresh.task_ref.as_deref().unwrap_or("");
    let rest = [task.branch.as_str(), &fresh.origin, task_ref];
    let mut req = ExecRequest::new(argv.into_iter().chain(rest));
    req.stdin = Some(fresh.bundle);
    req.timeout = Duration::from_secs(s.config.sandbox.setup_timeout_secs);
    let mut quiet = |_, _: &[u8]| {};
    let out = tokio::select! {
        r = sandbox.exec(req, &mut quiet) => r.map_err(|e| failed(e.to_string()))?,
        _ = cancel.cancelled() => return Err(RunError::Cancelled),
    };
    if out.exit_code != Some(0) {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(failed(tail(said.trim(), 2000)));
    }
    let env_json = serde_json::to_string(env).map_err(|e| RunError::Io(e.to_string()))?;
    let store = &s.store;
    store
        .set_base(&task.id, base.branch.clone(), base.commit.clone())
        .await?;
    let ws = task.workspace.clone().unwrap_or_default();
    store.set_workspace(&task.id, ws, env_json).await?;
    let short = &base.commit[..base.commit.len().min(12)];
    let detail = Some(match &fresh.task_ref {
        None => format!("{} at {short}{}", base.branch, fresh.via),
        Some(_) => format!(
            "{} continued from its branch{} (the workspace had been removed)",
            task.branch, fresh.via
        ),
    });
    phase(store, &task.id, "clone", fresh.started.elapsed(), detail);
    task.base_ref = Some(base.branch.clone());
    task.base_commit = Some(base.commit.clone());
    task.prepared = false;
    Ok(())
}
