//! The fake Anthropic server on the wire, driven with plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::io::BufReader;
use std::process::Command;
use std::process::Stdio;

use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::FakeOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

#[path = "all/playback.rs"]
mod playback;

fn body() -> Value {
    json!({"model": "claude-test", "max_tokens": 100, "stream": true,
           "messages": [{"role": "user", "content": "hi"}]})
}

/// A request with the usual headers; `key` goes in `x-api-key`.
fn post(fake: &FakeAnthropic, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Splits an SSE body into `(event name, data)`, checking the exact framing.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "{text:?}");
    text.trim_end()
        .split("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn the_key_is_accepted_in_either_header() {
    let options = FakeOptions {
        api_key: Some("k1".into()),
        ..FakeOptions::default()
    };
    let fake = FakeAnthropic::start_with(Scenario::new().text("a").text("b"), options)
        .await
        .unwrap();

    let response = post(&fake, &body())
        .header("x-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let response = post(&fake, &body()).bearer_auth("k1").send().await.unwrap();
    assert_eq!(response.status(), 200);

    let (status, err) = error_of(
        post(&fake, &body())
            .header("x-api-key", "nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        err["error"],
        json!({"type": "authentication_error", "message": "invalid x-api-key"})
    );
    assert!(err["request_id"].as_str().unwrap().starts_with("req_"));
    let (status, err) = error_of(post(&fake, &body()).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        err,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"},
               "request_id": err["request_id"]})
    );
    assert_eq!(fake.turns_consumed(), 2);
}

#[tokio::test]
async fn version_header_and_fields_are_required() {
    let fake = FakeAnthropic::start(Scenario::new().text("a")).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", fake.base_url()))
        .header("x-api-key", "k")
        .json(&body())
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(response).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );

    let (status, err) = error_of(
        post(&fake, &json!({"model": "m", "messages": []}))
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["message"].as_str()),
        (400, Some("max_tokens: Field required"))
    );

    let not_json = post(&fake, &body())
        .header("x-api-key", "k")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    // JSON bodies are recorded even when rejected; the non-JSON one is not.
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.turns_consumed(), 0);
}

#[tokio::test]
async fn a_turn_streams_the_exact_sse_sequence() {
    let scenario =
        Scenario::new().turn(Turn::text("Hello there.").tool_use("bash", json!({"command": "ls"})));
    let fake = FakeAnthropic::start(scenario).await;
    let response = post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let d = "content_block_delta";
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            d,
            d,
            "content_block_stop",
            "content_block_start",
            d,
            d,
            d,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let usage = &events[0].1["message"]["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        (
            usage["cache_creation_input_tokens"].as_u64(),
            usage["cache_read_input_tokens"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(events[0].1["message"]["model"], "claude-test");
    assert_eq!(events[6].1["content_block"]["input"], json!({}));
    assert_eq!(events[7].1["delta"]["partial_json"], "");
    assert_eq!(events[11].1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_status_fault_sends_the_api_error_and_retry_after() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .fault_retry_after(429, 7)
            .fault_status(529)
            .text("ok"),
    )
    .await;
    let response = post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "7");
    let (status, err) = error_of(response).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    let (status, err) = error_of(
        post(&fake, &body())
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &err["error"]),
        (
            529,
            &json!({"type": "overloaded_error", "message": "Overloaded"})
        )
    );
    assert_eq!(fake.turns_consumed(), 2);
}

#[tokio::test]
async fn a_cut_drops_the_connection_and_keeps_the_next_turn() {
    let fake = FakeAnthropic::start(Scenario::new().fault_cut(2).text("whole")).await;
    let mut response = post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let err = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the body ended cleanly"),
            Err(e) => break e,
        }
    };
    assert!(err.is_body() || err.is_decode(), "{err:?}");
    let names: Vec<String> = events(&String::from_utf8(received).unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["message_start", "content_block_start"]);
    assert_eq!(fake.turns_consumed(), 1, "only the fault is consumed");

    let text = post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert_eq!(events[3].1["delta"]["text"], "whole");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(fake.turns_consumed(), 2);
}

#[tokio::test]
async fn a_stream_error_fault_sends_an_error_event() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .fault_stream_error("api_error", 1)
            .text("ok"),
    )
    .await;
    let text = post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].1,
        json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})
    );
    assert_eq!(fake.turns_consumed(), 1);
}

#[tokio::test]
async fn tool_uses_must_be_answered() {
    let fake = FakeAnthropic::start(Scenario::new().text("never")).await;
    let mut request = body();
    request["messages"] = json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}},
            {"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ]);
    let (status, err) = error_of(
        post(&fake, &request)
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"].as_str().unwrap().starts_with(
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_2."
        ),
        "{err}"
    );
    assert_eq!(fake.turns_consumed(), 0);
}

#[tokio::test]
async fn an_exhausted_scenario_answers_400() {
    let fake = FakeAnthropic::start(Scenario::new().text("one")).await;
    post(&fake, &body())
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (status, err) = error_of(
        post(&fake, &body())
            .header("x-api-key", "k")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"],
        json!({"type": "invalid_request_error", "message": "the fake's scenario is exhausted: all 1 turns were played"})
    );
}

#[tokio::test]
async fn requests_are_recorded_and_served() {
    let fake = FakeAnthropic::start(Scenario::new().text("a").text("b")).await;
    let waiting = fake.wait_for_requests(2);
    let send = async {
        for n in 0..2 {
            let mut request = body();
            request["metadata"] = json!({"user_id": n});
            post(&fake, &request)
                .header("x-api-key", "k")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
        }
    };
    let (recorded, ()) = tokio::join!(waiting, send);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1]["metadata"]["user_id"], 1);
    let served: Value = reqwest::get(format!("{}/_fake/requests", fake.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, Value::Array(recorded));
}

#[tokio::test]
async fn the_binary_serves_a_scenario_file() {
    let dir = std::env::temp_dir().join(format!("dockhand-fake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.json");
    std::fs::write(&path, r#"{"turns": [{"text": "from the binary"}]}"#).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dockhand-fake-anthropic"))
        .args([
            "--scenario",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "bin-key",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();

    let response = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "bin-key")
        .header("anthropic-version", "2023-06-01")
        .json(&body())
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let streamed: String = events(&text)
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, "from the binary");
}

#[test]
fn the_binary_explains_a_bad_scenario() {
    let dir = std::env::temp_dir().join(format!("dockhand-fake-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.json");
    std::fs::write(&path, r#"{"turns": [{"txet": "typo"}]}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dockhand-fake-anthropic"))
        .args(["--scenario", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `txet`"), "{stderr}");
}
