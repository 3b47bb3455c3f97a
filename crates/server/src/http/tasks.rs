//! Task routes: create, list, get, follow-up, cancel.

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use dockhand_protocol::CreateTaskParams;
use dockhand_protocol::FollowUpParams;
use dockhand_protocol::ListTasksQuery;
use dockhand_protocol::Task;
use dockhand_protocol::TaskListResponse;
use dockhand_store::TaskRow;

use super::ApiError;
use super::ApiJson;
use crate::actor::Actor;
use crate::services::Services;
use crate::tasks::NewTaskInput;
use crate::tasks::TaskService;

/// A query string that does not parse is a 400 in the API's own shape.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::BadRequest {
        message: e.body_text(),
        fields: Default::default(),
    })
}

/// `POST /api/v1/tasks`.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = CreateTaskParams, responses(
    (status = 201, description = "Queued", body = Task),
    (status = 400, description = "Invalid input; `fields` names each bad field", body = dockhand_protocol::ErrorResponse),
    (status = 401, description = "No valid credentials", body = dockhand_protocol::ErrorResponse),
    (status = 413, description = "The prompt or body is too large", body = dockhand_protocol::ErrorResponse),
    (status = 415, description = "The body is not JSON", body = dockhand_protocol::ErrorResponse),
    (status = 429, description = "Too many tasks; see Retry-After", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn create(
    State(s): State<Arc<Services>>,
    actor: Actor,
    ApiJson(p): ApiJson<CreateTaskParams>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let input = NewTaskInput::parse(p, &s.config)?;
    let row = TaskService::new(&s).create(&actor, input, None).await?;
    Ok((StatusCode::CREATED, Json(row.to_api())))
}

/// `GET /api/v1/tasks`.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListTasksQuery), responses(
    (status = 200, description = "The caller's tasks (everyone's for an operator), newest first", body = TaskListResponse),
    (status = 400, description = "A bad status, cursor or limit", body = dockhand_protocol::ErrorResponse),
    (status = 401, description = "No valid credentials", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn list(
    State(s): State<Arc<Services>>,
    actor: Actor,
    q: Result<Query<ListTasksQuery>, QueryRejection>,
) -> Result<Json<TaskListResponse>, ApiError> {
    let page = TaskService::new(&s).list(&actor, query(q)?)?;
    Ok(Json(TaskListResponse {
        tasks: page.tasks.iter().map(TaskRow::to_api).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// `GET /api/v1/tasks/{id}`.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "The task's id")), responses(
    (status = 200, description = "The task", body = Task),
    (status = 404, description = "No such task, or not the caller's", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn show(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(TaskService::new(&s).get(&actor, &id)?.to_api()))
}

/// `POST /api/v1/tasks/{id}/messages`.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/messages", tag = "tasks", params(("id" = String, Path, description = "The task's id")), request_body = FollowUpParams, responses(
    (status = 202, description = "Delivered to the running task, or the finished task is queued again", body = Task),
    (status = 400, description = "Blank text", body = dockhand_protocol::ErrorResponse),
    (status = 404, description = "No such task, or not the caller's", body = dockhand_protocol::ErrorResponse),
    (status = 413, description = "The text is too large", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn follow_up(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<FollowUpParams>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = TaskService::new(&s).follow_up(&actor, &id, p.text).await?;
    Ok((StatusCode::ACCEPTED, Json(row.to_api())))
}

/// `POST /api/v1/tasks/{id}/cancel`.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path, description = "The task's id")), responses(
    (status = 202, description = "Cancelled (queued) or being stopped (running)", body = Task),
    (status = 404, description = "No such task, or not the caller's", body = dockhand_protocol::ErrorResponse),
    (status = 409, description = "The task already finished", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn cancel(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = TaskService::new(&s).cancel(&actor, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(row.to_api())))
}
