//! Which turn a request gets (per conversation, or globally) and answers to
//! non-streaming requests.

use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use super::error_of;
use super::events;
use super::post;

/// A streaming request whose conversation starts with `first`, then `rest`.
fn asking(first: Value, rest: &[Value]) -> Value {
    let mut messages = vec![json!({"role": "user", "content": first})];
    messages.extend_from_slice(rest);
    json!({"model": "claude-test", "max_tokens": 100, "stream": true, "messages": messages})
}

/// The streamed text and the ids of the streamed tool calls.
async fn streamed(fake: &FakeAnthropic, body: Value) -> (String, Vec<String>) {
    let response = post(fake, &body)
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let text = events
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str())
        .collect();
    let tool_ids = events
        .iter()
        .filter_map(|(_, data)| data["content_block"]["id"].as_str())
        .map(str::to_owned)
        .collect();
    (text, tool_ids)
}

/// The assistant's tool call and the user's result for it.
fn answered(id: &str) -> [Value; 2] {
    [
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": id, "name": "bash", "input": {"command": "ls"}}]}),
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": "a.txt",
             "cache_control": {"type": "ephemeral"}}]}),
    ]
}

#[tokio::test]
async fn concurrent_conversations_each_get_the_whole_scenario() {
    let scenario = Scenario::new()
        .turn(Turn::text("Looking.").tool_use("bash", json!({"command": "ls"})))
        .text("Done.");
    let fake = FakeAnthropic::start(scenario).await;
    let (a, b) = (json!("task A"), json!("task B"));

    let (first_a, first_b) = tokio::join!(
        streamed(&fake, asking(a.clone(), &[])),
        streamed(&fake, asking(b.clone(), &[])),
    );
    assert_eq!(first_a.0, "Looking.");
    assert_eq!(first_b.0, "Looking.");
    assert_ne!(first_a.1, first_b.1, "tool ids stay unique");

    // The first message as blocks with a breakpoint is still the same conversation.
    let a_again =
        json!([{"type": "text", "text": "task A", "cache_control": {"type": "ephemeral"}}]);
    let (second_a, second_b) = tokio::join!(
        streamed(&fake, asking(a_again, &answered(&first_a.1[0]))),
        streamed(&fake, asking(b, &answered(&first_b.1[0]))),
    );
    assert_eq!(
        (second_a.0.as_str(), second_b.0.as_str()),
        ("Done.", "Done.")
    );
    assert_eq!(fake.turns_consumed(), 4);

    // A's turns are used up; it does not borrow anyone else's.
    let more = asking(a, &answered(&first_a.1[0]));
    let (status, err) = error_of(
        post(&fake, &more)
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["message"],
        "the fake's scenario is exhausted: all 2 turns were played"
    );
}

#[tokio::test]
async fn the_global_mode_plays_turns_in_arrival_order() {
    let fake = FakeAnthropic::start(Scenario::new().text("one").text("two").global()).await;
    let (a, b) = (asking(json!("task A"), &[]), asking(json!("task B"), &[]));
    assert_eq!(streamed(&fake, a.clone()).await.0, "one");
    assert_eq!(streamed(&fake, b).await.0, "two");
    let (status, _) = error_of(
        post(&fake, &a)
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "the one counter is used up");
    assert_eq!(fake.turns_consumed(), 2);
}

#[tokio::test]
async fn a_request_without_stream_gets_one_message() {
    let scenario = Scenario::new()
        .turn(Turn::text("Looking.").tool_use("bash", json!({"command": "ls"})))
        .text("Done.");
    let fake = FakeAnthropic::start(scenario).await;
    let mut body = asking(json!("task"), &[]);
    body.as_object_mut().unwrap().remove("stream");
    let response = post(&fake, &body)
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");
    let message: Value = response.json().await.unwrap();
    let id = message["content"][1]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("toolu_"), "{message}");
    let input_tokens = message["usage"]["input_tokens"].as_u64().unwrap();
    let output_tokens = message["usage"]["output_tokens"].as_u64().unwrap();
    assert!(input_tokens > 0 && output_tokens > 0, "{message}");
    assert_eq!(
        message,
        json!({
            "id": message["id"], "type": "message", "role": "assistant", "model": "claude-test",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": id, "name": "bash", "input": {"command": "ls"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                      "service_tier": "standard"}
        })
    );
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));

    let mut next = asking(json!("task"), &answered(&id));
    next["stream"] = json!(false);
    let message: Value = post(&fake, &next)
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Done."}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    let cache = &message["usage"];
    assert!(
        cache["cache_creation_input_tokens"].as_u64().unwrap() > 0,
        "{cache}"
    );
    assert_eq!(
        cache["cache_creation"]["ephemeral_5m_input_tokens"],
        cache["cache_creation_input_tokens"]
    );
}

#[tokio::test]
async fn scripted_faults_reach_non_streaming_requests() {
    let scenario = Scenario::new()
        .fault_retry_after(429, 3)
        .fault_stream_error("overloaded_error", 2)
        .text("first")
        .fault_cut(1)
        .text("second");
    let fake = FakeAnthropic::start(scenario).await;
    let mut body = asking(json!("task"), &[]);
    body["stream"] = json!(false);
    let send = || post(&fake, &body).header("x-api-key", "k").send();
    let text = |message: Value| message["content"][0]["text"].as_str().unwrap().to_owned();

    let response = send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "3");
    let (status, err) = error_of(response).await;
    assert_eq!(
        (status, &err["error"]["type"]),
        (429, &json!("rate_limit_error"))
    );

    // With no stream to break, a stream error is the HTTP error it stands for,
    // and the turn it would have broken is kept for the retry.
    let (status, err) = error_of(send().await.unwrap()).await;
    assert_eq!(
        (status, &err["error"]),
        (
            529,
            &json!({"type": "overloaded_error", "message": "Overloaded"})
        )
    );
    assert!(err["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(text(send().await.unwrap().json().await.unwrap()), "first");

    // A cut drops the connection before the body is whole.
    let response = send().await.unwrap();
    assert_eq!(response.status(), 200);
    let err = response.bytes().await.unwrap_err();
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    assert_eq!(text(send().await.unwrap().json().await.unwrap()), "second");
    assert_eq!(fake.turns_consumed(), 5);
}
