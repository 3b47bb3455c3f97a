use dockhand_protocol::EventBody;
use dockhand_protocol::RetryEvent;
use dockhand_protocol::TaskStatus;
use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::FakeOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

/// Runs a task whose first model request meets `fault`; returns its retry events.
async fn survives(fault: Scenario) -> Vec<RetryEvent> {
    let scenario = Scenario {
        turns: fault.turns,
        ..Scenario::new()
    }
    .turn(Turn::tool(
        "str_replace_based_edit_tool",
        json!({"command": "create", "path": "/workspace/f", "file_text": "x\n"}),
    ))
    .text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "make f").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert_eq!(git(&repo, &["show", &format!("{}:f", done.branch)]), "x");
    h.events(task.id.as_str())
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::Retry(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn overloaded_529_is_retried_and_shown() {
    let retries = survives(Scenario::new().fault_status(529)).await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(retries[0].reason.contains("529"), "{:?}", retries[0]);
    assert_eq!(retries[0].attempt, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_429_waits_as_told_by_retry_after() {
    let retries = survives(Scenario::new().fault_retry_after(429, 1)).await;
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(retries[0].reason.contains("429"), "{:?}", retries[0]);
    assert_eq!(retries[0].wait_ms, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_mid_way_is_retried_whole() {
    let retries = survives(Scenario::new().fault_cut(3)).await;
    assert_eq!(retries.len(), 1, "{retries:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_fails_the_task_with_the_apis_own_message_and_no_key() {
    let opts = FakeOptions {
        api_key: Some("the-right-key".into()),
        ..FakeOptions::default()
    };
    let fake = FakeAnthropic::start_with(Scenario::new().text("never"), opts)
        .await
        .unwrap();
    // The harness sends `test-key`, which this fake refuses.
    let h = Harness::with_fake(fake, |_| {}).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "anything").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("model API returned 401"), "{error}");
    assert!(error.contains("invalid x-api-key"), "{error}");
    let all = serde_json::to_string(&h.events(task.id.as_str()).await).unwrap();
    assert!(!all.contains("test-key"), "the key leaked into events");
    assert!(!all.contains("\"retry\""), "a 401 is not retried");
}
