use serde_json::json;

use super::*;

#[test]
fn statuses_get_the_documented_error_types() {
    let of = |s: u16| error_type_for(StatusCode::from_u16(s).unwrap());
    assert_eq!(
        [
            of(400),
            of(401),
            of(402),
            of(403),
            of(404),
            of(408),
            of(409),
            of(413),
            of(429)
        ],
        [
            "invalid_request_error",
            "authentication_error",
            "billing_error",
            "permission_error",
            "not_found_error",
            "invalid_request_error",
            "conflict_error",
            "request_too_large",
            "rate_limit_error",
        ]
    );
    assert_eq!(
        [of(500), of(503), of(504), of(529)],
        [
            "api_error",
            "api_error",
            "timeout_error",
            "overloaded_error"
        ]
    );
    assert_eq!(default_message("overloaded_error"), "Overloaded");
}

#[test]
fn cache_reads_start_with_the_second_breakpointed_request() {
    let mut inner = Inner::default();
    let turn = Turn::text("hi");
    let plain = json!({"model": "m", "messages": []});
    let cached = json!({"model": "m", "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]});

    let usage = reply_context(&mut inner, &turn, &plain, 400).usage;
    assert_eq!(
        usage,
        Usage {
            input_tokens: 100,
            ..Usage::default()
        }
    );

    let first = reply_context(&mut inner, &turn, &cached, 400).usage;
    assert_eq!(
        first,
        Usage {
            input_tokens: 10,
            cache_creation_input_tokens: 90,
            cache_read_input_tokens: 0
        }
    );

    let second = reply_context(&mut inner, &turn, &cached, 600).usage;
    assert_eq!(
        second,
        Usage {
            input_tokens: 5,
            cache_creation_input_tokens: 45,
            cache_read_input_tokens: 100
        }
    );
}

#[test]
fn ids_are_unique() {
    let mut inner = Inner::default();
    let turn = Turn::tool("bash", json!({})).tool_use("bash", json!({}));
    let a = reply_context(&mut inner, &turn, &json!({}), 10);
    let b = reply_context(&mut inner, &turn, &json!({}), 10);
    let mut ids = vec![a.message_id, b.message_id];
    ids.extend(a.tool_ids);
    ids.extend(b.tool_ids);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 6, "{ids:?}");
    assert!(ids[2].starts_with("toolu_") && ids[0].starts_with("msg_"));
}
