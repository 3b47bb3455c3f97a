use serde_json::json;

use super::*;

fn invalid(json: &str) -> String {
    Scenario::from_json_str(json).unwrap_err().to_string()
}

#[test]
fn the_documented_format_parses() {
    let scenario = Scenario::from_json_str(
        r#"{"turns": [
          {"text": "I'll create it.", "tool_uses": [{"name": "str_replace_based_edit_tool",
            "input": {"command": "create", "path": "/workspace/hello.txt", "file_text": "hi\n"}}]},
          {"fault": {"status": 529}},
          {"fault": {"status": 429, "retry_after": 1}},
          {"fault": {"cut_after_events": 3}},
          {"text": "Done."}
        ], "token_delay_ms": 0}"#,
    )
    .unwrap();
    let built = Scenario::new()
        .turn(Turn::text("I'll create it.").tool_use(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": "/workspace/hello.txt", "file_text": "hi\n"}),
        ))
        .fault_status(529)
        .fault_retry_after(429, 1)
        .fault_cut(3)
        .text("Done.");
    assert_eq!(scenario, built);
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../../../../examples/scenarios/hello.json");
    let scenario = Scenario::from_json_str(text).unwrap();
    assert_eq!(scenario.turns.len(), 3);
    assert_eq!(
        scenario.turns[0].tool_uses[0].name,
        "str_replace_based_edit_tool"
    );
    assert_eq!(
        scenario.turns[1].tool_uses[0].input,
        json!({"command": "cat hello.txt"})
    );
    assert_eq!(scenario.turns[2].text.as_deref(), Some("Done."));
}

#[test]
fn typos_are_caught() {
    let err = invalid(r#"{"turns": [{"txt": "hi"}]}"#);
    assert!(
        err.starts_with("invalid scenario: unknown field `txt`, expected one of"),
        "{err}"
    );
    let err = invalid(r#"{"turns": [], "token_delay": 5}"#);
    assert!(err.contains("unknown field `token_delay`"), "{err}");
    let err = invalid(r#"{"turns": [{"fault": {"status": 529, "retry": 1}}]}"#);
    assert!(err.contains("unknown field `retry`"), "{err}");
    let err = invalid(r#"{"turns": [{"tool_uses": [{"name": "bash", "inputs": {}}]}]}"#);
    assert!(err.contains("unknown field `inputs`"), "{err}");
}

#[test]
fn nonsense_is_explained() {
    assert_eq!(
        invalid(r#"{"turns": [{}]}"#),
        "invalid scenario: turn 1: needs `text`, `tool_uses` or `fault`"
    );
    assert_eq!(
        invalid(r#"{"turns": [{"text": "a"}, {"text": "b", "fault": {"status": 500}}]}"#),
        "invalid scenario: turn 2: a `fault` turn cannot also have `text`, `tool_uses` or `stop_reason`"
    );
    assert_eq!(
        invalid(r#"{"turns": [{"fault": {"status": 500, "cut_after_events": 1}}, {"text": "b"}]}"#),
        "invalid scenario: turn 1: a fault needs exactly one of `status`, `cut_after_events` and `stream_error`"
    );
    assert_eq!(
        invalid(r#"{"turns": [{"fault": {"status": 200}}]}"#),
        "invalid scenario: turn 1: status 200 is not an error status (400-599)"
    );
    assert_eq!(
        invalid(r#"{"turns": [{"fault": {"cut_after_events": 2}}]}"#),
        "invalid scenario: turn 1: a stream fault must be followed by an answer turn to stream"
    );
    assert_eq!(
        invalid(
            r#"{"turns": [{"fault": {"cut_after_events": 2, "retry_after": 1}}, {"text": "b"}]}"#
        ),
        "invalid scenario: turn 1: `retry_after` goes with `status`"
    );
    // "hi" streams 7 events: start, block start, ping, delta, block stop, message delta, stop.
    assert_eq!(
        invalid(
            r#"{"turns": [{"fault": {"stream_error": "api_error", "after_events": 7}}, {"text": "hi"}]}"#
        ),
        "invalid scenario: turn 1: 7 events would send all 7 events of turn 2; use fewer"
    );
    Scenario::from_json_str(r#"{"turns": [{"fault": {"stream_error": "api_error", "after_events": 6}}, {"text": "hi"}]}"#).unwrap();
}

#[test]
fn serializes_back_to_the_same_format() {
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": "ls"})).stop_reason("max_tokens"))
        .fault_stream_error("overloaded_error", 2)
        .text("ok")
        .token_delay_ms(5);
    let value = serde_json::to_value(&scenario).unwrap();
    assert_eq!(
        value,
        json!({"turns": [
            {"tool_uses": [{"name": "bash", "input": {"command": "ls"}}], "stop_reason": "max_tokens"},
            {"fault": {"stream_error": "overloaded_error", "after_events": 2}},
            {"text": "ok"}
        ], "token_delay_ms": 5})
    );
    assert_eq!(
        Scenario::from_json_str(&value.to_string()).unwrap(),
        scenario
    );
}

#[test]
fn the_counting_mode_is_an_optional_field() {
    let global = Scenario::from_json_str(r#"{"turns": [{"text": "a"}], "counting": "global"}"#);
    assert_eq!(global.unwrap(), Scenario::new().text("a").global());
    let default = Scenario::from_json_str(r#"{"turns": [{"text": "a"}]}"#).unwrap();
    assert_eq!(default.counting, Counting::PerConversation);
    let explicit = r#"{"turns": [{"text": "a"}], "counting": "per_conversation"}"#;
    assert_eq!(Scenario::from_json_str(explicit).unwrap(), default);
    let err = invalid(r#"{"turns": [{"text": "a"}], "counting": "globally"}"#);
    assert!(err.contains("unknown variant `globally`"), "{err}");
    assert_eq!(
        serde_json::to_value(Scenario::new().text("a").global()).unwrap(),
        json!({"turns": [{"text": "a"}], "counting": "global"})
    );
}
