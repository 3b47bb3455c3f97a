//! Task routes: create, list, get, follow-up, cancel.

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::routing::post;
use dockhand_protocol::CreateTaskParams;
use dockhand_protocol::FollowUpParams;
use dockhand_protocol::Task;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskListResponse;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::task_branch;
use dockhand_store::CancelOutcome;
use dockhand_store::NewTask;
use dockhand_store::TaskCursor;
use dockhand_store::TaskFilter;
use dockhand_store::TaskRow;
use serde::Deserialize;
use std::sync::Arc;

use super::ApiError;
use super::ApiJson;
use crate::auth::AuthUser;
use crate::auth::ClientIp;
use crate::services::Services;

pub(super) fn router() -> Router<Arc<Services>> {
    Router::new()
        .route("/api/v1/tasks", post(create).get(list))
        .route("/api/v1/tasks/{id}", get(show))
        .route("/api/v1/tasks/{id}/messages", post(follow_up))
        .route("/api/v1/tasks/{id}/cancel", post(cancel))
}

/// Loads a task the user may see; others' tasks answer 404 like missing ones.
pub(super) fn load_task(state: &Services, user: &AuthUser, id: &str) -> Result<TaskRow, ApiError> {
    let id = TaskId::parse(id).ok_or_else(ApiError::task_not_found)?;
    let row = state
        .store
        .get_task(&id)?
        .ok_or_else(ApiError::task_not_found)?;
    if row.user_id != user.0.id && !user.is_operator() {
        return Err(ApiError::task_not_found());
    }
    Ok(row)
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if text.len() > max {
        return Err(ApiError::field_too_large(
            field,
            format!(
                "is {} bytes; the limit is {max} (limits.max_prompt_bytes)",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn check_branch(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && !name.ends_with(".lock")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field("base_branch", "is not a valid branch name"))
    }
}

fn title_of(prompt: &str) -> String {
    let line = prompt.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= 80 {
        line.to_owned()
    } else {
        let mut t: String = line.chars().take(79).collect();
        t.push('…');
        t
    }
}

/// Per-user and per-IP task limits, and the cap on a user's queued or running tasks.
fn check_task_limits(state: &Services, user: &AuthUser, ip: Option<&str>) -> Result<(), ApiError> {
    let limits = &state.config.auth.rate_limits;
    let limited = |wait| ApiError::RateLimited {
        message: "too many tasks started; wait a moment".into(),
        retry_after: wait,
    };
    state
        .auth
        .limiter
        .check("tasks-user", &user.0.id.to_string(), limits.tasks_per_user)
        .map_err(limited)?;
    if let Some(ip) = ip {
        state
            .auth
            .limiter
            .check_ip("tasks-ip", ip, limits.tasks_per_ip)
            .map_err(limited)?;
    }
    let cap = state.config.auth.max_active_tasks_per_user;
    if state.store.active_task_count(user.0.id)? >= cap {
        return Err(ApiError::RateLimited {
            message: format!(
                "you have {cap} tasks queued or running (auth.max_active_tasks_per_user); wait for one to finish"
            ),
            retry_after: std::time::Duration::from_secs(30),
        });
    }
    Ok(())
}

async fn create(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(p): ApiJson<CreateTaskParams>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = create_task(&state, &user, Some(&ip), p, None).await?;
    Ok((StatusCode::CREATED, Json(row.to_api())))
}

/// Validates and queues a task (for the API and GitHub triggers). `ip` is `None`
/// when the request did not come from the client directly.
pub(crate) async fn create_task(
    state: &Services,
    user: &AuthUser,
    ip: Option<&str>,
    p: CreateTaskParams,
    origin_issue: Option<String>,
) -> Result<TaskRow, ApiError> {
    let cfg = &state.config;
    check_text("prompt", &p.prompt, cfg.limits.max_prompt_bytes)?;
    let repo = p.repo.trim().to_owned();
    let source =
        dockhand_forge::resolve_repo(&repo, cfg.local_repos_allowed(), &cfg.github.web_url)
            .map_err(|e| ApiError::field("repo", e.to_string()))?;
    if let dockhand_forge::RepoSource::Remote { url } = &source {
        let mirrors = &state.forge.mirrors;
        mirrors
            .check(url)
            .await
            .map_err(|e| ApiError::field("repo", e.to_string()))?;
    }
    if let Some(b) = &p.base_branch {
        check_branch(b)?;
    }
    let model = match p.model {
        Some(m) => {
            let ok = !m.is_empty()
                && m.len() <= 100
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:@/".contains(c));
            if !ok {
                return Err(ApiError::field("model", "is not a valid model id"));
            }
            m
        }
        None => cfg.model.name.clone(),
    };
    if let Some(image) = &p.image {
        let ok = !image.is_empty()
            && image.len() <= 255
            && !image.starts_with('-')
            && image
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if !ok {
            return Err(ApiError::field("image", "is not an image reference"));
        }
        let docker = state.docker.clone();
        crate::policy::image_allowed(cfg, docker.as_deref(), image, user.0.id)
            .await
            .map_err(|why| ApiError::field("image", why))?;
    }
    check_task_limits(state, user, ip)?;
    let id = TaskId::generate();
    let row = state
        .store
        .create_task(NewTask {
            branch: task_branch(&id, &p.prompt),
            id,
            user_id: user.0.id,
            repo,
            title: title_of(&p.prompt),
            prompt: p.prompt,
            base_branch: p.base_branch,
            model,
            image: p.image,
            origin_issue,
        })
        .await?;
    state.scheduler.wake();
    Ok(row)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    repo: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskListResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest {
        message: e.body_text(),
        fields: Default::default(),
    })?;
    let status = match q.status.as_deref() {
        Some(s) => Some(
            TaskStatus::parse(s)
                .ok_or_else(|| ApiError::field("status", format!("unknown status {s:?}")))?,
        ),
        None => None,
    };
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(
            TaskCursor::decode(c)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this API"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let filter = TaskFilter {
        user_id: (!user.is_operator()).then_some(user.0.id),
        status,
        repo: q.repo,
    };
    let (rows, next) = state.store.list_tasks(&filter, cursor.as_ref(), limit)?;
    Ok(Json(TaskListResponse {
        tasks: rows.iter().map(TaskRow::to_api).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

async fn show(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(load_task(&state, &user, &id)?.to_api()))
}

async fn follow_up(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<FollowUpParams>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = load_task(&state, &user, &id)?;
    check_text("text", &p.text, state.config.limits.max_prompt_bytes)?;
    if row.status.is_terminal() {
        check_task_limits(&state, &user, Some(&ip))?;
    }
    state.store.follow_up(&row.id, p.text).await?;
    state.scheduler.wake();
    let row = state
        .store
        .get_task(&row.id)?
        .ok_or_else(ApiError::task_not_found)?;
    Ok((StatusCode::ACCEPTED, Json(row.to_api())))
}

async fn cancel(
    State(state): State<Arc<Services>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = load_task(&state, &user, &id)?;
    let who = user.0.login.clone();
    match state
        .scheduler
        .cancel(&row.id, format!("cancelled by {who}"))
        .await?
    {
        CancelOutcome::AlreadyFinished => {
            return Err(ApiError::Conflict(format!(
                "the task already finished ({})",
                row.status
            )));
        }
        CancelOutcome::Cancelled | CancelOutcome::Requested => {}
    }
    let row = state
        .store
        .get_task(&row.id)?
        .ok_or_else(ApiError::task_not_found)?;
    Ok((StatusCode::ACCEPTED, Json(row.to_api())))
}
