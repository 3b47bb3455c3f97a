use serde_json::json;

use super::*;
use crate::RetryNotice;
use crate::anthropic::sse::SseParser;

#[derive(Default)]
struct Recorder {
    deltas: Vec<(u32, String)>,
}

impl TurnObserver for Recorder {
    fn text_delta(&mut self, index: u32, text: &str) {
        self.deltas.push((index, text.to_owned()));
    }
    fn retry(&mut self, _notice: &RetryNotice) {}
}

/// Feeds an SSE text through the parser and the assembler.
fn assemble(sse: &str) -> (Result<TurnResponse, ModelError>, Recorder) {
    let mut recorder = Recorder::default();
    let mut asm = Assembler::new(Some("req_1".into()));
    let events = SseParser::new(1 << 20).feed(sse.as_bytes()).unwrap();
    for event in &events {
        match asm.handle(event, &mut recorder) {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return (Err(e), recorder),
        }
    }
    (asm.finish(), recorder)
}

/// Joins `(event, data)` pairs into SSE text with the given line end.
fn sse(events: &[(&str, Value)], eol: &str) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}{eol}data: {data}{eol}{eol}"))
        .collect()
}

fn start(input_tokens: u64) -> (&'static str, Value) {
    let usage = json!({"input_tokens": input_tokens, "output_tokens": 1,
        "cache_creation_input_tokens": 7, "cache_read_input_tokens": 0});
    (
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "content": [], "stop_reason": null, "usage": usage}}),
    )
}

fn block_start(index: u32, block: Value) -> (&'static str, Value) {
    (
        "content_block_start",
        json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn delta(index: u32, delta: Value) -> (&'static str, Value) {
    (
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn stop(index: u32) -> (&'static str, Value) {
    (
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

fn message_delta(stop_reason: &str, usage: Value) -> (&'static str, Value) {
    (
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}),
    )
}

fn message_stop() -> (&'static str, Value) {
    ("message_stop", json!({"type": "message_stop"}))
}

#[test]
fn assembles_a_rich_stream_with_crlf() {
    let events = [
        start(377),
        (
            "brand_new_event",
            json!({"type": "brand_new_event", "x": 1}),
        ),
        block_start(
            0,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
        ("ping", json!({"type": "ping"})),
        delta(0, json!({"type": "thinking_delta", "thinking": "Let me "})),
        delta(0, json!({"type": "thinking_delta", "thinking": "think."})),
        delta(
            0,
            json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM"}),
        ),
        stop(0),
        block_start(1, json!({"type": "text", "text": ""})),
        delta(1, json!({"type": "text_delta", "text": "I'll check"})),
        delta(
            1,
            json!({"type": "citations_delta", "citation": {"type": "x"}}),
        ),
        delta(1, json!({"type": "text_delta", "text": " the files."})),
        stop(1),
        block_start(
            2,
            json!({"type": "mystery_block", "payload": [1, 2], "nested": {"keep": true}}),
        ),
        stop(2),
        block_start(
            3,
            json!({"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}),
        ),
        delta(3, json!({"type": "input_json_delta", "partial_json": ""})),
        delta(
            3,
            json!({"type": "input_json_delta", "partial_json": "{\"comm"}),
        ),
        delta(
            3,
            json!({"type": "input_json_delta", "partial_json": "and\": \"ls\"}"}),
        ),
        stop(3),
        block_start(
            4,
            json!({"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {}}),
        ),
        stop(4),
        message_delta(
            "tool_use",
            json!({"output_tokens": 65, "cache_read_input_tokens": 5}),
        ),
        message_stop(),
    ];
    let text = format!(": hello\r\n\r\n{}", sse(&events, "\r\n"));
    let (response, recorder) = assemble(&text);
    let response = response.unwrap();

    assert_eq!(
        response.content,
        vec![
            ContentBlock::Other(
                json!({"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM"})
            ),
            ContentBlock::Text {
                text: "I'll check the files.".into()
            },
            ContentBlock::Other(
                json!({"type": "mystery_block", "payload": [1, 2], "nested": {"keep": true}})
            ),
            ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "bash".into(),
                input: json!({"command": "ls"})
            },
            ContentBlock::ToolUse {
                id: "toolu_2".into(),
                name: "bash".into(),
                input: json!({})
            },
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        TokenUsage {
            input_tokens: 377,
            output_tokens: 65,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 5
        }
    );
    assert_eq!(response.request_id.as_deref(), Some("req_1"));
    assert_eq!(
        recorder.deltas,
        vec![(1, "I'll check".into()), (1, " the files.".into())]
    );
}

#[test]
fn a_stream_without_message_stop_is_a_retryable_stream_error() {
    let events = [
        start(10),
        block_start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "hi"})),
    ];
    let (result, _) = assemble(&sse(&events, "\n"));
    let err = result.unwrap_err();
    assert!(
        matches!(err, ModelError::Stream(_)) && err.is_retryable(),
        "{err}"
    );
}

#[test]
fn an_error_event_becomes_the_matching_api_error() {
    let events = [
        start(10),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ];
    let (result, _) = assemble(&sse(&events, "\n"));
    let err = result.unwrap_err();
    assert_eq!(
        err,
        ModelError::Api {
            status: 529,
            error_type: "overloaded_error".into(),
            message: "Overloaded".into(),
            request_id: Some("req_1".into()),
        }
    );
    assert!(err.is_retryable());
}

fn truncated_tool(stop_reason: &str) -> Result<TurnResponse, ModelError> {
    let events = [
        start(10),
        block_start(
            0,
            json!({"type": "tool_use", "id": "toolu_9", "name": "bash", "input": {}}),
        ),
        delta(
            0,
            json!({"type": "input_json_delta", "partial_json": "{\"command\": \"echo hel"}),
        ),
        stop(0),
        message_delta(stop_reason, json!({"output_tokens": 4})),
        message_stop(),
    ];
    assemble(&sse(&events, "\n")).0
}

#[test]
fn truncated_tool_json_is_kept_raw_at_max_tokens() {
    let response = truncated_tool("max_tokens").unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    assert_eq!(
        response.content,
        vec![ContentBlock::ToolUse {
            id: "toolu_9".into(),
            name: "bash".into(),
            input: Value::String("{\"command\": \"echo hel".into())
        }]
    );
}

#[test]
fn bad_tool_json_is_a_protocol_error_otherwise() {
    let err = truncated_tool("tool_use").unwrap_err();
    assert!(
        matches!(err, ModelError::Protocol(_)) && !err.is_retryable(),
        "{err}"
    );
    assert!(err.to_string().contains("toolu_9"), "{err}");
}

#[test]
fn garbage_under_a_known_event_is_a_protocol_error_but_unknown_events_are_ignored() {
    let ignored = format!(
        "event: future\ndata: not json\n\n{}",
        sse(
            &[
                start(1),
                message_delta("end_turn", json!({"output_tokens": 1})),
                message_stop()
            ],
            "\n"
        )
    );
    assert_eq!(
        assemble(&ignored).0.unwrap().stop_reason,
        StopReason::EndTurn
    );
    let bad = "event: message_start\ndata: {oops\n\n";
    assert!(matches!(
        assemble(bad).0.unwrap_err(),
        ModelError::Protocol(_)
    ));
}

#[test]
fn a_delta_for_an_unknown_block_is_a_protocol_error() {
    let events = [
        start(1),
        delta(3, json!({"type": "text_delta", "text": "x"})),
    ];
    assert!(matches!(
        assemble(&sse(&events, "\n")).0.unwrap_err(),
        ModelError::Protocol(_)
    ));
}
