//! Isolation: another user's tasks and tokens answer 404 on every route the
//! OpenAPI document lists.

use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use crate::accounts::*;
use crate::common::*;

/// Every route, called by bob on alice's things, answers 404 (403 on operator-only
/// routes) and changes nothing. Routes come from the OpenAPI document, so a new one
/// cannot slip past: the test fails on a path it does not know.
#[tokio::test(flavor = "multi_thread")]
async fn other_users_things_answer_404_on_every_route() {
    let gated = "while [ ! -e /workspace/.git/go ]; do sleep 0.02; done";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": gated})))
        .text("Done.")
        // Counted globally, so the task bob starts finds the turns used up.
        .global();
    // One slot, so tasks bob starts wait and leave alice's turns alone.
    let (h, _gh) = github_harness(scenario, |c| c.scheduler.max_concurrent = 1).await;
    let alice_access = device_sign_in(&h).await["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let repo = h.repo(&[("README", "r\n")]);
    let create = h
        .http
        .post(format!("{}/api/v1/tasks", h.base))
        .bearer_auth(&alice_access)
        .json(&json!({"repo": repo, "prompt": "mine"}));
    let task: Value = create.send().await.unwrap().json().await.unwrap();
    let task_id = task["id"].as_str().unwrap().to_owned();
    let mut ws = h.ws(&task_id, 0).await;
    read_until(&mut ws, is_tool_call).await;
    let tok: Value = h
        .http
        .post(format!("{}/api/v1/tokens", h.base))
        .bearer_auth(&alice_access)
        .json(&json!({"name": "alice's"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice_token = tok["token"].as_str().unwrap().to_owned();
    let (bob_browser, _) = browser(&h, "bob").await;
    let bob: Value = bob_browser
        .post(format!("{}/api/v1/tokens", h.base))
        .json(&json!({"name": "b"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bob = bob["token"].as_str().unwrap().to_owned();
    let before = h.task(&task_id).await;

    let spec: Value = reqwest::get(format!("{}/api/v1/openapi.json", h.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let public = op
                .get("security")
                .is_some_and(|s| s.as_array().is_some_and(|a| a.is_empty()));
            let url = path.replace(
                "{id}",
                if path.starts_with("/api/v1/tokens/") {
                    tok["id"].to_string()
                } else {
                    task_id.clone()
                }
                .as_str(),
            );
            let req = h
                .http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{url}", h.base),
                )
                .bearer_auth(&bob);
            let req = match (method.as_str(), path.as_str()) {
                ("post", "/api/v1/tasks/{id}/messages") => req.json(&json!({"text": "not yours"})),
                ("post", "/api/v1/tasks") => {
                    req.json(&json!({"repo": repo, "prompt": "bob's own"}))
                }
                ("post", "/api/v1/tokens") => req.json(&json!({"name": "bob's own"})),
                ("post", "/api/v1/gc") => req.json(&json!({})),
                ("post", _) => req.json(&json!({})),
                _ => req,
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            if path.contains("{id}") {
                assert_eq!(status, 404, "{method} {path}: {body}");
            } else if op.get("x-dockhand-operator-only").is_some() {
                assert_eq!(status, 403, "{method} {path}: {body}");
            } else if public || path.starts_with("/auth/") {
                // Sign-in routes and public pages hold nothing of anyone's.
            } else {
                assert!(
                    status < 500 && !body.contains(&task_id) && !body.contains("alice"),
                    "{method} {path}: {status} {body}"
                );
                assert!(
                    [
                        "/api/v1/tasks",
                        "/api/v1/me",
                        "/api/v1/ws-ticket",
                        "/api/v1/tokens",
                        "/api/v1/repos"
                    ]
                    .contains(&path.as_str()),
                    "{path} is new: decide how bob may touch alice's things there and add it to this test"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
    // The events WebSocket too.
    let url = format!(
        "{}/api/v1/tasks/{task_id}/events",
        h.base.replacen("http", "ws", 1)
    );
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {bob}").parse().unwrap());
    let err = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("404"), "{err}");
    // Nothing of alice's changed.
    open_gate(&h, &task_id);
    let after = h.wait_done(&task_id).await;
    assert_eq!(after.status, TaskStatus::Succeeded, "{:?}", after.error);
    assert_eq!(before.prompt, after.prompt);
    let events = h.events(&task_id).await;
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("not yours")
    );
    assert_eq!(
        get(&h, &alice_token, "/api/v1/me").await.0,
        200,
        "alice's token survives"
    );
    // An operator sees everything.
    let (status, list) = get(&h, &h.token, "/api/v1/tasks").await;
    assert_eq!(status, 200);
    assert!(list.to_string().contains(&task_id));
}
