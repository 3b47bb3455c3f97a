use serde_json::json;

use super::*;

fn use_msg(ids: &[&str]) -> Value {
    let blocks: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "tool_use", "id": id, "name": "bash", "input": {}}))
        .collect();
    json!({"role": "assistant", "content": blocks})
}

fn result_msg(ids: &[&str]) -> Value {
    let blocks: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "tool_result", "tool_use_id": id, "content": "ok"}))
        .collect();
    json!({"role": "user", "content": blocks})
}

#[test]
fn answered_tool_uses_pass() {
    let user = json!({"role": "user", "content": "hi"});
    let messages = [
        user,
        use_msg(&["a", "b"]),
        result_msg(&["b", "a"]),
        json!({"role": "assistant", "content": "done"}),
    ];
    assert_eq!(check_tool_pairing(&messages), Ok(()));
}

#[test]
fn unanswered_tool_uses_are_named() {
    let user = json!({"role": "user", "content": "hi"});
    let err =
        check_tool_pairing(&[user.clone(), use_msg(&["a", "b"]), result_msg(&["a"])]).unwrap_err();
    assert!(err.starts_with("messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: b."), "{err}");
    let err = check_tool_pairing(&[user, use_msg(&["a"])]).unwrap_err();
    assert!(err.contains("immediately after: a."), "{err}");
}

#[test]
fn stray_tool_results_are_named() {
    let err = check_tool_pairing(&[use_msg(&["a"]), result_msg(&["a", "zzz"])]).unwrap_err();
    assert!(
        err.starts_with(
            "messages.1.content.1: unexpected `tool_use_id` found in `tool_result` blocks: zzz."
        ),
        "{err}"
    );
}

#[test]
fn required_fields() {
    assert_eq!(
        check_fields(&json!({"max_tokens": 1, "messages": []})),
        Err("model: Field required".into())
    );
    assert_eq!(
        check_fields(&json!({"model": "m", "messages": []})),
        Err("max_tokens: Field required".into())
    );
    assert_eq!(
        check_fields(&json!({"model": "m", "max_tokens": 1})),
        Err("messages: Field required".into())
    );
    assert_eq!(
        check_fields(&json!({"model": "m", "max_tokens": 1, "messages": []})),
        Ok(())
    );
    assert_eq!(
        check_fields(&json!({"model": "m", "max_tokens": 1, "messages": [], "stream": "yes"})),
        Err("stream: Input should be a valid boolean".into())
    );
    assert_eq!(
        check_fields(&json!({"model": "m", "max_tokens": 1, "messages": [], "stream": false})),
        Ok(())
    );
}
