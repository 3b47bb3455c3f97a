//! Cleaning up after tasks: kept sandboxes (docker containers) of finished tasks
//! after their idle window, orphaned ones at start-up, and `gc` (old workspaces,
//! stale environment images), which never removes a workspace holding
//! unpublished work. Backends whose sandboxes go with their run need none of the
//! sandbox part.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dockhand_protocol::GcItem;
use dockhand_protocol::GcReport;
use dockhand_protocol::TaskStatus;
use dockhand_sandbox::Images;
use dockhand_sandbox::SandboxProvider;
use dockhand_store::now_ms;

use crate::services::Services;

fn item(
    what: impl Into<String>,
    task: Option<String>,
    action: &str,
    reason: impl Into<String>,
) -> GcItem {
    GcItem {
        what: what.into(),
        task,
        action: action.to_owned(),
        reason: reason.into(),
    }
}

/// Sandbox ids that must stay: those of tasks a runner owns or will resume, and
/// those of finished tasks still inside their idle window.
fn wanted_sandboxes(deps: &Services) -> HashSet<String> {
    let idle_ms = deps.config.sandbox.idle_secs as i64 * 1000;
    let mut keep: HashSet<String> = HashSet::new();
    for t in deps.store.active_tasks().unwrap_or_default() {
        keep.extend(t.sandbox.map(|s| s.id));
    }
    for t in deps.store.finished_with_sandbox().unwrap_or_default() {
        if t.finished_at.is_some_and(|f| f + idle_ms > now_ms()) {
            keep.extend(t.sandbox.map(|s| s.id));
        }
    }
    keep
}

/// Kept sandboxes this coordinator made that nothing needs (warm-pool ones
/// waiting for a task are not listed by the provider).
async fn orphans(deps: &Services, provider: &dyn SandboxProvider) -> Vec<String> {
    if !provider.keeps_finished() {
        return Vec::new();
    }
    let keep = wanted_sandboxes(deps);
    match provider.list().await {
        Ok(all) => all
            .into_iter()
            .map(|s| s.id)
            .filter(|id| !keep.contains(id))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing sandboxes");
            Vec::new()
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// At start-up: remove this coordinator's kept sandboxes that no task needs (old
/// warm-pool containers included; the pool is refilled).
pub async fn remove_orphans(deps: &Services) {
    let provider = &*deps.sandboxes;
    for id in orphans(deps, provider).await {
        tracing::info!(sandbox = %short(&id), "removing an orphaned sandbox");
        if let Err(e) = provider.remove(&id).await {
            tracing::warn!(error = %e, "removing an orphaned sandbox");
        }
    }
}

/// Removes kept sandboxes of finished tasks once their idle window has passed.
pub async fn reap_idle(deps: &Services) {
    let provider = &*deps.sandboxes;
    if !provider.keeps_finished() {
        return;
    }
    let idle_ms = deps.config.sandbox.idle_secs as i64 * 1000;
    for t in deps.store.finished_with_sandbox().unwrap_or_default() {
        let expired = t.finished_at.is_none_or(|f| f + idle_ms <= now_ms());
        let Some(sandbox) = t.sandbox.filter(|s| s.backend == provider.backend()) else {
            continue;
        };
        if !expired {
            continue;
        }
        match provider.remove(&sandbox.id).await {
            Ok(()) => {
                // Only forget it if the task is still finished (a follow-up may have claimed it).
                let current = deps.store.get_task(&t.id).ok().flatten();
                if current
                    .is_some_and(|c| c.status.is_terminal() && c.sandbox.as_ref() == Some(&sandbox))
                {
                    let _ = deps.store.set_sandbox(&t.id, None).await;
                }
            }
            Err(e) => tracing::warn!(task = %t.id, error = %e, "removing an idle sandbox"),
        }
    }
}

/// Runs [`reap_idle`] every so often until the coordinator stops.
pub fn spawn_reaper(deps: Arc<Services>, stop: tokio_util::sync::CancellationToken) {
    if !deps.sandboxes.keeps_finished() {
        return;
    }
    let every = Duration::from_secs((deps.config.sandbox.idle_secs / 4).clamp(1, 30));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => reap_idle(&deps).await,
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// How long webhook deliveries are remembered, and ended sessions kept.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old deliveries, ended sessions and expired sign-in state go.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prunes, on a schedule, what would otherwise grow without bound: webhook
/// deliveries, ended sessions with their refresh tokens, and expired sign-in
/// state and WebSocket tickets.
pub fn spawn_pruner(services: Arc<Services>, stop: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        loop {
            services.auth.purge();
            let before = dockhand_store::now_ms() - KEEP_ENDED.as_millis() as i64;
            match services.store.prune(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned old deliveries and sessions"),
                Err(e) => tracing::warn!(error = %e, "pruning old deliveries and sessions"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

fn remove_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes (or, with `dry_run`, lists) old workspaces, orphaned sandboxes and
/// stale environment images.
pub async fn gc(deps: &Services, dry_run: bool) -> GcReport {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    report.workspaces = old_workspaces(deps, dry_run).await;
    report.containers = orphaned_sandboxes(deps, dry_run).await;
    if let Some(images) = deps.sandboxes.images() {
        report.images = stale_images(deps, images, dry_run).await;
    }
    report
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Workspaces of tasks finished longer ago than `retention.workspace_days`,
/// unless they may hold work never handed back.
async fn old_workspaces(deps: &Services, dry_run: bool) -> Vec<GcItem> {
    let keep_days = deps.config.retention.workspace_days;
    let cutoff = now_ms() - keep_days as i64 * DAY_MS;
    let mut items = Vec::new();
    for t in deps.store.finished_with_workspace().unwrap_or_default() {
        let Some(path) = t.workspace.clone() else {
            continue;
        };
        let task = Some(t.id.to_string());
        let finished = t.finished_at.unwrap_or(0);
        let days = (now_ms() - finished) / DAY_MS;
        let (action, why) = if t.workspace_dirty {
            let why = match t.status {
                TaskStatus::Succeeded => "its last changes were never handed back",
                _ => {
                    "it may hold changes that were never handed back (the last run did not publish)"
                }
            };
            ("kept", why.to_owned())
        } else if finished > cutoff {
            let why = format!("finished {days} days ago; kept for {keep_days}");
            ("kept", why)
        } else if dry_run {
            let why = format!("finished {days} days ago, everything handed back");
            ("remove", why)
        } else {
            match remove_dir(Path::new(&path)) {
                Ok(()) => {
                    let _ = deps.store.set_workspace_removed(&t.id).await;
                    ("removed", format!("finished {days} days ago"))
                }
                Err(e) => ("failed", e.to_string()),
            }
        };
        items.push(item(path, task, action, why));
    }
    items
}

/// Kept sandboxes no task needs.
async fn orphaned_sandboxes(deps: &Services, dry_run: bool) -> Vec<GcItem> {
    let provider = &*deps.sandboxes;
    let mut items = Vec::new();
    for id in orphans(deps, provider).await {
        let action = if dry_run {
            "remove"
        } else {
            match provider.remove(&id).await {
                Ok(()) => "removed",
                Err(_) => "failed",
            }
        };
        items.push(item(short(&id), None, action, "no task needs it"));
    }
    items
}

/// Environment images unused for longer than `retention.env_image_days`.
async fn stale_images(deps: &Services, images: &dyn Images, dry_run: bool) -> Vec<GcItem> {
    let uses = deps.store.env_image_uses().unwrap_or_default();
    let cutoff = now_ms() - deps.config.retention.env_image_days as i64 * DAY_MS;
    let found = match images.list().await {
        Ok(found) => found,
        Err(e) => return vec![item("environment images", None, "failed", e.to_string())],
    };
    let mut items = Vec::new();
    for img in found {
        let last = uses
            .iter()
            .find(|u| u.image == img.image)
            .map(|u| u.last_used)
            .or_else(|| {
                img.last_used
                    .or(Some(img.created))
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as i64)
            })
            .unwrap_or(0);
        let days = (now_ms() - last) / DAY_MS;
        let (action, why) = if last > cutoff {
            ("kept", format!("used {days} days ago"))
        } else if dry_run {
            ("remove", format!("unused for {days} days"))
        } else if images.remove(&img.image).await.is_ok() {
            ("removed", format!("unused for {days} days"))
        } else {
            ("failed", format!("unused for {days} days"))
        };
        items.push(item(img.image, None, action, why));
    }
    items
}
