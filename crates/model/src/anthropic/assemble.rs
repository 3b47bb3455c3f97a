//! Turns the stream's events into one [`TurnResponse`], telling the observer
//! about text as it arrives.

use std::collections::BTreeMap;

use dockhand_protocol::TokenUsage;
use serde_json::Value;

use super::sse::SseEvent;
use crate::ContentBlock;
use crate::ModelError;
use crate::StopReason;
use crate::TurnObserver;
use crate::TurnResponse;
use crate::error::status_for_error_type;

/// Event names we act on; data that is not JSON under one of these is an
/// error, under any other name it is ignored like the event itself.
const KNOWN_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

/// A block being assembled.
enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// Any other block, kept verbatim; `json` collects `input_json_delta`s
    /// (server tools stream their input too).
    Other {
        value: Value,
        json: String,
    },
}

/// Collects one streamed message.
pub(crate) struct Assembler {
    request_id: Option<String>,
    usage: TokenUsage,
    blocks: BTreeMap<u32, Block>,
    stop_reason: Option<String>,
    stopped: bool,
}

impl Assembler {
    pub fn new(request_id: Option<String>) -> Self {
        Assembler {
            request_id,
            usage: TokenUsage::default(),
            blocks: BTreeMap::new(),
            stop_reason: None,
            stopped: false,
        }
    }

    /// Applies one event; returns true once `message_stop` arrived.
    pub fn handle(
        &mut self,
        event: &SseEvent,
        observer: &mut dyn TurnObserver,
    ) -> Result<bool, ModelError> {
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(_) if !KNOWN_EVENTS.contains(&event.event.as_str()) => return Ok(false),
            Err(e) => {
                return Err(protocol(format!(
                    "`{}` event data is not JSON: {e}",
                    event.event
                )));
            }
        };
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event);
        match kind {
            "message_start" => merge_usage(&mut self.usage, &data["message"]["usage"]),
            "content_block_start" => {
                let index = index_of(&data)?;
                let block = &data["content_block"];
                let block = match block.get("type").and_then(Value::as_str) {
                    Some("text") => Block::Text(str_field(block, "text").to_owned()),
                    Some("tool_use") => Block::ToolUse {
                        id: str_field(block, "id").to_owned(),
                        name: str_field(block, "name").to_owned(),
                        json: String::new(),
                    },
                    _ => Block::Other {
                        value: block.clone(),
                        json: String::new(),
                    },
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => self.delta(index_of(&data)?, &data["delta"], observer)?,
            // Tool input is parsed in `finish`, where the stop reason is known.
            "content_block_stop" => {}
            "message_delta" => {
                if let Some(reason) = data["delta"].get("stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                merge_usage(&mut self.usage, &data["usage"]);
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(true);
            }
            "error" => {
                let error_type = str_field(&data["error"], "type").to_owned();
                return Err(ModelError::Api {
                    status: status_for_error_type(&error_type),
                    message: str_field(&data["error"], "message").to_owned(),
                    error_type,
                    request_id: data
                        .get("request_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| self.request_id.clone()),
                });
            }
            _ => {} // `ping`, and event types newer than this client
        }
        Ok(false)
    }

    fn delta(
        &mut self,
        index: u32,
        delta: &Value,
        observer: &mut dyn TurnObserver,
    ) -> Result<(), ModelError> {
        let Some(block) = self.blocks.get_mut(&index) else {
            return Err(protocol(format!(
                "a delta for block {index}, which was never started"
            )));
        };
        match (delta.get("type").and_then(Value::as_str), block) {
            (Some("text_delta"), Block::Text(text)) => {
                let piece = str_field(delta, "text");
                text.push_str(piece);
                observer.text_delta(index, piece);
            }
            (Some("input_json_delta"), Block::ToolUse { json, .. } | Block::Other { json, .. }) => {
                json.push_str(str_field(delta, "partial_json"));
            }
            (Some("thinking_delta"), Block::Other { value, .. }) => {
                append(value, "thinking", str_field(delta, "thinking"))
            }
            (Some("signature_delta"), Block::Other { value, .. }) => {
                append(value, "signature", str_field(delta, "signature"));
            }
            _ => {} // citations and delta types newer than this client
        }
        Ok(())
    }

    /// The assembled response; an error if the stream never finished.
    pub fn finish(self) -> Result<TurnResponse, ModelError> {
        if !self.stopped {
            return Err(ModelError::Stream(
                "the stream ended before message_stop".into(),
            ));
        }
        let stop_reason = StopReason::parse(
            &self
                .stop_reason
                .ok_or_else(|| protocol("the message has no stop_reason".into()))?,
        );
        let truncated = stop_reason == StopReason::MaxTokens;
        let mut content = Vec::with_capacity(self.blocks.len());
        for block in self.blocks.into_values() {
            content.push(match block {
                Block::Text(text) => ContentBlock::Text { text },
                Block::ToolUse { id, name, json } => {
                    let input = parse_input(&json, truncated, &id)?;
                    ContentBlock::ToolUse { id, name, input }
                }
                Block::Other { mut value, json } => {
                    if !json.is_empty() {
                        let input = parse_input(&json, truncated, str_field(&value, "id"))?;
                        if let Some(map) = value.as_object_mut() {
                            map.insert("input".into(), input);
                        }
                    }
                    ContentBlock::Other(value)
                }
            });
        }
        Ok(TurnResponse {
            content,
            stop_reason,
            usage: self.usage,
            request_id: self.request_id,
        })
    }
}

/// Parses streamed tool input. When the output hit `max_tokens` the JSON may be
/// cut short; then the raw text is kept as a string so the agent can answer
/// the call with an error instead of running it.
fn parse_input(json: &str, truncated: bool, id: &str) -> Result<Value, ModelError> {
    if json.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str(json) {
        Ok(input) => Ok(input),
        Err(_) if truncated => Ok(Value::String(json.to_owned())),
        Err(e) => Err(protocol(format!(
            "the input of tool call {id} is not JSON: {e}"
        ))),
    }
}

/// Usage is cumulative: later values replace earlier ones, field by field.
fn merge_usage(usage: &mut TokenUsage, value: &Value) {
    let fields: [(&str, &mut u64); 4] = [
        ("input_tokens", &mut usage.input_tokens),
        ("output_tokens", &mut usage.output_tokens),
        (
            "cache_creation_input_tokens",
            &mut usage.cache_creation_input_tokens,
        ),
        (
            "cache_read_input_tokens",
            &mut usage.cache_read_input_tokens,
        ),
    ];
    for (name, slot) in fields {
        if let Some(n) = value.get(name).and_then(Value::as_u64) {
            *slot = n;
        }
    }
}

fn append(value: &mut Value, field: &str, piece: &str) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    match map.get_mut(field) {
        Some(Value::String(text)) => text.push_str(piece),
        _ => {
            map.insert(field.to_owned(), Value::String(piece.to_owned()));
        }
    }
}

fn index_of(data: &Value) -> Result<u32, ModelError> {
    data.get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| protocol(format!("a content block event without an index: {data}")))
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn protocol(message: String) -> ModelError {
    ModelError::Protocol(message)
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
