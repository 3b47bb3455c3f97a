//! Following a task's events over the WebSocket, reconnecting with `after=SEQ`
//! so nothing is missed or shown twice.

use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::ControlKind;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::WsMessage;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::connect::Connection;
use crate::render::Renderer;

/// Consecutive failed connection attempts before giving up.
const MAX_FAILURES: u32 = 30;

/// Streams events after `after` until the task ends; returns how it ended.
pub async fn follow(conn: &Connection, id: &TaskId, after: u64, json: bool) -> Result<TaskStatus> {
    let client = &conn.client;
    let ws_base = client.base().replacen("http", "ws", 1);
    let mut renderer = Renderer::new(json);
    let mut last = after;
    let mut failures = 0u32;
    loop {
        let url = format!("{ws_base}/api/v1/tasks/{id}/events?after={last}");
        let mut req = url
            .as_str()
            .into_client_request()
            .context("building the WebSocket request")?;
        let auth = HeaderValue::from_str(&format!("Bearer {}", client.bearer().await?))
            .context("the token is not a valid header")?;
        req.headers_mut().insert("authorization", auth);
        let mut ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => {
                failures = 0;
                ws
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_FAILURES {
                    bail!("following {id}: {e}");
                }
                renderer.note(&format!("connection lost ({e}); reconnecting"));
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
                continue;
            }
        };
        let mut caught_up = false;
        while let Some(msg) = ws.next().await {
            let Ok(Message::Text(text)) = msg else {
                if msg.is_err() {
                    break;
                }
                continue;
            };
            let Ok(parsed) = serde_json::from_str::<WsMessage>(&text) else {
                continue;
            };
            match parsed {
                WsMessage::Event(e) => {
                    if e.seq <= last {
                        continue;
                    }
                    last = e.seq;
                    renderer.event_raw(&e, &text);
                    if let EventBody::Status(s) = &e.body
                        && caught_up
                        && s.status.is_terminal()
                    {
                        return Ok(s.status);
                    }
                }
                WsMessage::Delta(d) => renderer.delta(&d),
                WsMessage::Control(c) => match c.control {
                    ControlKind::CaughtUp => {
                        caught_up = true;
                        let task = client.get_task(id.as_str()).await?;
                        if task.status.is_terminal() && task.last_seq <= last {
                            return Ok(task.status);
                        }
                    }
                    ControlKind::Resume => break,
                },
            }
        }
    }
}
