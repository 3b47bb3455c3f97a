use serde_json::json;

use super::*;

fn ctx() -> ReplyContext {
    ReplyContext {
        model: "claude-test".into(),
        message_id: "msg_1".into(),
        tool_ids: vec!["toolu_a".into(), "toolu_b".into()],
        usage: Usage {
            input_tokens: 10,
            cache_creation_input_tokens: 20,
            cache_read_input_tokens: 30,
        },
    }
}

#[test]
fn word_chunks_keep_every_character() {
    assert_eq!(
        word_chunks("I'll create it."),
        vec!["I'll", " create", " it."]
    );
    assert_eq!(
        word_chunks("  two  spaces\nnew"),
        vec!["  two", "  spaces", "\nnew"]
    );
    assert_eq!(word_chunks("é ü"), vec!["é", " ü"]);
    assert!(word_chunks("").is_empty());
}

#[test]
fn events_come_in_the_api_order_with_type_equal_to_name() {
    let turn = Turn::text("Let me look.")
        .tool_use("bash", json!({"command": "ls"}))
        .tool_use("bash", json!({}));
    let frames = frames(&turn, &ctx());
    let names: Vec<&str> = frames.iter().map(|f| f.name).collect();
    let delta = "content_block_delta";
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            delta,
            delta,
            delta,
            "content_block_stop",
            "content_block_start",
            delta,
            delta,
            delta,
            "content_block_stop",
            "content_block_start",
            delta,
            delta,
            delta,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for frame in &frames {
        assert_eq!(frame.data["type"], frame.name);
        let text = String::from_utf8(frame.encode().to_vec()).unwrap();
        let data = text
            .strip_prefix(&format!(
                "event: {}\ndata: {{\"type\":\"{}\"",
                frame.name, frame.name
            ))
            .unwrap();
        let data = data.strip_suffix("\n\n").unwrap();
        assert!(!data.contains('\n'));
        let parsed: Value =
            serde_json::from_str(text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(parsed, frame.data);
    }
    assert_eq!(
        frames[0].data["message"]["usage"]["cache_read_input_tokens"],
        30
    );
    assert_eq!(frames[0].data["message"]["model"], "claude-test");
    assert_eq!(
        frames[7].data["content_block"],
        json!({"type": "tool_use", "id": "toolu_a", "name": "bash", "input": {}})
    );
    assert_eq!(
        frames[8].data["delta"],
        json!({"type": "input_json_delta", "partial_json": ""})
    );
    let json: String = frames[8..11]
        .iter()
        .map(|f| f.data["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(json, r#"{"command":"ls"}"#);
    assert_eq!(frames[12].data["content_block"]["id"], "toolu_b");
    assert_eq!(frames[17].data["delta"]["stop_reason"], "tool_use");
    assert_eq!(frames[17].data["usage"]["input_tokens"], 10);
    assert!(frames[17].data["usage"]["output_tokens"].as_u64().unwrap() > 1);
}

#[test]
fn a_fixed_tool_id_wins() {
    let mut turn = Turn::tool("bash", json!({}));
    turn.tool_uses[0].id = Some("toolu_fixed".into());
    assert_eq!(
        frames(&turn, &ctx())[1].data["content_block"]["id"],
        "toolu_fixed"
    );
}

#[test]
fn max_tokens_truncates_the_last_tool_call() {
    let turn = Turn::text("x")
        .tool_use("bash", json!({"command": "echo hello world"}))
        .stop_reason("max_tokens");
    let frames = frames(&turn, &ctx());
    let json: String = frames
        .iter()
        .filter(|f| f.data["delta"]["type"] == "input_json_delta")
        .map(|f| f.data["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert!(
        r#"{"command":"echo hello world"}"#.starts_with(&json) && json.len() > 5,
        "{json}"
    );
    assert!(serde_json::from_str::<Value>(&json).is_err());
    assert_eq!(
        frames[frames.len() - 2].data["delta"]["stop_reason"],
        "max_tokens"
    );
}

#[test]
fn ping_encodes_like_the_api() {
    let frames = frames(&Turn::text("x"), &ctx());
    assert_eq!(
        frames[2].encode(),
        "event: ping\ndata: {\"type\":\"ping\"}\n\n"
    );
    assert!(frames[1].encode().starts_with(
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"content_block\":"
    ));
}

#[test]
fn empty_text_sends_no_block() {
    let frames = frames(&Turn::text(""), &ctx());
    let names: Vec<&str> = frames.iter().map(|f| f.name).collect();
    assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
    assert_eq!(frames[1].data["delta"]["stop_reason"], "end_turn");
}
