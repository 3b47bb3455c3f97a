//! Parsing and checking a [`Scenario`]: what serde cannot check needs to
//! know how many events a turn streams, which is the reply's business.

use super::reply::event_count;
use super::scenario::Scenario;
use crate::FakeError;

impl Scenario {
    /// Parses and checks a scenario file's contents.
    pub fn from_json_str(json: &str) -> Result<Self, FakeError> {
        let scenario: Scenario =
            serde_json::from_str(json).map_err(|e| FakeError::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
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
            let total = event_count(next);
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
