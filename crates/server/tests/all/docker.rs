//! The docker backend end to end: real containers on the real engine.

use std::time::Duration;

use dockhand_protocol::EventBody;
use dockhand_protocol::PhaseEvent;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::ToolResultEvent;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

fn bash(cmd: &str) -> Turn {
    Turn::tool("bash", json!({ "command": cmd }))
}

fn results(events: &[dockhand_protocol::Event]) -> Vec<ToolResultEvent> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ToolResult(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn phases(events: &[dockhand_protocol::Event]) -> Vec<PhaseEvent> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Phase(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Waits (bounded) until `cond` holds; for conditions outside the event stream.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_runs_unprivileged_in_its_own_container() {
    let scenario = Scenario::new()
        .turn(bash("id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; test -e /var/run/docker.sock || echo no-docker-sock"))
        .turn(Turn::tool("str_replace_based_edit_tool", json!({"command": "create", "path": "/workspace/made-in-docker.txt", "file_text": "hi\n"})))
        .text("Done.");
    let h = Harness::docker(scenario, |_| {}).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "look at yourself").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let out = &results(&h.events(task.id.as_str()).await)[0].output;
    let mut lines = out.lines();
    let uid: u32 = lines.next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("no-docker-sock"), "{out}");
    // The file is in the host workspace, and on the branch.
    assert_eq!(
        std::fs::read_to_string(workspace(&h, task.id.as_str()).join("made-in-docker.txt"))
            .unwrap(),
        "hi\n"
    );
    assert_eq!(
        git(
            &repo,
            &["show", &format!("{}:made-in-docker.txt", done.branch)]
        ),
        "hi"
    );
    // The task shows its container, which carries the fixed labels and stays for a follow-up.
    let sandbox = done.sandbox.unwrap();
    assert_eq!(sandbox.backend, "docker");
    let labels = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{json .Config.Labels}}", &sandbox.id])
        .output()
        .unwrap();
    let labels: serde_json::Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert!(labels["dockhand.coordinator"].is_string(), "{labels}");
    assert_eq!(labels["dockhand.task"], task.id.as_str());
    let names: Vec<String> = phases(&h.events(task.id.as_str()).await)
        .into_iter()
        .map(|p| p.phase)
        .collect();
    assert_eq!(names, ["container", "clone", "ready"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_contain_fork_bombs_and_memory_hogs() {
    let scenario = Scenario::new()
        .turn(bash(
            "python3 -c 'x = bytearray(600 * 1024 * 1024); print(len(x))'",
        ))
        .turn(bash("echo after-oom"))
        // Spin (builtins only) while the bomb fills the process table.
        .turn(bash(
            "bomb() { bomb | bomb & }; bomb; SECONDS=0; while [ $SECONDS -lt 2 ]; do :; done",
        ))
        .turn(bash("echo probe"))
        .turn(Turn::tool("bash", json!({"restart": true})))
        .turn(bash("echo recovered; ls /workspace"))
        .text("Done.");
    let h = Harness::docker(scenario, |c| {
        c.sandbox.memory_mb = 256;
        c.sandbox.pids = 64;
        c.agent.command_timeout_secs = 5;
    })
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "misbehave").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let r = results(&h.events(task.id.as_str()).await);
    assert!(
        r[0].output.contains("out of memory") && r[0].output.contains("256 MiB"),
        "{:?}",
        r[0]
    );
    assert_eq!(r[1].output, "after-oom");
    // The bomb hits the process limit and the model hears about it.
    let told = r[2..4]
        .iter()
        .any(|x| x.output.contains("process limit") || x.output.contains("replaced"));
    assert!(told, "{:?}", &r[2..4]);
    // A restart kills the shell with everything it started; the workspace survives.
    assert!(
        r[4].output.starts_with("tool has been restarted."),
        "{:?}",
        r[4]
    );
    assert!(r[5].output.ends_with("recovered\nREADME"), "{:?}", r[5]);
}

fn docker0() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or("172.17.0.1")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_may_narrow_open_to_none() {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!(
        "python3 -c \"import socket; socket.create_connection(('{}', {port}), timeout=3); print('connected')\"",
        docker0()
    );
    let scenario = Scenario::new()
        .turn(bash(&probe))
        .text("Done.")
        .turn(bash(&probe))
        .text("Done.");
    let h = Harness::docker(scenario, |c| {
        c.sandbox.network.level = dockhand_protocol::NetworkLevel::Open;
    })
    .await;
    let open = h.repo(&[("README", "r\n")]);
    let closed = h.repo(&[
        ("README", "r\n"),
        (".dockhand/environment.toml", "network = \"none\"\n"),
    ]);
    let a = h.submit(&open, "reach out").await;
    h.wait_done(a.id.as_str()).await;
    let b = h.submit(&closed, "reach out").await;
    h.wait_done(b.id.as_str()).await;
    let with = &results(&h.events(a.id.as_str()).await)[0];
    let without = &results(&h.events(b.id.as_str()).await)[0];
    assert_eq!(
        with.output, "connected",
        "open reaches the host's network: {with:?}"
    );
    assert_ne!(without.exit_code, Some(0), "{without:?}");
    assert!(!without.output.contains("connected"), "{without:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_kills_the_command_and_the_container_goes_after_the_idle_window() {
    let scenario = Scenario::new()
        .turn(bash("echo started; sleep 600"))
        .text("never");
    let h = Harness::docker(scenario, |c| c.sandbox.idle_secs = 1).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "sleep").await;
    let id = task.id.as_str();
    let mut ws = h.ws(id, 0).await;
    read_until(&mut ws, is_started).await;
    let container = h.task(id).await.sandbox.unwrap().id;
    assert!(docker_exec(&container, "ps -eo args").contains("sleep 600"));
    let (status, _) = h
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let done = h.wait_done(id).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    let ps = docker_exec(&container, "ps -eo args");
    assert!(
        !ps.contains("sleep 600"),
        "still running after cancel: {ps}"
    );
    eventually("the idle container to be removed", || {
        h.containers().is_empty()
    })
    .await;
    let t = h.task(id).await;
    assert!(t.sandbox.is_none(), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_is_cached_and_prepare_runs_for_every_task() {
    let token = format!("{:x}", rand_token());
    let env = format!(
        "setup = \"echo setup-{token} && echo {token} > /opt/setup-marker\"\nprepare = \"echo prepare-ran\"\n[env]\nGREETING = \"hello\"\n"
    );
    let check = bash("cat /opt/setup-marker; echo $GREETING; id -u");
    let scenario = Scenario::new()
        .turn(check.clone())
        .text("Done.")
        .turn(check)
        .text("Done.");
    let h = Harness::docker(scenario, |_| {}).await;
    let repo = h.repo(&[("README", "r\n"), (".dockhand/environment.toml", &env)]);
    let mut details = Vec::new();
    for _ in 0..2 {
        let task = h.submit(&repo, "use the environment").await;
        let done = h.wait_done(task.id.as_str()).await;
        assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
        let events = h.events(task.id.as_str()).await;
        let out = &results(&events)[0].output;
        assert!(out.starts_with(&format!("{token}\nhello\n")), "{out}");
        assert_ne!(out.lines().nth(2), Some("0"), "the agent is not root");
        let outputs: Vec<(String, String)> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::ToolOutput(o) => Some((o.id.clone(), o.text.clone())),
                _ => None,
            })
            .collect();
        let setup_ran = outputs
            .iter()
            .any(|(id, text)| id == "setup" && text.contains(&format!("setup-{token}")));
        let prepare_ran = outputs
            .iter()
            .any(|(id, text)| id == "prepare" && text.contains("prepare-ran"));
        assert!(prepare_ran, "prepare runs for every task: {outputs:?}");
        let ps = phases(&events);
        let names: Vec<&str> = ps.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(names, ["setup", "container", "clone", "prepare", "ready"]);
        details.push((setup_ran, ps[0].detail.clone().unwrap()));
    }
    assert!(
        details[0].0 && details[0].1.starts_with("built dockhand-env:"),
        "{details:?}"
    );
    assert!(
        !details[1].0 && details[1].1.starts_with("cached dockhand-env:"),
        "the second task skips setup: {details:?}"
    );
    let image = details[0].1.trim_start_matches("built ").to_owned();
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &image])
        .output();
}

fn rand_token() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_environments_fail_clearly_and_leave_nothing_running() {
    // Every image is allowed, so the missing ones get as far as the engine.
    let h = Harness::docker(Scenario::new(), |c| {
        c.sandbox.allowed_images = vec!["*".into()];
    })
    .await;
    let cases = [
        (
            "setup = \"echo broken-setup; exit 3\"\n",
            vec!["setup failed", "exit code 3", "broken-setup"],
        ),
        (
            "image = \"dockhand-no-such-image:1\"\n",
            vec!["dockhand-no-such-image:1"],
        ),
        ("imgae = \"typo\"\n", vec!["environment.toml", "imgae"]),
        ("network = \"host\"\n", vec!["environment.toml", "network"]),
    ];
    for (file, needles) in cases {
        let repo = h.repo(&[("README", "r\n"), (".dockhand/environment.toml", file)]);
        let task = h.submit(&repo, "anything").await;
        let done = h.wait_done(task.id.as_str()).await;
        assert_eq!(done.status, TaskStatus::Failed, "{file}");
        let error = done.error.unwrap();
        for n in needles {
            assert!(error.contains(n), "{file}: {error:?} should mention {n:?}");
        }
    }
    // A task may name its own image; a missing one fails as clearly.
    let repo = h.repo(&[("README", "r\n")]);
    let body = json!({"repo": repo, "prompt": "x", "image": "dockhand-no-such-task-image:2"});
    let (status, task) = h
        .request(reqwest::Method::POST, "/api/v1/tasks", Some(body))
        .await;
    assert_eq!(status, 201, "{task}");
    let done = h.wait_done(task["id"].as_str().unwrap()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("dockhand-no-such-task-image:2"), "{error}");
    assert!(
        h.fake.requests().is_empty(),
        "no model turn for a task that could not start"
    );
    assert!(
        h.containers().is_empty(),
        "nothing left running: {:?}",
        h.containers()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_runtime_fails_the_task_clearly() {
    let h = Harness::docker(Scenario::new(), |c| {
        c.sandbox.runtime = "no-such-runtime".into()
    })
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "anything").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(
        done.error.as_deref().unwrap().contains("no-such-runtime"),
        "{:?}",
        done.error
    );
    assert!(h.containers().is_empty(), "{:?}", h.containers());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_pool_container_serves_the_next_task() {
    let scenario = Scenario::new().turn(bash("pwd; ls")).text("Done.");
    let h = Harness::docker(scenario, |c| c.sandbox.pool_size = 1).await;
    let metric = |h: &Harness| {
        let url = format!("{}/metrics", h.base);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !metric(&h).await.contains("dockhand_pool_ready 1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool did not fill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.containers().len(), 1);
    let pooled = h.containers()[0].clone();
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "use the pool").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let events = h.events(task.id.as_str()).await;
    assert_eq!(done.sandbox.unwrap().id, pooled, "{:?}", phases(&events));
    let events = h.events(task.id.as_str()).await;
    let container = phases(&events)
        .into_iter()
        .find(|p| p.phase == "container")
        .unwrap();
    assert!(container.detail.unwrap().starts_with("warm pool"));
    assert_eq!(results(&events)[0].output, "/workspace\nREADME");
    // The pool refills.
    eventually("the pool to refill", || h.containers().len() == 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_container_costs_only_the_command_running_in_it() {
    let editor = |path: &str| {
        Turn::tool(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": path, "file_text": "kept\n"}),
        )
    };
    let scenario = Scenario::new()
        .turn(editor("/workspace/before.txt"))
        .turn(bash("echo long-call-started; sleep 120"))
        .turn(editor("/workspace/after.txt"))
        .text("Done.");
    let h = Harness::docker(scenario, |_| {}).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "survive").await;
    let mut ws = h.ws(task.id.as_str(), 0).await;
    read_until(&mut ws, |e| {
        matches!(&e.body, EventBody::ToolOutput(o) if o.text.contains("long-call-started"))
            || is_end(e)
    })
    .await;
    let lost = h.containers();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &lost[0]])
        .output()
        .unwrap();
    assert!(out.status.success());

    let done = h.wait_done(task.id.as_str()).await;
    let events = h.events(task.id.as_str()).await;
    let said: Vec<String> = results(&events).into_iter().map(|r| r.output).collect();
    assert_eq!(
        done.status,
        TaskStatus::Succeeded,
        "{:?}: {said:?}",
        done.error
    );
    for file in ["before.txt", "after.txt"] {
        let spec = format!("{}:{file}", done.branch);
        assert_eq!(git(&repo, &["show", &spec]), "kept");
    }
    let long = &results(&events)[1];
    assert!(
        long.output.contains("was lost") && long.output.contains("replaced"),
        "told in the result of the call that was running: {}",
        long.output
    );
    let replaced: Vec<PhaseEvent> = phases(&events)
        .into_iter()
        .filter(|p| p.phase == "replaced")
        .collect();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    let now = done.sandbox.expect("the task names its sandbox").id;
    assert_ne!(now, lost[0], "the task names the new container");
    assert!(
        replaced[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with(&now[..12])
    );
}
