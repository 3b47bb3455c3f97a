//! The JSON body of `POST /v1/messages`, with prompt-caching breakpoints.

use serde_json::Map;
use serde_json::Value;
use serde_json::json;

use crate::ModelError;
use crate::ToolSpec;
use crate::TurnRequest;

/// The API accepts at most this many `cache_control` breakpoints.
const MAX_BREAKPOINTS: usize = 4;

/// Builds the streaming request body. Breakpoints go on the last tool, the
/// system prompt and the newest cacheable block of the last message, so each
/// turn reads the previous turn's prefix from the cache. The caller's messages
/// are serialized first and only the copy is marked.
pub(crate) fn request_body(req: &TurnRequest) -> Result<Value, ModelError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    let mut used = 0;
    if !req.system.is_empty() {
        // The API rejects empty text blocks, so an empty prompt is left out.
        body.insert(
            "system".into(),
            json!([{"type": "text", "text": req.system, "cache_control": ephemeral()}]),
        );
        used += 1;
    }
    if !req.tools.is_empty() {
        let mut tools: Vec<Value> = req.tools.iter().map(tool_json).collect();
        if let Some(Value::Object(last)) = tools.last_mut() {
            last.insert("cache_control".into(), ephemeral());
            used += 1;
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut messages = serde_json::to_value(&req.messages)
        .map_err(|e| ModelError::Protocol(format!("cannot serialize the conversation: {e}")))?;
    mark_newest_block(&mut messages, used);
    body.insert("messages".into(), messages);
    body.insert("stream".into(), json!(true));
    Ok(Value::Object(body))
}

fn tool_json(tool: &ToolSpec) -> Value {
    match tool {
        ToolSpec::Bash => json!({"type": "bash_20250124", "name": "bash"}),
        ToolSpec::TextEditor {
            max_characters: None,
        } => {
            json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"})
        }
        ToolSpec::TextEditor {
            max_characters: Some(max),
        } => {
            json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": max})
        }
    }
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// Puts a breakpoint on the newest block of the last message that can carry
/// one, unless the blocks replayed verbatim already use up the allowance.
fn mark_newest_block(messages: &mut Value, used: usize) {
    let Some(messages) = messages.as_array_mut() else {
        return;
    };
    let existing = messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b.get("cache_control").is_some())
        .count();
    if used + existing >= MAX_BREAKPOINTS {
        return;
    }
    let Some(blocks) = messages
        .last_mut()
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    if let Some(Value::Object(block)) = blocks.iter_mut().rev().find(|b| cacheable(b)) {
        block.insert("cache_control".into(), ephemeral());
    }
}

/// Thinking blocks cannot carry `cache_control`, nor can empty text blocks.
fn cacheable(block: &Value) -> bool {
    match block.get("type").and_then(Value::as_str) {
        Some("thinking" | "redacted_thinking") | None => false,
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty()),
        Some(_) => true,
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
