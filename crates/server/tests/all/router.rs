//! HTTP-level cases, sent straight to the router (`tower::ServiceExt::oneshot`)
//! with no socket: credentials, malformed and invalid input, unknown ids and
//! routes.

use dockhand_testkit::Scenario;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_required_except_on_public_routes() {
    let h = Harness::start(Scenario::new()).await;
    for (method, path) in [
        ("GET", "/api/v1/tasks"),
        ("POST", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/t0123456789a"),
        ("GET", "/api/v1/tasks/t0123456789a/events"),
        ("POST", "/api/v1/tasks/t0123456789a/cancel"),
    ] {
        for auth in [
            None,
            Some("Bearer dh_wrong"),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let (status, headers, body) = h.call(method, path, &headers, "").await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
    }
    for path in ["/healthz", "/api/v1/openapi.json", "/metrics"] {
        let (status, _, _) = h.call("GET", path, &[], "").await;
        assert_eq!(status, 200, "{path}");
    }
    let (_, _, spec) = h.call("GET", "/api/v1/openapi.json", &[], "").await;
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
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_a_clear_4xx() {
    let h = Harness::start(Scenario::new()).await;
    let bearer = format!("Bearer {}", h.token);
    let json = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let text = [
        ("authorization", bearer.as_str()),
        ("content-type", "text/plain"),
    ];
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, &str, u16, &str); 6] = [
        (&json, "{not json", 400, "not valid JSON"),
        (&json, r#"{"repo": "a/b"}"#, 400, "prompt"),
        (
            &json,
            r#"{"repo": "a/b", "prompt": "x", "promt": 1}"#,
            400,
            "promt",
        ),
        (&json, r#"{"repo": 5, "prompt": "x"}"#, 400, "repo"),
        (&text, r#"{"repo": "a/b", "prompt": "x"}"#, 415, "JSON"),
        (&json, "[]", 400, "schema"),
    ];
    for (headers, body, status, needle) in cases {
        let (got, _, v) = h.call("POST", "/api/v1/tasks", headers, body).await;
        assert_eq!(got, status, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_fields_get_a_field_error_and_store_nothing() {
    let h = Harness::start_with(Scenario::new(), |c| {
        c.limits.max_prompt_bytes = 1000;
        c.limits.max_body_bytes = 4000;
    })
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let repo_s = repo.to_str().unwrap();
    let bearer = format!("Bearer {}", h.token);
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
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
        let (got, _, v) = h
            .call("POST", "/api/v1/tasks", &headers, &body.to_string())
            .await;
        assert_eq!(got, status, "{body} -> {v}");
        assert!(v["error"]["fields"][field].is_string(), "{body} -> {v}");
    }
    // A body over the limit.
    let huge = json!({"repo": repo_s, "prompt": "y".repeat(5000)}).to_string();
    let (got, _, v) = h.call("POST", "/api/v1/tasks", &headers, &huge).await;
    assert_eq!(got, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large");

    // Nothing was stored, and the model was never called.
    let (got, _, v) = h.call("GET", "/api/v1/tasks", &headers, "").await;
    assert_eq!(got, 200);
    assert_eq!(v["tasks"].as_array().unwrap().len(), 0, "{v}");
    assert!(h.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_ids_routes_queries_and_methods_are_refused() {
    let h = Harness::start(Scenario::new()).await;
    let bearer = format!("Bearer {}", h.token);
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    // Unknown ids, in every shape, are 404 like other people's tasks.
    for id in ["t0123456789a", "nope", "t0123456789a%2F..", "T0123456789A"] {
        for (method, suffix, body) in [
            ("GET", "", ""),
            ("GET", "/events", ""),
            ("POST", "/cancel", ""),
            ("POST", "/messages", r#"{"text": "hi"}"#),
        ] {
            let path = format!("/api/v1/tasks/{id}{suffix}");
            let (got, _, v) = h.call(method, &path, &headers, body).await;
            assert_eq!(got, 404, "{method} {path}: {v}");
            assert_eq!(v["error"]["code"], "not_found");
        }
    }
    for q in [
        "status=bogus",
        "cursor=zzz",
        "limit=0",
        "limit=abc",
        "limit=201",
    ] {
        let (got, _, v) = h
            .call("GET", &format!("/api/v1/tasks?{q}"), &headers, "")
            .await;
        assert_eq!(got, 400, "{q}: {v}");
    }
    let (got, _, v) = h.call("GET", "/api/v1/nothing", &headers, "").await;
    assert_eq!(got, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    let (got, _, v) = h.call("DELETE", "/api/v1/tasks", &headers, "").await;
    assert_eq!(got, 405, "{v}");
    assert_eq!(v["error"]["code"], "method_not_allowed");
}
