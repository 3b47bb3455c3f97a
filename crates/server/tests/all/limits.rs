//! Rate limits and caps answer 429 with Retry-After.

use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn limits_answer_429_with_retry_after() {
    let gated = "while [ ! -e /workspace/.git/go ]; do sleep 0.02; done";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": gated})))
        .text("Done.")
        // Counted globally, so the last task finds the turns used up.
        .global();
    let h = Harness::start_with(scenario, |c| {
        c.auth.rate_limits.signin_per_ip = 3;
        c.auth.max_active_tasks_per_user = 1;
    })
    .await;
    for _ in 0..3 {
        let r = h
            .http
            .post(format!("{}/auth/token", h.base))
            .json(&json!({"token": "dh_wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = h
        .http
        .post(format!("{}/auth/token", h.base))
        .json(&json!({"token": "dh_wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The per-user cap on queued and running tasks.
    let repo = h.repo(&[("README", "r\n")]);
    let first = h.submit(&repo, "one").await;
    let (status, body) = h
        .request(
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"repo": repo, "prompt": "two"})),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_active_tasks_per_user")
    );
    let mut ws = h.ws(first.id.as_str(), 0).await;
    read_until(&mut ws, is_tool_call).await;
    open_gate(&h, first.id.as_str());
    h.wait_done(first.id.as_str()).await;
    h.submit(&repo, "two").await;
}
