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
pub(super) async fn show(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(TaskService::new(&s).get(&actor, &id)?.to_api()))
}

/// `POST /api/v1/tasks/{id}/messages`.
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
pub(super) async fn cancel(
    State(s): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let row = TaskService::new(&s).cancel(&actor, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(row.to_api())))
}
