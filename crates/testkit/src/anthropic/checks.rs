//! The checks the real API makes that a client can get wrong, with its wording.

use std::collections::HashSet;

use serde_json::Value;

/// Checks the required fields (`model`, `max_tokens`, `messages`) and that
/// `stream`, when given, is a boolean.
pub(crate) fn check_fields(body: &Value) -> Result<(), String> {
    let Some(body) = body.as_object() else {
        return Err("the request body must be a JSON object".into());
    };
    let missing = |field: &str| format!("{field}: Field required");
    match body.get("model") {
        None => return Err(missing("model")),
        Some(v) if !v.is_string() => return Err("model: Input should be a valid string".into()),
        Some(_) => {}
    }
    match body.get("max_tokens") {
        None => return Err(missing("max_tokens")),
        Some(v) if !v.is_u64() => return Err("max_tokens: Input should be a valid integer".into()),
        Some(_) => {}
    }
    match body.get("messages") {
        None => return Err(missing("messages")),
        Some(v) if !v.is_array() => return Err("messages: Input should be a valid list".into()),
        Some(_) => {}
    }
    match body.get("stream") {
        Some(v) if !v.is_boolean() => Err("stream: Input should be a valid boolean".into()),
        _ => Ok(()),
    }
}

/// Every `tool_use` must be answered by a `tool_result` in the very next
/// (user) message, and every `tool_result` must answer a `tool_use` of the
/// message before it.
pub(crate) fn check_tool_pairing(messages: &[Value]) -> Result<(), String> {
    let mut previous_uses: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let blocks = message["content"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of_type = |kind: &'static str, id_field: &'static str| {
            blocks
                .iter()
                .filter(move |b| b["type"] == kind)
                .map(move |b| b[id_field].as_str().unwrap_or_default())
        };
        let results: Vec<&str> = of_type("tool_result", "tool_use_id").collect();
        let answerable: HashSet<&str> = previous_uses.iter().copied().collect();
        if let Some((j, id)) = results
            .iter()
            .enumerate()
            .find(|(_, id)| !answerable.contains(**id))
        {
            return Err(format!(
                "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. \
                 Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            ));
        }
        let answered: HashSet<&str> = results.iter().copied().collect();
        let missing: Vec<&str> = previous_uses
            .iter()
            .copied()
            .filter(|id| !answered.contains(id))
            .collect();
        if !missing.is_empty() {
            return Err(unanswered(i - 1, &missing));
        }
        previous_uses = if message["role"] == "assistant" {
            of_type("tool_use", "id").collect()
        } else {
            Vec::new()
        };
    }
    if !previous_uses.is_empty() {
        return Err(unanswered(messages.len() - 1, &previous_uses));
    }
    Ok(())
}

fn unanswered(index: usize, ids: &[&str]) -> String {
    format!(
        "messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
         Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
        ids.join(", ")
    )
}

/// Whether the request marks any prompt-caching breakpoint.
pub(crate) fn has_cache_control(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.contains_key("cache_control") || map.values().any(has_cache_control)
        }
        Value::Array(items) => items.iter().any(has_cache_control),
        _ => false,
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
