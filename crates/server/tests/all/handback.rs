//! Handing the work back when it cannot be: a rejected push keeps the work, in
//! the workspace and in the bundle taken from the sandbox.

use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use serde_json::json;

use crate::common::*;
use crate::pull_requests::create;
use crate::pull_requests::setup;

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_push_fails_clearly_and_keeps_the_work() {
    let scenario = Scenario::new()
        .turn(create("/workspace/KEEP.md", "precious\n"))
        .text("Done.");
    let s = setup(scenario, false).await;
    let hook = s.bare().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'protected branch: pushes are not allowed here' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let task = s.submit("keep this").await;
    let id = task["id"].as_str().unwrap().to_owned();
    let done = s.h.wait_done(&id).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("protected branch") && error.contains("kept"),
        "{error}"
    );
    let ws = workspace(&s.h, &id);
    assert_eq!(
        git(
            &ws,
            &[
                "show",
                &format!("{}:KEEP.md", task["branch"].as_str().unwrap())
            ]
        ),
        "precious"
    );
    assert!(s.state().await["pulls"].as_array().unwrap().is_empty());
    // The bundle taken from the sandbox stays until a push succeeds.
    let bundle = s.h.data_dir().join("bundles").join(format!("{id}.bundle"));
    let heads = git(&ws, &["bundle", "list-heads", bundle.to_str().unwrap()]);
    assert!(heads.contains(task["branch"].as_str().unwrap()), "{heads}");
    // gc keeps a workspace whose work was never handed back.
    let (_, report) =
        s.h.request(
            reqwest::Method::POST,
            "/api/v1/gc",
            Some(json!({"dry_run": true})),
        )
        .await;
    let kept = report["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["task"] == id.as_str() && w["action"] == "kept");
    assert!(kept, "{report}");
}
