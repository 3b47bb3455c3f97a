use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use reqwest::Method;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_required_except_on_public_routes() {
    let h = Harness::start(Scenario::new()).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        (Method::GET, "/api/v1/tasks"),
        (Method::POST, "/api/v1/tasks"),
        (Method::GET, "/api/v1/tasks/t0123456789a"),
        (Method::GET, "/api/v1/tasks/t0123456789a/events"),
        (Method::POST, "/api/v1/tasks/t0123456789a/cancel"),
    ] {
        for auth in [
            None,
            Some("Bearer dh_wrong"),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            let mut req = client.request(method.clone(), format!("{}{path}", h.base));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    for path in ["/healthz", "/api/v1/openapi.json", "/metrics"] {
        let resp = client
            .get(format!("{}{path}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let spec: Value = client
        .get(format!("{}/api/v1/openapi.json", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/messages",
        "/api/v1/tasks/{id}/cancel",
        "/api/v1/tasks/{id}/events",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "the OpenAPI document lacks {path}"
        );
    }
    // A WebSocket without credentials is refused before the upgrade.
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
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let h = Harness::start_with(Scenario::new(), |c| {
        c.limits.max_prompt_bytes = 1000;
        c.limits.max_body_bytes = 4000;
    })
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let repo_s = repo.to_str().unwrap();
    let post = |body: &'static str, content_type: &'static str| {
        h.http
            .post(format!("{}/api/v1/tasks", h.base))
            .bearer_auth(&h.token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            post("{not json", "application/json").await.unwrap(),
            400,
            "not valid JSON",
        ),
        (
            post(r#"{"repo": "a/b"}"#, "application/json")
                .await
                .unwrap(),
            400,
            "prompt",
        ),
        (
            post(
                r#"{"repo": "a/b", "prompt": "x", "promt": 1}"#,
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "promt",
        ),
        (
            post(r#"{"repo": 5, "prompt": "x"}"#, "application/json")
                .await
                .unwrap(),
            400,
            "repo",
        ),
        (
            post(r#"{"repo": "a/b", "prompt": "x"}"#, "text/plain")
                .await
                .unwrap(),
            415,
            "JSON",
        ),
        (post("[]", "application/json").await.unwrap(), 400, "schema"),
    ];
    for (resp, status, needle) in cases {
        assert_eq!(resp.status().as_u16(), status);
        let body: Value = resp.json().await.unwrap();
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    let checks: Vec<(Value, u16, &str)> = vec![
        (json!({"repo": repo_s, "prompt": "   "}), 400, "prompt"),
        (
            json!({"repo": repo_s, "prompt": "x".repeat(1001)}),
            413,
            "prompt",
        ),
        (json!({"repo": "", "prompt": "x"}), 400, "repo"),
        (json!({"repo": "not a repo", "prompt": "x"}), 400, "repo"),
        (
            json!({"repo": "/definitely/not/here", "prompt": "x"}),
            400,
            "repo",
        ),
        (
            json!({"repo": repo_s, "prompt": "x", "base_branch": "../evil"}),
            400,
            "base_branch",
        ),
        (
            json!({"repo": repo_s, "prompt": "x", "model": "a b"}),
            400,
            "model",
        ),
        (
            json!({"repo": repo_s, "prompt": "x", "image": "--privileged"}),
            400,
            "image",
        ),
    ];
    for (body, status, field) in checks {
        let (got, v) = h
            .request(Method::POST, "/api/v1/tasks", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body} -> {v}");
        assert!(v["error"]["fields"][field].is_string(), "{body} -> {v}");
    }
    // A body over the limit.
    let huge = json!({"repo": repo_s, "prompt": "y".repeat(5000)});
    let (got, v) = h.request(Method::POST, "/api/v1/tasks", Some(huge)).await;
    assert_eq!(got, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large");

    // Unknown ids, in every shape, are 404 like other people's tasks.
    for id in ["t0123456789a", "nope", "t0123456789a%2F..", "T0123456789A"] {
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::GET, "/events", None),
            (Method::POST, "/cancel", None),
            (Method::POST, "/messages", Some(json!({"text": "hi"}))),
        ] {
            let (got, v) = h
                .request(method.clone(), &format!("/api/v1/tasks/{id}{suffix}"), body)
                .await;
            assert_eq!(got, 404, "{method} {id}{suffix}: {v}");
            assert_eq!(v["error"]["code"], "not_found");
        }
    }
    for q in ["status=bogus", "cursor=zzz", "limit=0", "limit=abc"] {
        let (got, v) = h
            .request(Method::GET, &format!("/api/v1/tasks?{q}"), None)
            .await;
        assert_eq!(got, 400, "{q}: {v}");
    }
    let (got, _) = h.request(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(got, 404);
    let (got, _) = h.request(Method::DELETE, "/api/v1/tasks", None).await;
    assert_eq!(got, 405);

    // Nothing was stored, and the model was never called.
    let (got, v) = h.request(Method::GET, "/api/v1/tasks", None).await;
    assert_eq!(got, 200);
    assert_eq!(v["tasks"].as_array().unwrap().len(), 0, "{v}");
    assert!(h.fake.requests().is_empty());
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
