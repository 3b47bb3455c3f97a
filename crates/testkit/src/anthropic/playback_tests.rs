use serde_json::json;

use super::*;

fn answer(pick: Pick<'_>) -> (&Turn, ReplyContext) {
    match pick {
        Pick::Answer { turn, ctx, .. } => (turn, ctx),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn asking(first: Value) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": first}]})
}

#[test]
fn cache_reads_start_with_the_second_breakpointed_request() {
    let scenario = Scenario::new().text("a").text("b").text("c");
    let mut playback = Playback::default();
    let plain = asking(json!("hi"));
    let mut cached = plain.clone();
    cached["system"] =
        json!([{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]);

    let (_, ctx) = answer(playback.pick(&scenario, &plain, 400));
    assert_eq!(
        ctx.usage,
        Usage {
            input_tokens: 100,
            ..Usage::default()
        }
    );
    let (_, first) = answer(playback.pick(&scenario, &cached, 400));
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 10,
            cache_creation_input_tokens: 90,
            cache_read_input_tokens: 0
        }
    );
    let (_, second) = answer(playback.pick(&scenario, &cached, 600));
    assert_eq!(
        second.usage,
        Usage {
            input_tokens: 5,
            cache_creation_input_tokens: 45,
            cache_read_input_tokens: 100
        }
    );
}

#[test]
fn ids_are_unique() {
    let two_tools = Turn::tool("bash", json!({})).tool_use("bash", json!({}));
    let scenario = Scenario::new()
        .turn(two_tools.clone())
        .turn(two_tools)
        .global();
    let mut playback = Playback::default();
    let (_, a) = answer(playback.pick(&scenario, &json!({}), 10));
    let (_, b) = answer(playback.pick(&scenario, &json!({}), 10));
    let mut ids = vec![a.message_id, b.message_id];
    ids.extend(a.tool_ids);
    ids.extend(b.tool_ids);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 6, "{ids:?}");
    assert!(ids[2].starts_with("toolu_") && ids[0].starts_with("msg_"));
}

#[test]
fn a_conversation_is_its_first_user_messages_text() {
    let key = |first: Value| conversation_key(Counting::PerConversation, &asking(first));
    let plain = key(json!("fix the bug"));
    let marked =
        json!([{"type": "text", "text": "fix the bug", "cache_control": {"type": "ephemeral"}}]);
    assert_eq!(key(marked), plain, "a cache breakpoint does not matter");
    assert_ne!(key(json!("fix the other bug")), plain);
    assert_ne!(
        key(json!([{"type": "text", "text": "fix the"}, {"type": "text", "text": " bug"}])),
        plain,
        "blocks are kept apart"
    );
    // Later messages, and a system prompt before it, do not change it.
    let mut grown = asking(json!("fix the bug"));
    grown["system"] = json!("be careful");
    grown["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": "Done."}));
    assert_eq!(conversation_key(Counting::PerConversation, &grown), plain);
    assert_eq!(conversation_key(Counting::Global, &grown), None);
}

#[test]
fn a_stream_fault_is_consumed_and_its_turn_is_not() {
    let scenario = Scenario::new().fault_cut(1).text("whole").fault_status(529);
    let mut playback = Playback::default();
    let body = asking(json!("hi"));
    match playback.pick(&scenario, &body, 10) {
        Pick::Answer { turn, fault, .. } => {
            assert_eq!(turn.text.as_deref(), Some("whole"));
            assert_eq!(fault.and_then(|f| f.cut_after_events), Some(1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(playback.consumed(), 1);
    let (turn, _) = answer(playback.pick(&scenario, &body, 10));
    assert_eq!(turn.text.as_deref(), Some("whole"));
    assert!(matches!(
        playback.pick(&scenario, &body, 10),
        Pick::Status { status: 529, .. }
    ));
    assert!(matches!(
        playback.pick(&scenario, &body, 10),
        Pick::Exhausted(3)
    ));
    assert_eq!(playback.consumed(), 3);
}
