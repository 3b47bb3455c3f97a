//! Credentials and reach: the GitHub token goes only to GitHub, repository URLs
//! cannot point the coordinator at private addresses, and a workspace clone holds
//! only what is its own.

use dockhand_protocol::TaskStatus;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use crate::common::*;
use crate::pull_requests::Setup;
use crate::pull_requests::create;
use crate::pull_requests::setup_full;

/// Posts a task as `token`; the status and body.
async fn post_task(s: &Setup, token: &str, repo: &str, prompt: &str) -> (u16, Value) {
    let resp =
        s.h.http
            .post(format!("{}/api/v1/tasks", s.h.base))
            .bearer_auth(token)
            .json(&json!({"repo": repo, "prompt": prompt}))
            .send()
            .await
            .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_that_is_not_github_gets_no_credential_when_the_task_publishes() {
    let scenario = Scenario::new()
        .turn(create("/workspace/NOTE.md", "elsewhere\n"))
        .text("Wrote NOTE.md.");
    // The second server is on loopback like the fake GitHub, on another port.
    let s = setup_full(scenario, false, |c| c.allow_private_remotes = Some(true)).await;
    let other_repos = tempfile::tempdir().unwrap();
    let other = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["nobody".into()],
        repos_dir: Some(other_repos.path().to_path_buf()),
        anonymous_git: true,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let bare = other
        .create_repo("team", "tool", &[("README.md", "tool\n")], "main")
        .unwrap();
    let url = format!("{}/team/tool.git", other.base_url());
    let (status, task) = post_task(&s, &s.access, &url, "write a note").await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap();
    let done = s.h.wait_done(id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let branch = task["branch"].as_str().unwrap();
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:NOTE.md")]),
        "elsewhere"
    );
    let requests = other.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("git-receive-pack")),
        "the branch was pushed there: {requests:?}"
    );
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            None,
            "{} {} carried a credential",
            r.method,
            r.path
        );
    }
    assert!(done.pull_request.is_none(), "no pull request off GitHub");
}

#[tokio::test(flavor = "multi_thread")]
async fn repository_urls_on_private_addresses_are_refused() {
    let s = setup_full(Scenario::new(), false, |_| {}).await;
    let port = s.h.coord().addr().port();
    for repo in [
        "http://127.1/a/b.git".to_owned(),
        "http://[::ffff:127.0.0.1]/a/b.git".to_owned(),
        "http://0.0.0.0/a/b.git".to_owned(),
        "http://[::]/a/b.git".to_owned(),
        "http://10.0.0.1/a/b.git".to_owned(),
        "http://169.254.169.254/latest/meta-data.git".to_owned(),
        "https://[fd00::1]/a/b.git".to_owned(),
        format!("http://localhost:{port}/a/b.git"),
        "https://does-not-exist.invalid/a/b.git".to_owned(),
    ] {
        let (status, body) = post_task(&s, &s.access, &repo, "x").await;
        assert_eq!(status, 400, "{repo}: {body}");
        let why = body["error"]["fields"]["repo"].as_str().unwrap_or_default();
        assert!(
            why.contains("address") || why.contains("does not resolve"),
            "{repo}: {body}"
        );
    }
    let (_, list) =
        s.h.request(reqwest::Method::GET, "/api/v1/tasks", None)
            .await;
    assert_eq!(
        list["tasks"].as_array().unwrap().len(),
        0,
        "nothing created"
    );
    // The configured GitHub is on loopback too, and is exempt.
    let (status, body) = post_task(&s, &s.access, "acme/app", "x").await;
    assert_eq!(status, 201, "{body}");
}

/// A personal API token for `login`, signed in through the web flow.
async fn token_for(s: &Setup, login: &str) -> String {
    crate::accounts::personal_token(&s.h, login).await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clone_holds_nothing_of_another_users_task_branch() {
    const SECRET_TEXT: &str = "only on alice's task branch\n";
    let blob = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), SECRET_TEXT).unwrap();
        git(dir.path(), &["hash-object", "f"])
    };
    let look =
        format!("git cat-file -t {blob} 2>&1 || echo ABSENT; git log --all --oneline | wc -l");
    let scenario = Scenario::new()
        .turn(create("/workspace/secret.txt", SECRET_TEXT))
        .text("Saved.")
        .turn(Turn::tool("bash", json!({"command": look})))
        .text("Looked.")
        // bob's task gets the last two turns: counted globally.
        .global();
    let s = setup_full(scenario, false, |_| {}).await;
    let alice = s.submit("save a secret").await;
    let done = s.h.wait_done(alice["id"].as_str().unwrap()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);

    let bob = token_for(&s, "bob").await;
    let (status, task) = post_task(&s, &bob, "acme/app", "look around").await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap();
    let done = s.h.wait_done(id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let ws = workspace(&s.h, id);
    let present = std::process::Command::new("git")
        .arg("-C")
        .arg(&ws)
        .args(["cat-file", "-e", &blob])
        .status()
        .unwrap()
        .success();
    assert!(!present, "bob's workspace holds alice's object {blob}");
    let output: String =
        s.h.events(id)
            .await
            .iter()
            .filter_map(|e| match &e.body {
                dockhand_protocol::EventBody::ToolOutput(o) => Some(o.text.clone()),
                _ => None,
            })
            .collect();
    assert!(output.contains("ABSENT"), "{output}");
}

/// Opens the events WebSocket with these extra headers; the HTTP status on refusal.
async fn open_ws(h: &Harness, task: &str, headers: &[(&'static str, &str)]) -> Result<(), u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/v1/tasks/{task}/events?after=0",
        h.base.replacen("http", "ws", 1)
    );
    let mut req = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_static(name);
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_websocket_checks_origin_for_cookies() {
    let h = Harness::start(Scenario::new().text("Hi.")).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "hello").await;
    let id = task.id.as_str();
    let resp = h
        .http
        .post(format!("{}/auth/token", h.base))
        .json(&json!({"token": h.token}))
        .send()
        .await
        .unwrap();
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let own = h.base.clone();
    assert_eq!(
        open_ws(&h, id, &[("cookie", &cookie), ("origin", &own)]).await,
        Ok(())
    );
    assert_eq!(
        open_ws(
            &h,
            id,
            &[("cookie", &cookie), ("origin", "https://evil.example")]
        )
        .await,
        Err(403)
    );
    assert_eq!(open_ws(&h, id, &[("cookie", &cookie)]).await, Err(403));
    let bearer = format!("Bearer {}", h.token);
    assert_eq!(open_ws(&h, id, &[("authorization", &bearer)]).await, Ok(()));
    assert_eq!(
        open_ws(
            &h,
            id,
            &[
                ("authorization", &bearer),
                ("origin", "https://evil.example")
            ]
        )
        .await,
        Ok(()),
        "bearer tokens are not sent by browsers on their own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_is_owner_only_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let scenario = Scenario::new()
        .turn(create("/workspace/A.md", "a\n"))
        .text("Done.");
    let s = setup_full(scenario, false, |_| {}).await;
    let task = s.submit("publish something").await;
    let done = s.h.wait_done(task["id"].as_str().unwrap()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    s.h.coord().services().store.flush().await.unwrap();
    let data = s.h.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The local sandbox's unprivileged uid reaches its workspace through a bind
    // under /run, not through the data directory.
    assert_eq!(mode(&data), 0o700, "the data directory");
    for dir in ["workspaces", "mirrors", "bundles"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
    for ws in std::fs::read_dir(data.join("workspaces")).unwrap() {
        assert_eq!(mode(&ws.unwrap().path()), 0o700, "a workspace");
    }
    for file in [
        "dockhand.db",
        "dockhand.db-wal",
        "dockhand.db-shm",
        "jwt.key",
        "secret.key",
        "admin-token",
        "coordinator-id",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    // Every mirror sits inside the owner-only directory.
    let mirrors: Vec<_> = std::fs::read_dir(data.join("mirrors")).unwrap().collect();
    assert!(!mirrors.is_empty(), "the task went through a mirror");
}
