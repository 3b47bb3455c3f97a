use std::time::Duration;

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::ToolResultEvent;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

fn results(events: &[dockhand_protocol::Event]) -> Vec<ToolResultEvent> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Pids of host processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_editor_cannot_follow_planted_symlinks_to_host_files() {
    let h0 = tempfile::tempdir().unwrap();
    let canary = h0.path().join("host-canary");
    std::fs::write(&canary, "host secret\n").unwrap();
    let target = canary.to_str().unwrap().to_owned();
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": format!("ln -s {target} /workspace/leak && ln -s {target} /workspace/evil")})))
        .turn(Turn::tool("str_replace_based_edit_tool", json!({"command": "view", "path": "/workspace/leak"})))
        .turn(Turn::tool("str_replace_based_edit_tool", json!({"command": "str_replace", "path": "/workspace/leak", "old_str": "host", "new_str": "pwned"})))
        .turn(Turn::tool("str_replace_based_edit_tool", json!({"command": "create", "path": "/workspace/evil", "file_text": "pwned\n"})))
        .text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "try to escape").await;
    h.wait_done(task.id.as_str()).await;
    let r = results(&h.events(task.id.as_str()).await);
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].exit_code, Some(0));
    for res in &r[1..] {
        assert!(res.is_error, "{res:?}");
        assert!(!res.output.contains("host secret"), "{res:?}");
    }
    assert!(r[1].output.contains("does not exist"), "{:?}", r[1]);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host secret\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_command_leaves_nothing_behind_and_the_shell_restarts() {
    let scenario = Scenario::new()
        .turn(Turn::tool(
            "bash",
            json!({"command": "cd /tmp && sleep 1000.4321 & sleep 1000.4321; wait"}),
        ))
        .turn(Turn::tool("bash", json!({"command": "echo alive; pwd"})))
        .text("Done.");
    let h = Harness::start_with(scenario, |c| c.agent.command_timeout_secs = 1).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "hang").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let r = results(&h.events(task.id.as_str()).await);
    assert!(
        r[0].is_error && r[0].output.contains("timed out after 1 s"),
        "{:?}",
        r[0]
    );
    assert_eq!(r[0].exit_code, None);
    assert_eq!(r[1].output, "alive\n/workspace");
    assert!(
        processes_with("1000.4321").is_empty(),
        "a timed-out process survived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn long_output_is_cut_and_the_cut_is_marked() {
    let scenario = Scenario::new()
        .turn(Turn::tool(
            "bash",
            json!({"command": "echo FIRST; seq 1 200000; echo LAST"}),
        ))
        .text("Done.");
    let h = Harness::start_with(scenario, |c| c.agent.result_cap_chars = 4000).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "print a lot").await;
    h.wait_done(task.id.as_str()).await;
    let r = results(&h.events(task.id.as_str()).await);
    let out = &r[0].output;
    assert!(out.chars().count() <= 4200, "{} chars", out.chars().count());
    assert!(out.starts_with("FIRST\n1\n2\n"), "{}", &out[..40]);
    assert!(
        out.ends_with("199999\n200000\nLAST"),
        "{}",
        &out[out.len() - 40..]
    );
    assert!(out.contains("response clipped"), "the cut is marked");
    // The model got the same capped text.
    let sent = h.fake.requests()[1]["messages"][2]["content"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(&sent, out);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_command_at_once() {
    let scenario = Scenario::new()
        .turn(Turn::tool(
            "bash",
            json!({"command": "echo started; sleep 600.555"}),
        ))
        .text("never reached");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "sleep").await;
    let id = task.id.as_str();
    let mut ws = h.ws(id, 0).await;
    read_until(&mut ws, is_started).await;
    eventually("the sleep to start", || {
        !processes_with("600.555").is_empty()
    })
    .await;
    let (status, v) = h
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let done = h.wait_done(id).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    assert_eq!(done.error.as_deref(), Some("cancelled by admin"));
    assert!(
        processes_with("600.555").is_empty(),
        "the command survived the cancel"
    );
    let r = results(&h.events(id).await);
    assert!(r[0].output.contains("interrupted"), "{:?}", r[0]);
    assert_eq!(h.fake.requests().len(), 1, "no model turn after the cancel");
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_stop_the_task_and_name_the_budget() {
    let step = |n: u32| {
        Turn::tool(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": format!("/workspace/f{n}"), "file_text": "x\n"}),
        )
    };
    let scenario = Scenario::new()
        .turn(step(1))
        .turn(step(2))
        .turn(step(3))
        .text("Done.");
    let h = Harness::start_with(scenario, |c| c.agent.max_turns = 2).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "many steps").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("budget exhausted") && error.contains("agent.max_turns"),
        "{error}"
    );
    // The work done before the budget ran out is still handed back.
    assert_eq!(git(&repo, &["show", &format!("{}:f2", done.branch)]), "x");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_reasons_refusal_truncation_and_pause() {
    let h = Harness::start(
        Scenario::new().turn(Turn::text("I can't help with that.").stop_reason("refusal")),
    )
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "something bad").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(done.error.unwrap().contains("refused"));

    let truncated = Turn::tool(
        "bash",
        json!({"command": "echo a very long command that gets cut"}),
    )
    .stop_reason("max_tokens");
    let h = Harness::start(Scenario::new().turn(truncated)).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "x").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(done.error.unwrap().contains("max_tokens"));
    assert!(
        results(&h.events(task.id.as_str()).await).is_empty(),
        "a truncated call never runs"
    );

    let h = Harness::start(
        Scenario::new()
            .turn(Turn::text("Thinking...").stop_reason("pause_turn"))
            .text("Done."),
    )
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "x").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let second = &h.fake.requests()[1]["messages"];
    let last = second.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["role"], "assistant",
        "a paused turn is sent back as is"
    );
    assert_eq!(last["content"][0]["text"], "Thinking...");
}
