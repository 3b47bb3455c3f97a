//! `dockhand run`, `serve` and `doctor`.

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn run_streams_the_work_and_leaves_the_branch_in_the_repo() {
    let scenario = Scenario::new()
        .token_delay_ms(5)
        .turn(Turn::text("I'll create it.").tool_use(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": "/workspace/hello.txt", "file_text": "hi\n"}),
        ))
        .turn(Turn::text("Checking.").tool_use("bash", json!({"command": "cat hello.txt; false"})))
        .text("All done.");
    let env = Env::new(scenario).await;
    let repo = env.dir.path().join("repo");
    make_repo(&repo);
    let out = tokio::task::spawn_blocking({
        let mut cmd = env.cmd();
        cmd.current_dir(&repo)
            .args(["run", "--repo", ".", "create hello.txt"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "I'll create it.",
        "✎ create /workspace/hello.txt",
        "$ cat hello.txt; false",
        "hi\n",
        "exit 1",
        "All done.",
        "✔ succeeded",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let branch = git(
        &repo,
        &[
            "branch",
            "--list",
            "dockhand/*",
            "--format=%(refname:short)",
        ],
    );
    assert!(branch.starts_with("dockhand/t"), "{branch}");
    assert_eq!(git(&repo, &["show", &format!("{branch}:hello.txt")]), "hi");

    // `tasks` and `logs --json` against the same data dir.
    let out = env.cmd().args(["tasks"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && listing.contains("succeeded")
            && listing.contains("create hello.txt"),
        "{listing}"
    );
    let id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = env.cmd().args(["logs", &id, "--json"]).output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=lines.len() as u64).collect::<Vec<_>>());
    assert_eq!(lines.last().unwrap()["data"]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_json_prints_one_event_per_line_and_fails_with_the_task() {
    let env = Env::new(Scenario::new().turn(Turn::text("no").stop_reason("refusal"))).await;
    let repo = env.dir.path().join("repo");
    make_repo(&repo);
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "--json",
        "--repo",
        repo.to_str().unwrap(),
        "do something",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success(), "a failed task exits non-zero");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "status");
    assert_eq!(last["data"]["status"], "failed");
    assert!(
        events.iter().all(|e| e["seq"].is_u64()),
        "only durable events"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_shows_the_admin_token_once_and_keeps_it_private() {
    let env = Env::new(Scenario::new()).await;
    let (mut first, url, printed) = env.serve();
    let token = env.token();
    assert!(printed.iter().any(|l| l.contains(&token)), "{printed:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.data().join("admin-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ok = reqwest::Client::new()
        .get(format!("{url}/api/v1/tasks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    kill9(&mut first);
    let (mut second, _, printed) = env.serve();
    assert!(
        !printed.iter().any(|l| l.contains(&token)),
        "shown only at first start"
    );
    assert_eq!(env.token(), token, "the token survives restarts");
    kill9(&mut second);
}

#[test]
fn doctor_names_what_is_missing_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("DOCKHAND_DATA_DIR", dir.path())
        .arg("doctor")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("✔ git"), "{stdout}");
    assert!(stdout.contains("✔ sandbox (local)"), "{stdout}");
    assert!(
        stdout.contains("✘ model: ANTHROPIC_API_KEY is not set"),
        "{stdout}"
    );
    assert!(stdout.contains("fix: export ANTHROPIC_API_KEY"), "{stdout}");
}
