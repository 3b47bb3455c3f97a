use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_without_credentials_is_refused_before_the_upgrade() {
    let h = Harness::start(Scenario::new()).await;
    let url = format!(
        "{}/api/v1/tasks/t0123456789a/events",
        h.base.replacen("http", "ws", 1)
    );
    let err = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_repositories_can_be_switched_off() {
    let h = Harness::start_with(Scenario::new(), |c| c.allow_local_repos = Some(false)).await;
    let repo = h.repo(&[("README", "r\n")]);
    let (got, v) = h
        .request(
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"repo": repo, "prompt": "x"})),
        )
        .await;
    assert_eq!(got, 400);
    assert!(
        v["error"]["fields"]["repo"]
            .as_str()
            .unwrap()
            .contains("allow_local_repos"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_queued_task_and_then_a_finished_one() {
    // One slot, taken by a task that waits on a gate; the second task stays queued.
    let gated = "while [ ! -e /workspace/.git/go ]; do sleep 0.02; done";
    let scenario = Scenario::new()
        .turn(dockhand_testkit::Turn::tool(
            "bash",
            json!({"command": gated}),
        ))
        .text("Done.");
    let h = Harness::start_with(scenario, |c| c.scheduler.max_concurrent = 1).await;
    let repo = h.repo(&[("README", "r\n")]);
    let first = h.submit(&repo, "first").await;
    let mut ws = h.ws(first.id.as_str(), 0).await;
    read_until(&mut ws, is_tool_call).await;
    let second = h.submit(&repo, "second").await;
    assert_eq!(h.task(second.id.as_str()).await.status, TaskStatus::Queued);
    let (got, v) = h
        .request(
            Method::POST,
            &format!("/api/v1/tasks/{}/cancel", second.id),
            None,
        )
        .await;
    assert_eq!(got, 202, "{v}");
    assert_eq!(v["status"], "cancelled");
    assert_eq!(v["error"], "cancelled by admin");
    open_gate(&h, first.id.as_str());
    let done = h.wait_done(first.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let (got, v) = h
        .request(
            Method::POST,
            &format!("/api/v1/tasks/{}/cancel", first.id),
            None,
        )
        .await;
    assert_eq!(got, 409, "{v}");
    assert_eq!(v["error"]["code"], "conflict");
}
