//! Checkpoints on every backend: each turn that changed files leaves a
//! checkpoint in the store whose restored tree holds that turn's files; an
//! unchanged turn leaves none; the agent's HEAD and index are untouched; one over
//! `sandbox.checkpoint_max_mb` is skipped with a `checkpoint` event.

use std::path::Path;
use std::path::PathBuf;

use dockhand_protocol::CheckpointEvent;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_store::CheckpointRow;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

fn bash(cmd: &str) -> Turn {
    Turn::tool("bash", json!({ "command": cmd }))
}

/// Messages: 0 prompt, then each tool turn and its results; the results of the
/// n-th tool turn are message 2n.
fn scenario() -> Scenario {
    Scenario::new()
        .turn(bash("echo one > a.txt"))
        .turn(bash("cat a.txt"))
        .turn(Turn::tool(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": "/workspace/d/b.txt", "file_text": "two\n"}),
        ))
        .turn(bash(
            "rm README && git status --porcelain && git diff --cached --name-only && git rev-parse HEAD && echo end",
        ))
        .turn(bash("head -c 3000000 /dev/urandom > big.bin"))
        .text("Done.")
}

async fn checkpoints_of_every_turn(h: Harness) {
    let repo = h.repo(&[("README", "r\n")]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    let task = h.submit(&repo, "work in turns").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let events = h.events(task.id.as_str()).await;

    // The agent saw its own index and HEAD as if there were no checkpoints.
    let status = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::ToolResult(r) if r.output.ends_with("end") => Some(r.output.clone()),
            _ => None,
        })
        .expect("the status turn ran");
    assert_eq!(
        status,
        format!(" D README\n?? a.txt\n?? d/\n{base}\nend"),
        "untracked files stay untracked, nothing is staged, HEAD is the base"
    );

    let checkpoints = checkpoint_events(&events);
    let turns: Vec<(u32, bool)> = checkpoints
        .iter()
        .map(|c| (c.turn, c.skipped_reason.is_some()))
        .collect();
    // The turn answered at message 4 (cat) changed nothing.
    assert_eq!(
        turns,
        [(2, false), (6, false), (8, false), (10, true)],
        "{checkpoints:?}"
    );
    let skipped = &checkpoints[3];
    let reason = skipped.skipped_reason.as_deref().unwrap();
    assert!(
        reason.contains("sandbox.checkpoint_max_mb (1 MiB)"),
        "{reason}"
    );
    assert!(
        skipped.bytes > 1 << 20 && skipped.commit.is_some(),
        "{skipped:?}"
    );

    let store = &h.coord().services().store;
    let id = TaskId::parse(task.id.as_str()).unwrap();
    let rows = store.checkpoints(&id).unwrap();
    assert_eq!(rows.iter().map(|r| r.turn).collect::<Vec<_>>(), [2, 6, 8]);
    // Nothing secret, and no bundle bytes in an event.
    for r in &rows {
        let blob = store.blob(r.blob_id).unwrap();
        assert_eq!(blob.len() as u64, r.size);
        assert!(!blob.windows(8).any(|w| w == b"test-key"));
    }
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("git bundle") && !all.contains("test-key"));

    // Restored into a fresh repository holding only the base, each checkpoint's
    // tree holds the files of its turn.
    let (fresh, newest) = restore_fresh(&h, &repo, &id).await;
    assert_eq!(newest, rows[2]);
    let files = |c: &str| git(&fresh, &["ls-tree", "-r", "--name-only", c]);
    assert_eq!(files(&rows[0].commit), "README\na.txt");
    assert_eq!(files(&rows[1].commit), "README\na.txt\nd/b.txt");
    assert_eq!(files(&rows[2].commit), "a.txt\nd/b.txt");
    assert_eq!(
        git(&fresh, &["show", &format!("{}:d/b.txt", rows[1].commit)]),
        "two"
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(
            git(&fresh, &["rev-parse", &format!("{}^{{tree}}", r.commit)]),
            r.tree
        );
        let parent = if i == 0 { &base } else { &rows[i - 1].commit };
        assert_eq!(
            &git(&fresh, &["rev-parse", &format!("{}^", r.commit)]),
            parent
        );
    }
    let target = format!("refs/dockhand/checkpoints/{}", task.id);
    assert_eq!(git(&fresh, &["rev-parse", &target]), newest.commit);
}

/// Restores a task's checkpoints into a fresh bare repository holding only the
/// base (`main` of `repo`); returns it and the newest checkpoint.
async fn restore_fresh(h: &Harness, repo: &Path, id: &TaskId) -> (PathBuf, CheckpointRow) {
    let fresh = h.dir.path().join(format!("restored-{id}.git"));
    git(
        h.dir.path(),
        &["init", "-q", "--bare", fresh.to_str().unwrap()],
    );
    git(&fresh, &["fetch", "-q", repo.to_str().unwrap(), "main"]);
    let scratch = h.dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let store = &h.coord().services().store;
    let newest = dockhand_server::checkpoint::restore(store, id, &fresh, &scratch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "scratch files removed"
    );
    (fresh, newest)
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_on_local_hold_each_turns_files_and_leave_the_agents_git_alone() {
    let h = Harness::start_with(scenario(), |c| c.sandbox.checkpoint_max_mb = 1).await;
    checkpoints_of_every_turn(h).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_on_docker_hold_each_turns_files_and_leave_the_agents_git_alone() {
    let h = Harness::docker(scenario(), |c| c.sandbox.checkpoint_max_mb = 1).await;
    checkpoints_of_every_turn(h).await;
}

fn checkpoint_events(events: &[dockhand_protocol::Event]) -> Vec<CheckpointEvent> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Checkpoint(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_checkpoint_is_an_event_and_the_task_goes_on() {
    // The private index cannot be written while a directory stands in its place.
    let scenario = Scenario::new()
        .turn(bash(
            "mkdir -p .git/dockhand/checkpoint.index && echo x > f.txt",
        ))
        .turn(bash(
            "rm -r .git/dockhand/checkpoint.index && echo y > g.txt",
        ))
        .text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "break the snapshot").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let all = h.events(task.id.as_str()).await;
    let events = checkpoint_events(&all);
    assert_eq!(events.len(), 2, "{events:?}");
    let failed = &events[0];
    let reason = failed.skipped_reason.as_deref().unwrap();
    assert!(
        failed.turn == 2 && failed.commit.is_none() && reason.starts_with("the snapshot failed"),
        "{failed:?}"
    );
    // The next turn's checkpoint is stored, the first of the chain.
    assert_eq!(
        (events[1].turn, events[1].skipped_reason.as_ref()),
        (4, None)
    );
    let store = &h.coord().services().store;
    let rows = store
        .checkpoints(&TaskId::parse(task.id.as_str()).unwrap())
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].parent, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_can_be_turned_off() {
    let scenario = Scenario::new().turn(bash("echo x > f.txt")).text("Done.");
    let h = Harness::start_with(scenario, |c| c.sandbox.checkpoint_max_mb = 0).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "no snapshots").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert!(checkpoint_events(&h.events(task.id.as_str()).await).is_empty());
    let id = TaskId::parse(task.id.as_str()).unwrap();
    assert!(
        h.coord()
            .services()
            .store
            .checkpoints(&id)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_that_lost_its_last_checkpoint_starts_again_from_the_base() {
    // The agent removes the ref and lets gc take the checkpoint's objects (and the
    // blobs the private index names), as a sandbox seeded afresh would lack them.
    let scenario = Scenario::new()
        .turn(bash("echo a > a.txt"))
        .turn(bash(
            "git update-ref -d refs/dockhand/checkpoint && git gc -q --prune=now && echo b > b.txt",
        ))
        .text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    let task = h.submit(&repo, "lose it").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let events = checkpoint_events(&h.events(task.id.as_str()).await);
    assert!(
        events.iter().all(|e| e.skipped_reason.is_none()),
        "{events:?}"
    );
    let id = TaskId::parse(task.id.as_str()).unwrap();
    let rows = h.coord().services().store.checkpoints(&id).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].parent, Some(rows[0].id));
    let (fresh, newest) = restore_fresh(&h, &repo, &id).await;
    assert_eq!(newest, rows[1]);
    let files = git(&fresh, &["ls-tree", "-r", "--name-only", &newest.commit]);
    assert_eq!(files, "README\na.txt\nb.txt");
    let parent = git(&fresh, &["rev-parse", &format!("{}^", newest.commit)]);
    assert_eq!(
        parent, base,
        "the chain of commits starts again from the base"
    );
}
