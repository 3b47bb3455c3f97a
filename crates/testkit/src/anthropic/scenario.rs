//! The scripted conversation the fake Anthropic server plays, in a fixed JSON
//! format shared by tests and people running the fake by hand:
//!
//! ```json
//! {"turns": [
//!   {"text": "I'll create it.", "tool_uses": [{"name": "bash", "input": {"command": "ls"}}]},
//!   {"fault": {"status": 529}},
//!   {"fault": {"status": 429, "retry_after": 1}},
//!   {"fault": {"cut_after_events": 3}},
//!   {"fault": {"stream_error": "overloaded_error", "after_events": 2}},
//!   {"text": "Done.", "stop_reason": "end_turn"}
//! ], "token_delay_ms": 0, "counting": "per_conversation"}
//! ```
//!
//! Each model request consumes the next turn of its conversation: requests
//! whose first user message has the same text are one conversation, and each
//! conversation plays the turns from the start, so concurrent tasks each get
//! the whole scenario. With `"counting": "global"` all requests share one
//! counter instead, in arrival order. A `status` fault answers one request
//! with that error and is consumed. A `cut_after_events` or `stream_error`
//! fault streams the first events of the *next* turn, then cuts the connection
//! or sends `event: error`; the fault is consumed but the next turn is not, so
//! the retry gets it whole. Unknown fields are errors. Checking and parsing
//! are in `validate.rs`, since they need to know how turns are streamed.

use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// A scripted conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Played in order, one per request.
    pub turns: Vec<Turn>,
    /// Pause between streamed text deltas, so streaming is visible.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub token_delay_ms: u64,
    /// Whose counter a request advances.
    #[serde(default, skip_serializing_if = "Counting::is_per_conversation")]
    pub counting: Counting,
}

/// How requests are matched to turns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counting {
    /// Each conversation, known by the text of its first user message (which
    /// stays put as the conversation grows and has its cache breakpoints
    /// moved), plays the turns from the start.
    #[default]
    PerConversation,
    /// One counter for every request, in arrival order: for scripts that
    /// hand different turns to different tasks.
    Global,
}

impl Counting {
    fn is_per_conversation(&self) -> bool {
        *self == Counting::PerConversation
    }
}

/// One scripted model answer, or a fault in place of one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The text block, streamed first. `""` sends no text block (an empty answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tool calls, one `tool_use` block each, after the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_uses: Vec<ToolUse>,
    /// Overrides the stop reason (default `tool_use` with tool calls, else
    /// `end_turn`). With `max_tokens` the last tool call's JSON is cut in half,
    /// as a real truncated answer would be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// A fault instead of an answer; excludes the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// One scripted tool call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUse {
    /// Tool name, e.g. `bash`.
    pub name: String,
    /// Tool input, streamed as `input_json_delta` fragments.
    pub input: Value,
    /// A fixed `toolu_...` id; generated (unique per server) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A failure to inject. Exactly one of `status`, `cut_after_events` and
/// `stream_error` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Answer with this HTTP status and the API's error body for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `status`: a `retry-after` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// With `status` or `stream_error`: replaces the default error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Stream this many events of the next turn, then drop the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after_events: Option<usize>,
    /// Send `event: error` with this `error.type` (e.g. `overloaded_error`)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<String>,
    /// ...after this many events of the next turn (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<usize>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Scenario {
    /// An empty scenario, to fill with the builder methods.
    pub fn new() -> Self {
        Scenario::default()
    }

    /// Appends a turn.
    pub fn turn(mut self, turn: Turn) -> Self {
        self.turns.push(turn);
        self
    }

    /// Appends a text-only turn.
    pub fn text(self, text: impl Into<String>) -> Self {
        self.turn(Turn::text(text))
    }

    /// Appends a fault.
    pub fn fault(self, fault: Fault) -> Self {
        self.turn(Turn {
            fault: Some(fault),
            ..Turn::default()
        })
    }

    /// Appends an HTTP error answer, e.g. 529.
    pub fn fault_status(self, status: u16) -> Self {
        self.fault(Fault {
            status: Some(status),
            ..Fault::default()
        })
    }

    /// Appends an HTTP error answer with `retry-after: secs`.
    pub fn fault_retry_after(self, status: u16, secs: u64) -> Self {
        self.fault(Fault {
            status: Some(status),
            retry_after: Some(secs),
            ..Fault::default()
        })
    }

    /// Appends a dropped connection after `events` events of the next turn.
    pub fn fault_cut(self, events: usize) -> Self {
        self.fault(Fault {
            cut_after_events: Some(events),
            ..Fault::default()
        })
    }

    /// Appends an `event: error` of `error_type` after `events` events of the next turn.
    pub fn fault_stream_error(self, error_type: impl Into<String>, events: usize) -> Self {
        self.fault(Fault {
            stream_error: Some(error_type.into()),
            after_events: Some(events),
            ..Fault::default()
        })
    }

    /// Sets the pause between text deltas.
    pub fn token_delay_ms(mut self, ms: u64) -> Self {
        self.token_delay_ms = ms;
        self
    }

    /// Plays the turns in arrival order across all conversations
    /// ([`Counting::Global`]).
    pub fn global(mut self) -> Self {
        self.counting = Counting::Global;
        self
    }
}

impl Turn {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Turn {
            text: Some(text.into()),
            ..Turn::default()
        }
    }

    /// An answer that is only a tool call.
    pub fn tool(name: impl Into<String>, input: Value) -> Self {
        Turn::default().tool_use(name, input)
    }

    /// Adds a tool call.
    pub fn tool_use(mut self, name: impl Into<String>, input: Value) -> Self {
        self.tool_uses.push(ToolUse {
            name: name.into(),
            input,
            id: None,
        });
        self
    }

    /// Overrides the stop reason, e.g. `max_tokens`.
    pub fn stop_reason(mut self, reason: impl Into<String>) -> Self {
        self.stop_reason = Some(reason.into());
        self
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
