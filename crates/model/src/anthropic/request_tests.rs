use serde_json::json;

use super::*;
use crate::ContentBlock;
use crate::Message;
use crate::Role;

fn request(messages: Vec<Message>) -> TurnRequest {
    TurnRequest {
        model: "claude-test".into(),
        system: "Be brief.".into(),
        tools: vec![
            ToolSpec::Bash,
            ToolSpec::TextEditor {
                max_characters: Some(10_000),
            },
        ],
        messages,
        max_tokens: 1024,
    }
}

fn user(content: Vec<ContentBlock>) -> Message {
    Message {
        role: Role::User,
        content,
    }
}

fn wire_body(req: &TurnRequest) -> Value {
    serde_json::to_value(request_body(req)).unwrap()
}

fn count_breakpoints(value: &Value) -> usize {
    match value {
        Value::Object(map) => {
            usize::from(map.contains_key("cache_control"))
                + map.values().map(count_breakpoints).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_breakpoints).sum(),
        _ => 0,
    }
}

#[test]
fn body_has_the_wire_shape_and_three_breakpoints() {
    let req = request(vec![
        user(vec![ContentBlock::Text {
            text: "list files".into(),
        }]),
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::ToolUse {
                id: "toolu_1".into(),
                name: "bash".into(),
                input: json!({"command": "ls"}),
            }],
        },
        user(vec![
            ContentBlock::ToolResult {
                tool_use_id: "toolu_1".into(),
                content: "a.txt".into(),
                is_error: false,
            },
            ContentBlock::Text {
                text: "and then?".into(),
            },
        ]),
    ]);
    let before = req.messages.clone();
    let body = wire_body(&req);
    assert_eq!(
        body,
        json!({
            "model": "claude-test",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "tools": [
                {"type": "bash_20250124", "name": "bash"},
                {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 10000,
                 "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "list files"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                    {"type": "text", "text": "and then?", "cache_control": {"type": "ephemeral"}},
                ]},
            ],
            "stream": true,
        })
    );
    assert_eq!(
        req.messages, before,
        "the caller's messages are not touched"
    );
}

#[test]
fn thinking_and_empty_text_are_skipped_for_the_breakpoint() {
    let req = request(vec![user(vec![
        ContentBlock::ToolResult {
            tool_use_id: "t".into(),
            content: "ok".into(),
            is_error: true,
        },
        ContentBlock::Other(json!({"type": "thinking", "thinking": "hm", "signature": "s"})),
        ContentBlock::Text {
            text: String::new(),
        },
    ])]);
    let body = wire_body(&req);
    let blocks = &body["messages"][0]["content"];
    assert_eq!(blocks[0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(blocks[0]["is_error"], json!(true));
    assert_eq!(
        blocks[1],
        json!({"type": "thinking", "thinking": "hm", "signature": "s"}),
        "replayed verbatim"
    );
    assert_eq!(count_breakpoints(&body), 3);
}

#[test]
fn never_more_than_four_breakpoints() {
    let marked = |n: u32| {
        ContentBlock::Other(
            json!({"type": "document", "n": n, "cache_control": {"type": "ephemeral"}}),
        )
    };
    // One replayed breakpoint leaves room for ours.
    let body = wire_body(&request(vec![user(vec![
        marked(1),
        ContentBlock::Text { text: "hi".into() },
    ])]));
    assert_eq!(count_breakpoints(&body), 4);
    // Two would make five: the moving one is dropped.
    let body = wire_body(&request(vec![user(vec![
        marked(1),
        marked(2),
        ContentBlock::Text { text: "hi".into() },
    ])]));
    assert_eq!(count_breakpoints(&body), 4);
    assert!(
        body["messages"][0]["content"][2]
            .get("cache_control")
            .is_none()
    );
}

#[test]
fn no_system_and_no_tools_leave_the_fields_out() {
    let mut req = request(vec![user(vec![ContentBlock::Text { text: "hi".into() }])]);
    req.system.clear();
    req.tools.clear();
    let body = wire_body(&req);
    assert!(body.get("system").is_none() && body.get("tools").is_none());
    assert_eq!(count_breakpoints(&body), 1);
    assert_eq!(
        body["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn stored_blocks_round_trip_including_unknown_ones() {
    let blocks = vec![
        ContentBlock::Text { text: "t".into() },
        ContentBlock::ToolUse {
            id: "toolu_1".into(),
            name: "bash".into(),
            input: json!({"command": "ls"}),
        },
        ContentBlock::ToolResult {
            tool_use_id: "toolu_1".into(),
            content: "out".into(),
            is_error: false,
        },
        ContentBlock::Other(json!({"type": "thinking", "thinking": "hm", "signature": "sig"})),
        ContentBlock::Other(json!({"type": "redacted_thinking", "data": "opaque"})),
    ];
    let stored = serde_json::to_string(&blocks).unwrap();
    let loaded: Vec<ContentBlock> = serde_json::from_str(&stored).unwrap();
    assert_eq!(loaded, blocks);
}

#[test]
fn the_editor_without_a_limit_has_no_max_characters() {
    let mut req = request(vec![user(vec![ContentBlock::Text { text: "hi".into() }])]);
    req.tools = vec![ToolSpec::TextEditor {
        max_characters: None,
    }];
    assert_eq!(
        wire_body(&req)["tools"],
        json!([{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool",
                "cache_control": {"type": "ephemeral"}}])
    );
}

#[test]
fn a_replayed_breakpoint_on_the_newest_block_is_kept_not_doubled() {
    let own = json!({"type": "document", "cache_control": {"type": "ephemeral", "ttl": "1h"}});
    let req = request(vec![user(vec![
        ContentBlock::Text { text: "hi".into() },
        ContentBlock::Other(own.clone()),
    ])]);
    let text = serde_json::to_string(&request_body(&req)).unwrap();
    assert_eq!(
        text.matches("cache_control").count(),
        3,
        "system, last tool, the replayed block: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["messages"][0]["content"][1], own);
    assert!(
        body["messages"][0]["content"][0]
            .get("cache_control")
            .is_none()
    );
}
