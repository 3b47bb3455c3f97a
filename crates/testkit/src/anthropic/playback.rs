//! Which scripted entry answers a request: a counter per conversation (or one
//! for every request, with [`Counting::Global`]), plus the ids and the
//! simulated prompt cache of each answer.

use std::collections::HashMap;

use serde_json::Value;
use sha2::Digest;
use sha2::Sha256;

use super::checks;
use super::reply::ReplyContext;
use super::reply::Usage;
use super::scenario::Counting;
use super::scenario::Fault;
use super::scenario::Scenario;
use super::scenario::Turn;

/// A SHA-256 of the conversation's first user message's text, or `None` for
/// the single counter of [`Counting::Global`].
type ConversationKey = Option<[u8; 32]>;

/// The fake's progress through its scenario.
#[derive(Default)]
pub(crate) struct Playback {
    conversations: HashMap<ConversationKey, Progress>,
    /// For unique `msg_`, `req_` and `toolu_` ids.
    counter: u64,
}

#[derive(Default)]
struct Progress {
    /// Index of the next entry to play.
    next_turn: usize,
    /// Input tokens of the last request with cache breakpoints: what a real
    /// cache would hold for the next one.
    cached_tokens: u64,
}

/// What a request gets, borrowing from the scenario.
#[derive(Debug)]
pub(crate) enum Pick<'s> {
    /// Play `turn`, cut or broken by a stream `fault` when one is set.
    Answer {
        turn: &'s Turn,
        fault: Option<&'s Fault>,
        ctx: ReplyContext,
    },
    /// An HTTP error: a `status` fault.
    Status { status: u16, fault: &'s Fault },
    /// Nothing left to play; the scenario's length.
    Exhausted(usize),
}

impl Playback {
    /// A new id: `{prefix}_fake000123`.
    pub(crate) fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_fake{:06}", self.counter)
    }

    /// Entries used up, summed over conversations.
    pub(crate) fn consumed(&self) -> usize {
        self.conversations.values().map(|p| p.next_turn).sum()
    }

    /// Takes the next entry of the request's conversation. A status fault is
    /// consumed; a stream fault is consumed but the turn it streams is not,
    /// so the retry gets that turn whole.
    pub(crate) fn pick<'s>(
        &mut self,
        scenario: &'s Scenario,
        body: &Value,
        body_len: usize,
    ) -> Pick<'s> {
        let key = conversation_key(scenario.counting, body);
        let progress = self.conversations.entry(key).or_default();
        let turns = &scenario.turns;
        let Some(entry) = turns.get(progress.next_turn) else {
            return Pick::Exhausted(turns.len());
        };
        progress.next_turn += 1;
        let (turn, fault) = match &entry.fault {
            None => (entry, None),
            Some(fault) => {
                if let Some(status) = fault.status {
                    return Pick::Status { status, fault };
                }
                // Validation puts an answer after every stream fault.
                let Some(next) = turns.get(progress.next_turn) else {
                    return Pick::Exhausted(turns.len());
                };
                (next, Some(fault))
            }
        };
        let usage = cache_usage(progress, body, body_len);
        let ctx = ReplyContext {
            model: body["model"].as_str().unwrap_or_default().to_owned(),
            message_id: self.next_id("msg"),
            tool_ids: turn
                .tool_uses
                .iter()
                .map(|_| self.next_id("toolu"))
                .collect(),
            usage,
        };
        Pick::Answer { turn, fault, ctx }
    }
}

/// Hashes the text of the first user message, whether its content is a
/// string or blocks. Text only: cache breakpoints move from block to block as
/// a conversation grows, and a compacted history still starts with the task.
fn conversation_key(counting: Counting, body: &Value) -> ConversationKey {
    if counting == Counting::Global {
        return None;
    }
    let first = body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user"));
    let mut hasher = Sha256::new();
    let mut add = |text: &str| {
        hasher.update(text.as_bytes());
        // A separator, so ["ab", "c"] and ["a", "bc"] differ.
        hasher.update([0]);
    };
    match first.map(|m| &m["content"]) {
        Some(Value::String(text)) => add(text),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .for_each(|b| add(b["text"].as_str().unwrap_or_default())),
        _ => {}
    }
    Some(hasher.finalize().into())
}

/// A deterministic usage: input tokens are the body's bytes / 4. With cache
/// breakpoints, what the conversation's previous breakpointed request held
/// is read from the cache and 90% of the rest is written to it.
fn cache_usage(progress: &mut Progress, body: &Value, body_len: usize) -> Usage {
    let total = (body_len as u64 / 4).max(1);
    if !checks::has_cache_control(body) {
        return Usage {
            input_tokens: total,
            ..Usage::default()
        };
    }
    let read = progress.cached_tokens.min(total);
    let creation = (total - read) * 9 / 10;
    progress.cached_tokens = total;
    Usage {
        input_tokens: total - read - creation,
        cache_creation_input_tokens: creation,
        cache_read_input_tokens: read,
    }
}

#[cfg(test)]
#[path = "playback_tests.rs"]
mod tests;
