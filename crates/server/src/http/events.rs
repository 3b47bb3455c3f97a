//! `GET /api/v1/tasks/{id}/events?after=SEQ`: stored events as JSON, or, with a
//! WebSocket upgrade, the stored events and then the live ones.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::Message;
use axum::extract::ws::Utf8Bytes;
use axum::extract::ws::WebSocket;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use dockhand_protocol::ControlKind;
use dockhand_protocol::ControlMessage;
use dockhand_protocol::EventsQuery;
use dockhand_protocol::TaskId;

use super::ApiError;
use crate::actor::Actor;
use crate::hub::HubMsg;
use crate::services::Services;
use crate::tasks::TaskService;

/// Events per page when replaying from the store.
const PAGE: usize = 500;
/// A send that takes longer than this means the client has stalled.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/v1/tasks/{id}/events`: a page of stored events, or the stream.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks", params(("id" = String, Path, description = "The task's id")), params(EventsQuery), responses(
    (status = 200, description = "Stored events after `after`; with a WebSocket upgrade, the stored events, a `caught_up` control message, then live events and deltas", body = dockhand_protocol::EventsResponse),
    (status = 101, description = "Switched to the WebSocket"),
    (status = 404, description = "No such task, or not the caller's", body = dockhand_protocol::ErrorResponse),
))]
pub(super) async fn events(
    State(state): State<Arc<Services>>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let q = super::tasks::query(q)?;
    let tasks = TaskService::new(&state);
    let after = q.after.unwrap_or(0);
    let wants_ws = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if wants_ws {
        let task = tasks.get(&actor, &id)?.id;
        let ws = ws.map_err(|e| ApiError::BadRequest {
            message: e.body_text(),
            fields: Default::default(),
        })?;
        return Ok(ws
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(64 * 1024)
            .on_upgrade(move |socket| stream(socket, state, task, after))
            .into_response());
    }
    let events = tasks.events(&actor, &id, after, q.limit.unwrap_or(1000))?;
    let mut body =
        String::with_capacity(events.iter().map(|(_, j)| j.len() + 1).sum::<usize>() + 16);
    body.push_str(r#"{"events":["#);
    for (i, (_, json)) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn send(socket: &mut WebSocket, text: Utf8Bytes) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await,
        Ok(Ok(()))
    )
}

async fn send_control(
    socket: &mut WebSocket,
    control: ControlKind,
    after: u64,
    message: Option<String>,
) -> bool {
    let msg = ControlMessage {
        control,
        after,
        message,
    };
    match serde_json::to_string(&msg) {
        Ok(json) => send(socket, Utf8Bytes::from(json)).await,
        Err(_) => false,
    }
}

/// Sends stored events after `last` (up to `until`, if given); returns the new last seq.
async fn replay(
    socket: &mut WebSocket,
    state: &Services,
    task: &TaskId,
    mut last: u64,
    until: Option<u64>,
) -> Option<u64> {
    loop {
        let page = state.store.events_after_json(task, last, PAGE).ok()?;
        let full = page.len() == PAGE;
        for (seq, json) in page {
            if until.is_some_and(|u| seq > u) {
                return Some(last);
            }
            if !send(socket, Utf8Bytes::from(json)).await {
                return None;
            }
            last = seq;
        }
        if !full {
            return Some(last);
        }
    }
}

/// Subscribe first, then replay from the store, then follow live events,
/// skipping any already sent: nothing is missed and nothing is sent twice.
async fn stream(mut socket: WebSocket, state: Arc<Services>, task: TaskId, after: u64) {
    let last_seq = state.store.last_seq(&task).unwrap_or(0);
    let mut sub = state.hub.subscribe(&task, last_seq);
    let Some(mut last) = replay(&mut socket, &state, &task, after, None).await else {
        return;
    };
    if !send_control(&mut socket, ControlKind::CaughtUp, last, None).await {
        return;
    }
    loop {
        tokio::select! {
            msg = sub.rx.recv() => match msg {
                Some(HubMsg::Event { seq, json }) => {
                    if seq <= last {
                        continue;
                    }
                    // Defensive: fill any gap from the store before the live event.
                    if seq > last + 1 && replay(&mut socket, &state, &task, last, Some(seq - 1)).await.is_none() {
                        return;
                    }
                    if !send(&mut socket, json).await {
                        return;
                    }
                    last = seq;
                }
                Some(HubMsg::Delta(json)) => {
                    if !send(&mut socket, json).await {
                        return;
                    }
                }
                None => {
                    let message = sub
                        .overflowed
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .then(|| "this connection fell behind; reconnect with after=SEQ".to_owned());
                    let _ = send_control(&mut socket, ControlKind::Resume, last, message).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
