//! Webhook signatures, delivery, and payload shapes.

use axum::body::Bytes;
use axum::http::HeaderMap;
use dockhand_testkit::github::send_webhook;
use dockhand_testkit::github::webhook_signature;
use tokio::sync::mpsc;

use super::git::fake_with_repo;
use super::*;

#[test]
fn the_signature_matches_githubs_test_vector() {
    assert_eq!(
        webhook_signature("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[tokio::test]
async fn send_webhook_signs_the_exact_body_with_hookshots_headers() {
    let (tx, mut rx) = mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let app = axum::Router::new().route(
        "/webhooks/github",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                tx.send((headers, body)).unwrap();
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/github", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let payload = json!({"action": "created", "repository": {"id": 42}, "text": "é \u{1F600}"});
    let response = send_webhook(&url, "s3cret", "issue_comment", "d-1", &payload)
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (headers, body) = rx.recv().await.unwrap();
    server.abort();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-github-event"), "issue_comment");
    assert_eq!(header("x-github-delivery"), "d-1");
    assert_eq!(header("user-agent"), "GitHub-Hookshot/fake");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-github-hook-installation-target-id"), "42");
    assert_eq!(
        header("x-hub-signature-256"),
        webhook_signature("s3cret", &body)
    );
    assert_ne!(
        header("x-hub-signature-256"),
        webhook_signature("other", &body)
    );
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), payload);
}

#[tokio::test]
async fn payloads_have_githubs_shapes_and_the_fakes_ids() {
    let (fake, _dir, _bare) = fake_with_repo().await;
    let base = fake.base_url();
    let number = fake.create_issue("alice", "widgets", "Crash on start", "Steps: run it.");
    let token = sign_in(&fake, None, "repo").await;
    let repo: Value = api(&fake, &token, "/repos/alice/widgets")
        .await
        .json()
        .await
        .unwrap();

    let payload = fake.issue_comment_payload(
        "alice/widgets",
        number,
        "/dockhand fix the crash",
        "bob",
        "COLLABORATOR",
        false,
    );
    assert_eq!(payload["action"], "created");
    let issue = &payload["issue"];
    assert_eq!(issue["number"], number);
    assert_eq!(issue["title"], "Crash on start");
    assert_eq!(issue["body"], "Steps: run it.");
    assert_eq!(issue["user"]["login"], "alice");
    assert_eq!(issue["html_url"], format!("{base}/alice/widgets/issues/1"));
    assert!(issue.get("pull_request").is_none());
    let comment = &payload["comment"];
    assert!(comment["id"].is_u64());
    assert_eq!(comment["body"], "/dockhand fix the crash");
    assert_eq!(
        comment["user"],
        json!({"login": "bob", "id": 1002, "type": "User", "node_id": comment["user"]["node_id"],
               "avatar_url": comment["user"]["avatar_url"], "url": comment["user"]["url"],
               "html_url": comment["user"]["html_url"], "site_admin": false})
    );
    assert_eq!(comment["author_association"], "COLLABORATOR");
    let repository = &payload["repository"];
    for field in [
        "id",
        "name",
        "full_name",
        "owner",
        "private",
        "default_branch",
        "clone_url",
        "html_url",
    ] {
        assert_eq!(repository[field], repo[field], "{field}");
    }
    assert_eq!(repository["default_branch"], "trunk");
    assert_eq!(payload["sender"]["login"], "bob");
    assert_eq!(payload["sender"]["id"], 1002);
    assert_eq!(payload["sender"]["type"], "User");

    // On a pull request, and from a bot.
    let on_pull = fake.issue_comment_payload(
        "alice/widgets",
        7,
        "Deployed",
        "deploy-app[bot]",
        "NONE",
        true,
    );
    let pull_request = &on_pull["issue"]["pull_request"];
    assert_eq!(
        pull_request["html_url"],
        format!("{base}/alice/widgets/pull/7")
    );
    assert_eq!(
        pull_request["url"],
        format!("{base}/repos/alice/widgets/pulls/7")
    );
    assert_eq!(on_pull["sender"]["type"], "Bot");
    assert_eq!(on_pull["sender"]["login"], "deploy-app[bot]");
    assert_eq!(on_pull["comment"]["user"]["type"], "Bot");
    assert_eq!(on_pull["comment"]["author_association"], "NONE");
    assert_ne!(on_pull["comment"]["id"], payload["comment"]["id"]);
    // The comments a payload describes are not the fake's own.
    assert_eq!(fake.state()["comments"], json!([]));

    let labeled = fake.issues_labeled_payload("alice/widgets", number, "dockhand", "alice");
    assert_eq!(labeled["action"], "labeled");
    assert_eq!(labeled["label"]["name"], "dockhand");
    assert_eq!(labeled["issue"]["title"], "Crash on start");
    assert_eq!(labeled["issue"]["body"], "Steps: run it.");
    assert_eq!(labeled["issue"]["labels"][0]["name"], "dockhand");
    assert_eq!(labeled["sender"]["id"], 1001);
    assert_eq!(labeled["repository"]["full_name"], "alice/widgets");
}
