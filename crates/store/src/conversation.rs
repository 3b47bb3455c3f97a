//! The model conversation (`messages`), waiting user input (`inbox`) and tool calls.
//! Together they are enough to reload a task's conversation and continue it.

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::ToolCallEvent;
use dockhand_protocol::ToolResultEvent;
use rusqlite::params;
use serde_json::Value;

use crate::Result;
use crate::Store;
use crate::StoreError;
use crate::column::text_column;

/// Who wrote a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRole {
    /// The person, or tool results.
    User,
    /// The model.
    Assistant,
}

text_column!(MessageRole {
    User => "user",
    Assistant => "assistant",
});

/// As the stored text, which is also how the Messages API spells roles.
impl serde::Serialize for MessageRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One stored message: the role and the content blocks as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    /// Position in the conversation, from 0.
    pub idx: u32,
    /// Who wrote it.
    pub role: MessageRole,
    /// The content blocks, as a JSON array.
    pub content: String,
}

/// A user message that the runner has not yet put into the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxItem {
    /// Its id.
    pub id: i64,
    /// The text.
    pub text: String,
}

/// Where a tool call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolCallState {
    /// Started; no result recorded. After a restart this means it was interrupted.
    Running,
    /// Ended with a result.
    Done,
}

text_column!(ToolCallState {
    Running => "running",
    Done => "done",
});

/// A stored tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCallRow {
    /// The model's `tool_use` id.
    pub tool_use_id: String,
    /// Tool name.
    pub name: String,
    /// Tool input.
    pub input: Value,
    /// State.
    pub state: ToolCallState,
    /// The result text sent to the model.
    pub output: Option<String>,
    /// Whether the result was an error.
    pub is_error: bool,
    /// Exit code, for commands.
    pub exit_code: Option<i32>,
    /// Started, ms.
    pub started_at: i64,
    /// Ended, ms.
    pub finished_at: Option<i64>,
}

/// A finished tool call, to record.
#[derive(Clone, Debug)]
pub struct ToolCallResult {
    /// The `tool_use` id.
    pub tool_use_id: String,
    /// Tool name.
    pub name: String,
    /// Result text sent to the model.
    pub output: String,
    /// Whether it is an error result.
    pub is_error: bool,
    /// Exit code, for commands.
    pub exit_code: Option<i32>,
    /// Wall time.
    pub duration_ms: u64,
}

impl Store {
    /// The conversation, in order.
    pub fn messages(&self, task: &TaskId) -> Result<Vec<StoredMessage>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, role, content FROM messages WHERE task_id = ?1 ORDER BY idx",
            )?;
            let rows = stmt.query_map([task.as_str()], |r| {
                Ok(StoredMessage {
                    idx: r.get::<_, i64>(0)? as u32,
                    role: r.get(1)?,
                    content: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// User messages waiting to enter the conversation, oldest first.
    pub fn inbox(&self, task: &TaskId) -> Result<Vec<InboxItem>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, text FROM inbox WHERE task_id = ?1 ORDER BY id")?;
            let rows = stmt.query_map([task.as_str()], |r| {
                Ok(InboxItem {
                    id: r.get(0)?,
                    text: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Appends message `idx`, removes the inbox items it consumed and emits `events`,
    /// atomically.
    pub async fn append_message(
        &self,
        task: &TaskId,
        idx: u32,
        role: MessageRole,
        content: String,
        consumed: Vec<i64>,
        events: Vec<EventBody>,
    ) -> Result<()> {
        let task = task.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO messages (task_id, idx, role, content, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task.as_str(), idx, role, content, ctx.now()],
            )?;
            for id in consumed {
                ctx.conn().execute(
                    "DELETE FROM inbox WHERE id = ?1 AND task_id = ?2",
                    params![id, task.as_str()],
                )?;
            }
            for body in events {
                ctx.emit(&task, body)?;
            }
            Ok(())
        })
        .await
    }

    /// Records that a tool call is starting, with its `tool_call` event. Resolves once
    /// durable, so a crash after this point is known to have interrupted the call.
    pub async fn tool_call_started(
        &self,
        task: &TaskId,
        tool_use_id: &str,
        name: &str,
        input: Value,
    ) -> Result<()> {
        let task = task.clone();
        let (id, name) = (tool_use_id.to_owned(), name.to_owned());
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO tool_calls (task_id, tool_use_id, name, input, state, started_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    task.as_str(),
                    id,
                    name,
                    input.to_string(),
                    ToolCallState::Running,
                    ctx.now()
                ],
            )?;
            ctx.emit(
                &task,
                EventBody::ToolCall(ToolCallEvent { id, name, input }),
            )?;
            Ok(())
        })
        .await
    }

    /// Records a tool call's result, with its `tool_result` event.
    pub async fn tool_call_finished(&self, task: &TaskId, result: ToolCallResult) -> Result<()> {
        let task = task.clone();
        self.transact(move |ctx| {
            let changed = ctx.conn().execute(
                "UPDATE tool_calls SET state = ?3, output = ?4, is_error = ?5, exit_code = ?6, finished_at = ?7 \
                 WHERE task_id = ?1 AND tool_use_id = ?2",
                params![
                    task.as_str(),
                    result.tool_use_id,
                    ToolCallState::Done,
                    result.output,
                    result.is_error,
                    result.exit_code,
                    ctx.now()
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("tool call {}", result.tool_use_id)));
            }
            ctx.emit(
                &task,
                EventBody::ToolResult(ToolResultEvent {
                    id: result.tool_use_id,
                    name: result.name,
                    output: result.output,
                    is_error: result.is_error,
                    exit_code: result.exit_code,
                    duration_ms: result.duration_ms,
                }),
            )?;
            Ok(())
        })
        .await
    }

    /// A task's tool calls, oldest first.
    pub fn tool_calls(&self, task: &TaskId) -> Result<Vec<ToolCallRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT tool_use_id, name, input, state, output, is_error, exit_code, started_at, finished_at \
                 FROM tool_calls WHERE task_id = ?1 ORDER BY started_at, rowid",
            )?;
            let rows = stmt.query_map([task.as_str()], |r| {
                let input: String = r.get(2)?;
                Ok((
                    input,
                    ToolCallRow {
                        tool_use_id: r.get(0)?,
                        name: r.get(1)?,
                        input: Value::Null,
                        state: r.get(3)?,
                        output: r.get(4)?,
                        is_error: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                        exit_code: r.get(6)?,
                        started_at: r.get(7)?,
                        finished_at: r.get(8)?,
                    },
                ))
            })?;
            rows.map(|row| {
                let (input, mut call) = row?;
                call.input = serde_json::from_str(&input)?;
                Ok(call)
            })
            .collect()
        })
    }

    /// The output a tool call streamed (its `tool_output` events), joined and capped at
    /// `max` bytes from the end: what survives of a call interrupted by a crash.
    pub fn streamed_output(&self, task: &TaskId, tool_use_id: &str, max: usize) -> Result<String> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT data FROM events WHERE task_id = ?1 AND kind = 'tool_output' ORDER BY seq",
            )?;
            let rows = stmt.query_map([task.as_str()], |r| r.get::<_, String>(0))?;
            let mut text = String::new();
            for data in rows {
                let v: Value = serde_json::from_str(&data?)?;
                if v.get("id").and_then(Value::as_str) == Some(tool_use_id) {
                    text.push_str(v.get("text").and_then(Value::as_str).unwrap_or(""));
                }
            }
            if text.len() > max {
                let mut cut = text.len() - max;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text.drain(..cut);
            }
            Ok(text)
        })
    }
}
