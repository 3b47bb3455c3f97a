//! One scripted answer in the API's exact shapes: as SSE events in the API's
//! order (`message_start`, per block `content_block_start` / deltas /
//! `content_block_stop` with a `ping` after the first start, `message_delta`,
//! `message_stop`), or as the single `message` body of a non-streaming reply.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::json;

use super::scenario::Turn;

/// One SSE event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Frame {
    /// The event name, equal to the data's `type`.
    pub name: &'static str,
    pub data: Value,
}

impl Frame {
    fn new(name: &'static str, mut data: Value) -> Self {
        if let Some(map) = data.as_object_mut() {
            map.insert("type".into(), Value::String(name.to_owned()));
        }
        Frame { name, data }
    }

    /// `event: NAME\ndata: JSON\n\n`, with `type` first in the JSON as the
    /// API writes it (serde_json would sort it among the other keys).
    pub fn encode(&self) -> Bytes {
        let mut rest = self.data.clone();
        if let Some(map) = rest.as_object_mut() {
            map.remove("type");
        }
        let rest = rest.to_string();
        let fields = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or_default();
        let sep = if fields.is_empty() { "" } else { "," };
        Bytes::from(format!(
            "event: {name}\ndata: {{\"type\":\"{name}\"{sep}{fields}}}\n\n",
            name = self.name
        ))
    }

    /// Whether this is a `text_delta` (paced by `token_delay_ms`).
    pub fn is_text_delta(&self) -> bool {
        self.data["delta"]["type"] == "text_delta"
    }
}

/// Token counts reported for one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// Per-request values: ids and usage.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplyContext {
    pub model: String,
    pub message_id: String,
    /// One per tool call, used where the scenario gives none.
    pub tool_ids: Vec<String>,
    pub usage: Usage,
}

/// The stop reason a turn ends with.
pub(crate) fn stop_reason(turn: &Turn) -> &str {
    match &turn.stop_reason {
        Some(reason) => reason,
        None if turn.tool_uses.is_empty() => "end_turn",
        None => "tool_use",
    }
}

/// How many events `frames` produces for a turn (ids do not change it).
pub(crate) fn event_count(turn: &Turn) -> usize {
    frames(turn, &ReplyContext::default()).len()
}

/// All events of an answer.
pub(crate) fn frames(turn: &Turn, ctx: &ReplyContext) -> Vec<Frame> {
    let usage = ctx.usage;
    let mut out = vec![Frame::new(
        "message_start",
        json!({"message": {
            "id": ctx.message_id, "type": "message", "role": "assistant", "model": ctx.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": usage.input_tokens,
                      "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                      "cache_read_input_tokens": usage.cache_read_input_tokens,
                      "output_tokens": 1, "service_tier": "standard"}}}),
    )];
    let stop = stop_reason(turn);
    let mut index = 0u32;
    let mut output_chars = 0;
    let start_block = |out: &mut Vec<Frame>, index: u32, block: Value| {
        out.push(Frame::new(
            "content_block_start",
            json!({"index": index, "content_block": block}),
        ));
        if index == 0 {
            out.push(Frame::new("ping", json!({})));
        }
    };

    if let Some(text) = turn.text.as_deref().filter(|t| !t.is_empty()) {
        start_block(&mut out, index, json!({"type": "text", "text": ""}));
        for chunk in word_chunks(text) {
            out.push(Frame::new(
                "content_block_delta",
                json!({"index": index, "delta": {"type": "text_delta", "text": chunk}}),
            ));
        }
        out.push(Frame::new("content_block_stop", json!({"index": index})));
        output_chars += text.len();
        index += 1;
    }

    for (i, tool) in turn.tool_uses.iter().enumerate() {
        let id = tool
            .id
            .clone()
            .or_else(|| ctx.tool_ids.get(i).cloned())
            .unwrap_or_default();
        start_block(
            &mut out,
            index,
            json!({"type": "tool_use", "id": id, "name": tool.name, "input": {}}),
        );
        let mut json = tool.input.to_string();
        if stop == "max_tokens" && i + 1 == turn.tool_uses.len() {
            // Output ran out mid-call: the JSON stops half-way.
            json.truncate(floor_char_boundary(&json, json.len() / 2));
        }
        let mid = floor_char_boundary(&json, json.len() / 2);
        for fragment in ["", &json[..mid], &json[mid..]] {
            out.push(Frame::new(
                "content_block_delta",
                json!({"index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}}),
            ));
        }
        out.push(Frame::new("content_block_stop", json!({"index": index})));
        output_chars += json.len();
        index += 1;
    }

    let output_tokens = output_tokens(output_chars);
    out.push(Frame::new(
        "message_delta",
        json!({"delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"input_tokens": usage.input_tokens,
                         "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                         "cache_read_input_tokens": usage.cache_read_input_tokens,
                         "output_tokens": output_tokens}}),
    ));
    out.push(Frame::new("message_stop", json!({})));
    out
}

/// The body of a non-streaming answer. Field order is the API's.
#[derive(Debug, Serialize)]
pub(crate) struct MessageBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<ContentBlock<'a>>,
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
    usage: MessageUsage,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

#[derive(Debug, Serialize)]
struct MessageUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    service_tier: &'static str,
}

/// Cache writes by TTL; the fake's are all the default 5 minutes.
#[derive(Debug, Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

/// The whole answer as one `message`. Tool inputs are whole even with
/// `max_tokens`: `input` is an object here, so it cannot be cut mid-JSON.
pub(crate) fn message<'a>(turn: &'a Turn, ctx: &'a ReplyContext) -> MessageBody<'a> {
    let mut content = Vec::new();
    let mut output_chars = 0;
    if let Some(text) = turn.text.as_deref().filter(|t| !t.is_empty()) {
        content.push(ContentBlock::Text { text });
        output_chars += text.len();
    }
    for (i, tool) in turn.tool_uses.iter().enumerate() {
        let id = tool
            .id
            .as_deref()
            .or_else(|| ctx.tool_ids.get(i).map(String::as_str))
            .unwrap_or_default();
        content.push(ContentBlock::ToolUse {
            id,
            name: &tool.name,
            input: &tool.input,
        });
        output_chars += tool.input.to_string().len();
    }
    let usage = ctx.usage;
    MessageBody {
        id: &ctx.message_id,
        kind: "message",
        role: "assistant",
        model: &ctx.model,
        content,
        stop_reason: stop_reason(turn),
        stop_sequence: None,
        usage: MessageUsage {
            input_tokens: usage.input_tokens,
            output_tokens: output_tokens(output_chars),
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_creation: CacheCreation {
                ephemeral_5m_input_tokens: usage.cache_creation_input_tokens,
                ephemeral_1h_input_tokens: 0,
            },
            service_tier: "standard",
        },
    }
}

/// A deterministic stand-in for the tokenizer: four characters a token.
fn output_tokens(chars: usize) -> u64 {
    (chars as u64 / 4).max(1)
}

/// An `event: error` frame.
pub(crate) fn error_frame(error_type: &str, message: &str) -> Frame {
    Frame::new(
        "error",
        json!({"error": {"type": error_type, "message": message}}),
    )
}

/// Splits text into word-sized pieces, each word with the whitespace before it.
pub(crate) fn word_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space && i > start {
            chunks.push(&text[start..i]);
            start = i;
        }
        prev_space = space;
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
