//! Images per owner: tasks may name only allowed images and their own environment
//! images; a repository asking for another image gets the default, with a
//! `policy` event; environment images are keyed and labelled by their owner.

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use serde_json::Value;
use serde_json::json;

use crate::common::*;
use crate::pull_requests::setup_full;

fn phase_detail(events: &[dockhand_protocol::Event], name: &str) -> Option<String> {
    events.iter().find_map(|e| match &e.body {
        EventBody::Phase(p) if p.phase == name => p.detail.clone(),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_name_only_allowed_images_and_repositories_get_the_default() {
    let h = Harness::start_with(Scenario::new().text("Done.").text("Done."), |c| {
        c.sandbox.allowed_images = vec!["ghcr.io/acme/*".into(), c.default_image()];
    })
    .await;
    let plain = h.repo(&[("README", "r\n")]);
    let post = |image: &str| {
        let body = json!({"repo": plain, "prompt": "x", "image": image});
        let h = &h;
        async move {
            h.request(reqwest::Method::POST, "/api/v1/tasks", Some(body))
                .await
        }
    };
    let (status, body) = post("alpine:3").await;
    assert_eq!(status, 400, "{body}");
    let why = body["error"]["fields"]["image"].as_str().unwrap();
    assert!(why.contains("sandbox.allowed_images"), "{why}");
    let (status, body) = post("dockhand-env:0123456789abcdef").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("not one of your environment images")
    );
    let (_, list) = h.request(reqwest::Method::GET, "/api/v1/tasks", None).await;
    assert_eq!(
        list["tasks"].as_array().unwrap().len(),
        0,
        "nothing created"
    );
    let (status, body) = post("ghcr.io/acme/tools:1").await;
    assert_eq!(status, 201, "{body}");
    h.wait_done(body["id"].as_str().unwrap()).await;

    let asks = h.repo(&[(".dockhand/environment.toml", "image = \"busybox:1\"\n")]);
    let task = h.submit(&asks, "run").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let detail = phase_detail(&h.events(task.id.as_str()).await, "policy").unwrap();
    assert!(
        detail.contains("asked for \"busybox:1\"") && detail.contains("sandbox.allowed_images"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_images_belong_to_their_owner() {
    let env = "setup = \"echo built > /opt/owned\"\n";
    let scenario = Scenario::new().text("Done.").text("Done.");
    let s = setup_full(scenario, true, |c| {
        c.sandbox.allowed_images = vec!["*".into()]
    })
    .await;
    let bare = s.gh.create_repo(
        "acme",
        "envy",
        &[(".dockhand/environment.toml", env)],
        "main",
    );
    bare.unwrap();
    let alice = &s.access;
    let (_, bob) = crate::accounts::personal_token(&s.h, "bob").await;
    let post = |token: String, body: Value| {
        let s = &s;
        async move {
            let resp =
                s.h.http
                    .post(format!("{}/api/v1/tasks", s.h.base))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let mut built = Vec::new();
    for token in [alice.clone(), bob.clone()] {
        let (status, task) = post(token, json!({"repo": "acme/envy", "prompt": "go"})).await;
        assert_eq!(status, 201, "{task}");
        let id = task["id"].as_str().unwrap();
        let done = s.h.wait_done(id).await;
        assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
        let detail = phase_detail(&s.h.events(id).await, "setup").unwrap();
        assert!(
            detail.starts_with("built "),
            "each owner builds their own: {detail}"
        );
        built.push(detail.trim_start_matches("built ").to_owned());
    }
    assert_ne!(built[0], built[1], "the owner is part of the key");
    let owner = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"dockhand.owner\"}}",
            &built[0],
        ])
        .output()
        .unwrap();
    let alice_id = String::from_utf8_lossy(&owner.stdout).trim().to_owned();
    assert!(!alice_id.is_empty());
    // Even with every image allowed, bob cannot run alice's.
    let (status, body) = post(
        bob.clone(),
        json!({"repo": "acme/envy", "prompt": "x", "image": built[0]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("another user's environment image"),
        "{body}"
    );
    let (status, body) = post(
        bob,
        json!({"repo": "acme/envy", "prompt": "x", "image": built[1]}),
    )
    .await;
    assert_eq!(status, 201, "his own is fine: {body}");
    s.h.wait_done(body["id"].as_str().unwrap()).await;
    for image in &built {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", image])
            .output();
    }
}
