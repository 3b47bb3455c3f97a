//! Cleaning up after tasks: containers of finished tasks after their idle window,
//! orphaned containers at start-up, and `gc` (old workspaces, stale environment
//! images), which never removes a workspace holding unpublished work.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dockhand_protocol::GcItem;
use dockhand_protocol::GcReport;
use dockhand_protocol::TaskStatus;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::docker::LABEL_COORDINATOR;
use dockhand_sandbox::docker::LABEL_POOL;
use dockhand_sandbox::docker::env_cache::list_env_images;
use dockhand_sandbox::docker::env_cache::remove_image;
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

/// Container ids that must stay: those of tasks a runner owns or will resume, and
/// those of finished tasks still inside their idle window.
fn wanted_containers(deps: &Services) -> HashSet<String> {
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

/// Containers this coordinator made that nothing needs.
async fn orphans(deps: &Services, docker: &DockerProvider) -> Vec<String> {
    let me = &docker.config().coordinator_id;
    let keep = wanted_containers(deps);
    match docker.list_all().await {
        Ok(all) => all
            .into_iter()
            .filter(|c| c.labels.get(LABEL_COORDINATOR) == Some(me) && !keep.contains(&c.id))
            // A container waiting in the warm pool is not an orphan.
            .filter(|c| {
                !c.labels
                    .get(LABEL_POOL)
                    .is_some_and(|slot| docker.pool_has(slot))
            })
            .map(|c| c.id)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing containers");
            Vec::new()
        }
    }
}

/// At start-up: remove this coordinator's containers that no task needs (old warm-pool
/// containers included; the pool is refilled).
pub async fn remove_orphans(deps: &Services) {
    let Some(docker) = &deps.docker else { return };
    for id in orphans(deps, docker).await {
        tracing::info!(container = %&id[..id.len().min(12)], "removing orphaned container");
        if let Err(e) = docker.remove_container(&id).await {
            tracing::warn!(error = %e, "removing an orphaned container");
        }
    }
}

/// Removes containers of finished tasks once their idle window has passed.
pub async fn reap_idle(deps: &Services) {
    let Some(docker) = &deps.docker else { return };
    let idle_ms = deps.config.sandbox.idle_secs as i64 * 1000;
    for t in deps.store.finished_with_sandbox().unwrap_or_default() {
        let expired = t.finished_at.is_none_or(|f| f + idle_ms <= now_ms());
        let Some(sandbox) = t.sandbox.filter(|s| s.backend == "docker") else {
            continue;
        };
        if !expired {
            continue;
        }
        match docker.remove_container(&sandbox.id).await {
            Ok(()) => {
                // Only forget it if the task is still finished (a follow-up may have claimed it).
                let current = deps.store.get_task(&t.id).ok().flatten();
                if current
                    .is_some_and(|c| c.status.is_terminal() && c.sandbox.as_ref() == Some(&sandbox))
                {
                    let _ = deps.store.set_sandbox(&t.id, None).await;
                }
            }
            Err(e) => tracing::warn!(task = %t.id, error = %e, "removing an idle container"),
        }
    }
}

/// Runs [`reap_idle`] every so often until the coordinator stops.
pub fn spawn_reaper(deps: Arc<Services>, stop: tokio_util::sync::CancellationToken) {
    if deps.docker.is_none() {
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

/// Removes (or, with `dry_run`, lists) old workspaces, orphaned containers and
/// stale environment images.
pub async fn gc(deps: &Services, dry_run: bool) -> GcReport {
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let cfg = &deps.config.retention;
    let day_ms = 24 * 60 * 60 * 1000;
    let cutoff = now_ms() - cfg.workspace_days as i64 * day_ms;
    for t in deps.store.finished_with_workspace().unwrap_or_default() {
        let Some(path) = t.workspace.clone() else {
            continue;
        };
        let task = Some(t.id.to_string());
        let finished = t.finished_at.unwrap_or(0);
        let days = (now_ms() - finished) / day_ms;
        if t.workspace_dirty {
            let why = match t.status {
                TaskStatus::Succeeded => "its last changes were never handed back",
                _ => {
                    "it may hold changes that were never handed back (the last run did not publish)"
                }
            };
            report.workspaces.push(item(path, task, "kept", why));
        } else if finished > cutoff {
            report.workspaces.push(item(
                path,
                task,
                "kept",
                format!("finished {days} days ago; kept for {}", cfg.workspace_days),
            ));
        } else if dry_run {
            report.workspaces.push(item(
                path,
                task,
                "remove",
                format!("finished {days} days ago, everything handed back"),
            ));
        } else {
            match remove_dir(Path::new(&path)) {
                Ok(()) => {
                    let _ = deps.store.set_workspace_removed(&t.id).await;
                    report.workspaces.push(item(
                        path,
                        task,
                        "removed",
                        format!("finished {days} days ago"),
                    ));
                }
                Err(e) => report
                    .workspaces
                    .push(item(path, task, "failed", e.to_string())),
            }
        }
    }
    let Some(docker) = &deps.docker else {
        return report;
    };
    for id in orphans(deps, docker).await {
        let short = id[..id.len().min(12)].to_owned();
        let action = if dry_run {
            "remove"
        } else {
            match docker.remove_container(&id).await {
                Ok(()) => "removed",
                Err(_) => "failed",
            }
        };
        report
            .containers
            .push(item(short, None, action, "no task needs it"));
    }
    let uses = deps.store.env_image_uses().unwrap_or_default();
    let image_cutoff = now_ms() - cfg.env_image_days as i64 * day_ms;
    match list_env_images(docker.client()).await {
        Ok(images) => {
            for img in images {
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
                let days = (now_ms() - last) / day_ms;
                if last > image_cutoff {
                    report.images.push(item(
                        img.image,
                        None,
                        "kept",
                        format!("used {days} days ago"),
                    ));
                } else if dry_run {
                    report.images.push(item(
                        img.image,
                        None,
                        "remove",
                        format!("unused for {days} days"),
                    ));
                } else {
                    let action = if remove_image(docker.client(), &img.image).await.is_ok() {
                        "removed"
                    } else {
                        "failed"
                    };
                    report.images.push(item(
                        img.image,
                        None,
                        action,
                        format!("unused for {days} days"),
                    ));
                }
            }
        }
        Err(e) => report
            .images
            .push(item("environment images", None, "failed", e.to_string())),
    }
    report
}
