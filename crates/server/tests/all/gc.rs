use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

fn create(path: &str) -> Turn {
    Turn::tool(
        "str_replace_based_edit_tool",
        json!({"command": "create", "path": path, "file_text": "x\n"}),
    )
}

fn actions(report: &Value, kind: &str) -> Vec<(String, String, String)> {
    report[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["what"].as_str().unwrap().to_owned(),
                i["action"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_old_published_workspaces_and_never_unpublished_work() {
    let scenario = Scenario::new()
        .turn(create("/workspace/a"))
        .text("Done.")
        .turn(create("/workspace/b"))
        .turn(Turn::text("I won't continue.").stop_reason("refusal"))
        .global();
    let h = Harness::start_with(scenario, |c| c.retention.workspace_days = 0).await;
    let repo = h.repo(&[("README", "r\n")]);
    let published = h.submit(&repo, "make a").await;
    assert_eq!(
        h.wait_done(published.id.as_str()).await.status,
        TaskStatus::Succeeded
    );
    let unpublished = h.submit(&repo, "make b").await;
    assert_eq!(
        h.wait_done(unpublished.id.as_str()).await.status,
        TaskStatus::Failed
    );
    let ws_a = workspace(&h, published.id.as_str());
    let ws_b = workspace(&h, unpublished.id.as_str());

    let (status, dry) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/gc",
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let items = actions(&dry, "workspaces");
    let a = items
        .iter()
        .find(|(w, ..)| w == ws_a.to_str().unwrap())
        .unwrap();
    let b = items
        .iter()
        .find(|(w, ..)| w == ws_b.to_str().unwrap())
        .unwrap();
    assert_eq!(a.1, "remove", "{a:?}");
    assert_eq!(b.1, "kept", "{b:?}");
    assert!(b.2.contains("never handed back"), "{b:?}");
    assert!(ws_a.exists() && ws_b.exists(), "a dry run removes nothing");

    let (status, real) = h
        .request(reqwest::Method::POST, "/api/v1/gc", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{real}");
    assert!(!ws_a.exists(), "the published workspace is removed");
    assert!(ws_b.join("b").exists(), "unpublished work is kept");
    let again = actions(
        &h.request(
            reqwest::Method::POST,
            "/api/v1/gc",
            Some(json!({"dry_run": true})),
        )
        .await
        .1,
        "workspaces",
    );
    assert!(
        !again.iter().any(|(w, ..)| w == ws_a.to_str().unwrap()),
        "a removed workspace is not listed again"
    );

    let (status, v) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/gc",
            Some(json!({"dry_runn": true})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_orphaned_containers() {
    let h = Harness::docker(Scenario::new(), |_| {}).await;
    let coordinator = std::fs::read_to_string(h.data_dir().join("coordinator-id")).unwrap();
    let out = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--label",
            &format!("dockhand.coordinator={}", coordinator.trim()),
            "--label",
            "dockhand.task=tgone0000000",
        ])
        .arg(dockhand_sandbox::docker::image::default_image())
        .args(["sleep", "600"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let orphan = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (_, dry) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/gc",
            Some(json!({"dry_run": true})),
        )
        .await;
    let listed = actions(&dry, "containers");
    assert!(
        listed
            .iter()
            .any(|(id, action, _)| orphan.starts_with(id.as_str()) && action == "remove"),
        "{listed:?}"
    );
    assert_eq!(h.containers(), vec![orphan.clone()]);
    h.request(reqwest::Method::POST, "/api/v1/gc", Some(json!({})))
        .await;
    assert!(h.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_after_gc_continues_from_the_tasks_branch() {
    let scenario = Scenario::new()
        .turn(create("/workspace/one"))
        .text("Made one.")
        .turn(create("/workspace/two"))
        .text("Made two.");
    let h = Harness::start_with(scenario, |c| c.retention.workspace_days = 0).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "make one").await;
    let first = h.wait_done(task.id.as_str()).await;
    assert_eq!(first.status, TaskStatus::Succeeded, "{:?}", first.error);
    let first_head = git(&repo, &["rev-parse", &first.branch]);
    let ws = workspace(&h, task.id.as_str());
    h.request(reqwest::Method::POST, "/api/v1/gc", Some(json!({})))
        .await;
    assert!(!ws.exists(), "the published workspace is removed");
    // Something new on the base branch meanwhile: the task keeps its own base.
    std::fs::write(repo.join("LATER"), "l\n").unwrap();
    git(&repo, &["add", "LATER"]);
    git(&repo, &["commit", "-q", "-m", "later"]);

    let path = format!("/api/v1/tasks/{}/messages", task.id);
    let (status, v) = h
        .request(
            reqwest::Method::POST,
            &path,
            Some(json!({"text": "now two"})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let second = h.wait_done(task.id.as_str()).await;
    assert_eq!(second.status, TaskStatus::Succeeded, "{:?}", second.error);
    assert!(ws.join(".git").exists(), "a new workspace in its place");
    let branch = &second.branch;
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{branch}~1")]),
        first_head
    );
    assert_eq!(git(&repo, &["show", &format!("{branch}:one")]), "x");
    assert_eq!(git(&repo, &["show", &format!("{branch}:two")]), "x");
    let later = git(&repo, &["ls-tree", "--name-only", branch]);
    assert!(!later.contains("LATER"), "{later}");
    let events = h.events(task.id.as_str()).await;
    let continued = events.iter().any(|e| {
        matches!(&e.body, dockhand_protocol::EventBody::Phase(p)
            if p.phase == "clone"
                && p.detail.as_deref().is_some_and(|d| d.contains("continued from its branch")))
    });
    assert!(continued, "the clone phase says so");
}
