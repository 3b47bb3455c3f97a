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
//! ], "token_delay_ms": 0}
//! ```
//!
//! Each model request consumes the next turn. A `status` fault answers one
//! request with that error and is consumed. A `cut_after_events` or
//! `stream_error` fault streams the first events of the *next* turn, then cuts
//! the connection or sends `event: error`; the fault is consumed but the next
//! turn is not, so the retry gets it whole. Unknown fields are errors.

use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::reply;
use crate::FakeError;

/// A scripted conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Played in order, one per request.
    pub turns: Vec<Turn>,
    /// Pause between streamed text deltas, so streaming is visible.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub token_delay_ms: u64,
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

    /// Parses and checks a scenario file's contents.
    pub fn from_json_str(json: &str) -> Result<Self, FakeError> {
        let scenario: Scenario =
            serde_json::from_str(json).map_err(|e| FakeError::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
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

    /// Checks what serde cannot: each turn is an answer or a fault, faults
    /// are well-formed, and a stream fault has a turn to stream after it.
    pub fn validate(&self) -> Result<(), FakeError> {
        for (i, turn) in self.turns.iter().enumerate() {
            let n = i + 1;
            let err = |msg: &str| Err(FakeError::Scenario(format!("turn {n}: {msg}")));
            let Some(fault) = &turn.fault else {
                if turn.text.is_none() && turn.tool_uses.is_empty() {
                    return err("needs `text`, `tool_uses` or `fault`");
                }
                continue;
            };
            if turn.text.is_some() || !turn.tool_uses.is_empty() || turn.stop_reason.is_some() {
                return err("a `fault` turn cannot also have `text`, `tool_uses` or `stop_reason`");
            }
            let kinds = [
                fault.status.is_some(),
                fault.cut_after_events.is_some(),
                fault.stream_error.is_some(),
            ];
            if kinds.iter().filter(|set| **set).count() != 1 {
                return err(
                    "a fault needs exactly one of `status`, `cut_after_events` and `stream_error`",
                );
            }
            if fault.retry_after.is_some() && fault.status.is_none() {
                return err("`retry_after` goes with `status`");
            }
            if fault.after_events.is_some() && fault.stream_error.is_none() {
                return err("`after_events` goes with `stream_error`");
            }
            if fault.message.is_some() && fault.cut_after_events.is_some() {
                return err("a cut connection has no `message`");
            }
            if let Some(status) = fault.status {
                if !(400..=599).contains(&status) {
                    return err(&format!("status {status} is not an error status (400-599)"));
                }
                continue;
            }
            let events = fault.cut_after_events.or(fault.after_events).unwrap_or(0);
            let next = self.turns.get(i + 1).filter(|t| t.fault.is_none());
            let Some(next) = next else {
                return err("a stream fault must be followed by an answer turn to stream");
            };
            let total = reply::event_count(next);
            if events >= total {
                return err(&format!(
                    "{events} events would send all {total} events of turn {}; use fewer",
                    n + 1
                ));
            }
        }
        Ok(())
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
