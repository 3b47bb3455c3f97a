//! The Anthropic client against the fake Anthropic server from testkit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use dockhand_model::ContentBlock;
use dockhand_model::Message;
use dockhand_model::Model;
use dockhand_model::ModelError;
use dockhand_model::RetryNotice;
use dockhand_model::RetryPolicy;
use dockhand_model::Role;
use dockhand_model::StopReason;
use dockhand_model::ToolSpec;
use dockhand_model::TurnObserver;
use dockhand_model::TurnRequest;
use dockhand_model::TurnResponse;
use dockhand_model::anthropic::AnthropicClient;
use dockhand_model::anthropic::AnthropicConfig;
use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::FakeOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;
use tokio::sync::mpsc;

const KEY: &str = "sk-ant-test-secret-key";

#[derive(Default)]
struct Recorder {
    deltas: Vec<(u32, String)>,
    retries: Vec<RetryNotice>,
}

impl TurnObserver for Recorder {
    fn text_delta(&mut self, index: u32, text: &str) {
        self.deltas.push((index, text.to_owned()));
    }
    fn retry(&mut self, notice: &RetryNotice) {
        self.retries.push(notice.clone());
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn config(base_url: String) -> AnthropicConfig {
    AnthropicConfig {
        base_url,
        retry: fast_retry(),
        ..AnthropicConfig::new(KEY)
    }
}

fn client(fake: &FakeAnthropic) -> AnthropicClient {
    AnthropicClient::new(config(fake.base_url())).unwrap()
}

fn user_text(text: &str) -> Message {
    Message {
        role: Role::User,
        content: vec![ContentBlock::Text { text: text.into() }],
    }
}

fn request(messages: Vec<Message>) -> TurnRequest {
    TurnRequest {
        model: "claude-test".into(),
        system: "You are a test.".into(),
        tools: vec![
            ToolSpec::Bash,
            ToolSpec::TextEditor {
                max_characters: None,
            },
        ],
        messages,
        max_tokens: 1024,
    }
}

async fn turn(fake: &FakeAnthropic) -> (Result<TurnResponse, ModelError>, Recorder) {
    let mut recorder = Recorder::default();
    let result = client(fake)
        .turn(&request(vec![user_text("hi")]), &mut recorder)
        .await;
    (result, recorder)
}

fn tool_use_id(response: &TurnResponse, index: usize) -> String {
    match &response.content[index] {
        ContentBlock::ToolUse { id, .. } => id.clone(),
        other => panic!("not a tool_use: {other:?}"),
    }
}

#[tokio::test]
async fn text_and_tool_use_are_assembled() {
    let fake = FakeAnthropic::start(
        Scenario::new().turn(
            Turn::text("I'll look around.")
                .tool_use("bash", json!({"command": "ls -la"}))
                .tool_use(
                    "str_replace_based_edit_tool",
                    json!({"command": "view", "path": "/workspace/a b.txt"}),
                ),
        ),
    )
    .await;
    let (response, recorder) = turn(&fake).await;
    let response = response.unwrap();

    let ids = [tool_use_id(&response, 1), tool_use_id(&response, 2)];
    assert!(ids[0].starts_with("toolu_") && ids[0] != ids[1], "{ids:?}");
    assert_eq!(
        response.content,
        vec![
            ContentBlock::Text {
                text: "I'll look around.".into()
            },
            ContentBlock::ToolUse {
                id: ids[0].clone(),
                name: "bash".into(),
                input: json!({"command": "ls -la"})
            },
            ContentBlock::ToolUse {
                id: ids[1].clone(),
                name: "str_replace_based_edit_tool".into(),
                input: json!({"command": "view", "path": "/workspace/a b.txt"}),
            },
        ]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert!(response.request_id.unwrap().starts_with("req_"));
    assert!(recorder.retries.is_empty());
}

#[tokio::test]
async fn usage_includes_cache_tokens() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .turn(Turn::tool("bash", json!({"command": "ls"})))
            .text("Done."),
    )
    .await;
    let client = client(&fake);
    let mut recorder = Recorder::default();
    let mut messages = vec![user_text("list the files")];
    let first = client
        .turn(&request(messages.clone()), &mut recorder)
        .await
        .unwrap();
    assert!(
        first.usage.input_tokens > 0 && first.usage.output_tokens > 0,
        "{:?}",
        first.usage
    );
    assert!(
        first.usage.cache_creation_input_tokens > 0,
        "{:?}",
        first.usage
    );
    assert_eq!(first.usage.cache_read_input_tokens, 0);

    let id = tool_use_id(&first, 0);
    messages.push(Message {
        role: Role::Assistant,
        content: first.content,
    });
    messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: id,
            content: "a.txt".into(),
            is_error: false,
        }],
    });
    let second = client
        .turn(&request(messages), &mut recorder)
        .await
        .unwrap();
    assert!(
        second.usage.cache_read_input_tokens > 0,
        "{:?}",
        second.usage
    );
    assert_eq!(second.stop_reason, StopReason::EndTurn);
}

#[tokio::test]
async fn cache_breakpoints_and_headers_are_on_the_wire() {
    let fake = FakeAnthropic::start(Scenario::new().text("ok")).await;
    let (response, _) = turn(&fake).await;
    response.unwrap();
    let sent = fake.requests().pop().unwrap();
    let ephemeral = json!({"type": "ephemeral"});
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "You are a test.", "cache_control": ephemeral}])
    );
    assert_eq!(
        sent["tools"],
        json!([
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "cache_control": ephemeral},
        ])
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": ephemeral}]}])
    );
    assert_eq!(
        (
            sent["model"].as_str(),
            sent["max_tokens"].as_u64(),
            sent["stream"].as_bool()
        ),
        (Some("claude-test"), Some(1024), Some(true))
    );
}

/// Sends deltas out as they come, so the test can watch them while the turn runs.
struct ChannelObserver(mpsc::UnboundedSender<String>);

impl TurnObserver for ChannelObserver {
    fn text_delta(&mut self, _index: u32, text: &str) {
        let _ = self.0.send(text.to_owned());
    }
    fn retry(&mut self, _notice: &RetryNotice) {}
}

#[tokio::test]
async fn text_deltas_stream_to_the_observer_before_the_turn_ends() {
    let text = "one two three four five six";
    let fake = FakeAnthropic::start(Scenario::new().text(text).token_delay_ms(60)).await;
    let client = Arc::new(client(&fake));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let running = tokio::spawn(async move {
        client
            .turn(&request(vec![user_text("count")]), &mut ChannelObserver(tx))
            .await
    });

    let first = rx.recv().await.unwrap();
    assert_eq!(first, "one");
    // Five more deltas, 60 ms apart, are still to come.
    assert!(
        !running.is_finished(),
        "the turn ended before its first delta was seen"
    );
    let response = running.await.unwrap().unwrap();
    let mut deltas = vec![first];
    while let Ok(delta) = rx.try_recv() {
        deltas.push(delta);
    }
    assert_eq!(deltas, ["one", " two", " three", " four", " five", " six"]);
    assert_eq!(
        response.content,
        vec![ContentBlock::Text { text: text.into() }]
    );
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let fake = FakeAnthropic::start(Scenario::new().fault_status(529).text("ok")).await;
    let (response, recorder) = turn(&fake).await;
    assert_eq!(
        response.unwrap().content,
        vec![ContentBlock::Text { text: "ok".into() }]
    );
    assert_eq!(recorder.retries.len(), 1);
    assert_eq!(
        recorder.retries[0].reason,
        "model API returned 529: Overloaded"
    );
    assert_eq!(recorder.retries[0].attempt, 1);
    assert!(recorder.retries[0].wait <= Duration::from_millis(1));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = FakeAnthropic::start(Scenario::new().fault_retry_after(429, 1).text("ok")).await;
    let started = Instant::now();
    let (response, recorder) = turn(&fake).await;
    response.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let notice = &recorder.retries[0];
    assert_eq!(notice.wait, Duration::from_secs(1));
    assert!(
        notice.reason.starts_with("model API returned 429: "),
        "{}",
        notice.reason
    );
}

#[tokio::test]
async fn a_cut_stream_is_retried_whole() {
    // Four events: message_start, content_block_start, ping, the first delta.
    let fake = FakeAnthropic::start(
        Scenario::new()
            .fault_cut(4)
            .turn(Turn::text("Part one and two.").tool_use("bash", json!({"command": "pwd"}))),
    )
    .await;
    let (response, recorder) = turn(&fake).await;
    let response = response.unwrap();
    assert_eq!(
        response.content[0],
        ContentBlock::Text {
            text: "Part one and two.".into()
        }
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(recorder.retries.len(), 1);
    assert!(
        recorder.retries[0]
            .reason
            .starts_with("model API stream broke off: "),
        "{}",
        recorder.retries[0].reason
    );
    // The partial attempt's delta came before the notice; the retry streamed it all again.
    let deltas: Vec<&str> = recorder.deltas.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(deltas, ["Part", "Part", " one", " and", " two."]);
    assert_eq!((fake.requests().len(), fake.turns_consumed()), (2, 2));
}

#[tokio::test]
async fn a_mid_stream_error_event_is_retried() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .fault_stream_error("overloaded_error", 3)
            .text("recovered"),
    )
    .await;
    let (response, recorder) = turn(&fake).await;
    assert_eq!(
        response.unwrap().content,
        vec![ContentBlock::Text {
            text: "recovered".into()
        }]
    );
    assert_eq!(recorder.retries.len(), 1);
    assert_eq!(
        recorder.retries[0].reason,
        "model API returned 529: Overloaded"
    );
}

#[tokio::test]
async fn retries_run_out_with_the_last_error() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .fault_status(500)
            .fault_status(503)
            .fault_status(502)
            .text("never"),
    )
    .await;
    let config = AnthropicConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            ..fast_retry()
        },
        ..config(fake.base_url())
    };
    let mut recorder = Recorder::default();
    let err = AnthropicClient::new(config)
        .unwrap()
        .turn(&request(vec![user_text("hi")]), &mut recorder)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model API returned 502: Internal server error"
    );
    let attempts: Vec<u32> = recorder.retries.iter().map(|n| n.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(fake.turns_consumed(), 3);
}

#[tokio::test]
async fn a_bad_key_fails_at_once_with_the_apis_message() {
    let options = FakeOptions {
        api_key: Some("the-right-key".into()),
        ..FakeOptions::default()
    };
    let fake = FakeAnthropic::start_with(Scenario::new().text("never"), options)
        .await
        .unwrap();
    let (result, recorder) = turn(&fake).await;
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "model API returned 401: invalid x-api-key");
    let ModelError::Api {
        error_type,
        request_id,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(error_type, "authentication_error");
    assert!(request_id.as_deref().unwrap().starts_with("req_"));
    assert!(!format!("{err:?}").contains(KEY));
    assert!(recorder.retries.is_empty());
    assert_eq!((fake.requests().len(), fake.turns_consumed()), (1, 0));
}

#[tokio::test]
async fn an_unanswered_tool_use_is_rejected_with_its_id() {
    let fake = FakeAnthropic::start(Scenario::new().text("never")).await;
    let messages = vec![
        user_text("list"),
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::ToolUse {
                id: "toolu_lost".into(),
                name: "bash".into(),
                input: json!({"command": "ls"}),
            }],
        },
        user_text("well?"),
    ];
    let mut recorder = Recorder::default();
    let err = client(&fake)
        .turn(&request(messages), &mut recorder)
        .await
        .unwrap_err();
    let ModelError::Api {
        status: 400,
        error_type,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(error_type, "invalid_request_error");
    assert!(
        message.contains("without `tool_result` blocks immediately after: toolu_lost"),
        "{message}"
    );
    assert!(recorder.retries.is_empty());
}

#[tokio::test]
async fn an_exhausted_scenario_answers_400() {
    let fake = FakeAnthropic::start(Scenario::new().text("only one")).await;
    turn(&fake).await.0.unwrap();
    let (result, recorder) = turn(&fake).await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("model API returned 400: the fake's scenario is exhausted"),
        "{err}"
    );
    assert!(recorder.retries.is_empty());
}

#[tokio::test]
async fn max_tokens_keeps_truncated_tool_json_raw() {
    let fake = FakeAnthropic::start(
        Scenario::new().turn(
            Turn::tool("bash", json!({"command": "echo a long line of text"}))
                .stop_reason("max_tokens"),
        ),
    )
    .await;
    let (response, _) = turn(&fake).await;
    let response = response.unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    let ContentBlock::ToolUse {
        input: Value::String(raw),
        name,
        ..
    } = &response.content[0]
    else {
        panic!("{:?}", response.content)
    };
    assert_eq!(name, "bash");
    assert!(
        r#"{"command":"echo a long line of text"}"#.starts_with(raw.as_str()) && !raw.is_empty(),
        "{raw}"
    );
}

#[tokio::test]
async fn an_idle_stream_times_out_and_is_retried() {
    let fake = FakeAnthropic::start(
        Scenario::new()
            .text("slow words that never finish")
            .text("fast")
            .token_delay_ms(5_000),
    )
    .await;
    let config = AnthropicConfig {
        idle_timeout: Duration::from_millis(200),
        ..config(fake.base_url())
    };
    let mut recorder = Recorder::default();
    let response = AnthropicClient::new(config)
        .unwrap()
        .turn(&request(vec![user_text("hi")]), &mut recorder)
        .await
        .unwrap();
    assert_eq!(
        response.content,
        vec![ContentBlock::Text {
            text: "fast".into()
        }]
    );
    assert_eq!(
        recorder.retries[0].reason,
        "model API stream broke off: no data for 0.2 s"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error_without_the_key() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = AnthropicConfig {
        retry: RetryPolicy {
            max_attempts: 2,
            ..fast_retry()
        },
        ..config(format!("http://127.0.0.1:{port}"))
    };
    let mut recorder = Recorder::default();
    let err = AnthropicClient::new(config)
        .unwrap()
        .turn(&request(vec![user_text("hi")]), &mut recorder)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach the model API at 127.0.0.1:{port}: ")),
        "{text}"
    );
    assert!(!text.contains(KEY) && !format!("{err:?}").contains(KEY));
    assert_eq!(recorder.retries.len(), 1);
}
