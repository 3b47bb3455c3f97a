use serde::Deserialize;
use serde::Serialize;

use crate::Event;

/// A message on the events WebSocket, server to client. Durable events carry a
/// `seq`; live deltas and control messages do not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum WsMessage {
    /// A committed event.
    Event(Event),
    /// A streaming text delta (live only).
    Delta(AssistantDelta),
    /// A control message.
    Control(ControlMessage),
}

/// A live text delta: `{"kind":"assistant_delta","after_seq":N,"index":I,"data":{"text":...}}`.
/// The committed `assistant_text` for the same block replaces it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssistantDelta {
    /// Always `assistant_delta`.
    pub kind: DeltaKind,
    /// The last committed seq when the delta was produced.
    pub after_seq: u64,
    /// The text block's index within its model turn.
    pub index: u32,
    /// The delta's text.
    pub data: DeltaData,
}

/// The one kind a delta has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    /// A streaming text delta.
    AssistantDelta,
}

/// Payload of a delta.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeltaData {
    /// The new text.
    pub text: String,
}

/// A control message: `{"control": "...", "after": SEQ, "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ControlMessage {
    /// What happened.
    pub control: ControlKind,
    /// The last seq this connection delivered.
    pub after: u64,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Kinds of control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// Stored events are replayed; what follows is live.
    CaughtUp,
    /// The connection fell behind and is being closed: reconnect with `after`.
    Resume,
}
