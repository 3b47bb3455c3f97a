//! From repository to pull request, on the docker backend, against the fake
//! GitHub (git smart HTTP through `git http-backend`, REST, webhooks).

use std::path::Path;
use std::path::PathBuf;

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskStatus;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

pub(crate) const SECRET: &str = "webhook-secret-for-tests";

pub(crate) struct Setup {
    pub h: Harness,
    pub gh: FakeGitHub,
    pub repos: tempfile::TempDir,
    /// alice's access token (device flow).
    pub access: String,
}

pub(crate) async fn setup(scenario: Scenario, docker: bool) -> Setup {
    setup_full(scenario, docker, |_| {}).await
}

async fn setup_with(scenario: Scenario, extra: impl FnOnce(&mut dockhand_server::Config)) -> Setup {
    setup_full(scenario, false, extra).await
}

pub(crate) async fn setup_full(
    scenario: Scenario,
    docker: bool,
    extra: impl FnOnce(&mut dockhand_server::Config),
) -> Setup {
    let repos = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["alice".into(), "bob".into()],
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        device_interval: 0,
        slow_down_increment: 0,
        repos_dir: Some(repos.path().to_path_buf()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    gh.create_repo("acme", "app", &[("README.md", "hello\n")], "main")
        .unwrap();
    let url = gh.base_url();
    let tweak = |c: &mut dockhand_server::Config| {
        c.github.client_id = "cid".into();
        c.github.client_secret = "csecret".into();
        c.github.web_url = url.clone();
        c.github.api_url = url.clone();
        c.github.allowed_users = vec!["alice".into(), "bob".into()];
        c.github.webhook_secret = SECRET.into();
        extra(c);
    };
    let h = if docker {
        Harness::docker(scenario, tweak).await
    } else {
        Harness::start_with(scenario, tweak).await
    };
    let tokens = crate::accounts::device_tokens(&h).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    Setup {
        h,
        gh,
        repos,
        access,
    }
}

impl Setup {
    pub fn bare(&self) -> PathBuf {
        self.repos.path().join("acme/app.git")
    }

    pub async fn submit(&self, prompt: &str) -> Value {
        let resp = self
            .h
            .http
            .post(format!("{}/api/v1/tasks", self.h.base))
            .bearer_auth(&self.access)
            .json(&json!({"repo": "acme/app", "prompt": prompt}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/_fake/state", self.gh.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub(crate) fn create(path: &str, text: &str) -> Turn {
    Turn::tool(
        "str_replace_based_edit_tool",
        json!({"command": "create", "path": path, "file_text": text}),
    )
}

fn bare_git(bare: &Path, args: &[&str]) -> String {
    git(bare, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_pushes_its_branch_and_a_follow_up_updates_the_same_pull_request() {
    let scenario = Scenario::new()
        .turn(create("/workspace/CHANGE.md", "first\n"))
        .text("Added CHANGE.md with the first line.")
        .turn(create("/workspace/MORE.md", "second\n"))
        .text("Added MORE.md as asked.");
    let s = setup(scenario, true).await;
    let task = s.submit("Add a CHANGE file").await;
    let id = task["id"].as_str().unwrap().to_owned();
    let branch = task["branch"].as_str().unwrap().to_owned();
    let done = s.h.wait_done(&id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let bundle = s.h.data_dir().join("bundles").join(format!("{id}.bundle"));
    assert!(!bundle.exists(), "a pushed bundle is not kept");
    assert_eq!(
        bare_git(&s.bare(), &["show", &format!("{branch}:CHANGE.md")]),
        "first"
    );
    let log = bare_git(&s.bare(), &["log", "--format=%an|%b", "-1", &branch]);
    assert!(
        log.starts_with("Dockhand|")
            && log.contains("Co-authored-by: alice <1001+alice@users.noreply.github.com>"),
        "{log}"
    );

    let st = s.state().await;
    let pulls = st["pulls"].as_array().unwrap();
    assert_eq!(pulls.len(), 1, "{st}");
    assert_eq!(pulls[0]["head"]["ref"], branch.as_str());
    assert_eq!(pulls[0]["base"]["ref"], "main");
    let body = pulls[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Add a CHANGE file")
            && body.contains("Added CHANGE.md")
            && body.contains("CHANGE.md |"),
        "{body}"
    );
    let pr = done.pull_request.clone().unwrap();
    assert_eq!(pr.number, pulls[0]["number"].as_u64().unwrap());
    let events = s.h.events(&id).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.body, EventBody::PullRequest(p) if p.url == pr.url && !p.updated))
    );

    // A follow-up: a new commit on the same branch, a comment on the same PR, no second PR.
    let (status, _) =
        s.h.request(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/messages"),
            Some(json!({"text": "also add MORE.md"})),
        )
        .await;
    assert_eq!(status, 202);
    let again = s.h.wait_done(&id).await;
    assert_eq!(again.status, TaskStatus::Succeeded, "{:?}", again.error);
    assert_eq!(
        bare_git(
            &s.bare(),
            &["rev-list", "--count", &format!("main..{branch}")]
        ),
        "2"
    );
    let st = s.state().await;
    assert_eq!(st["pulls"].as_array().unwrap().len(), 1, "{st}");
    let comments: Vec<&Value> = st["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["issue_number"] == pr.number)
        .collect();
    assert_eq!(comments.len(), 1, "{st}");
    assert!(
        comments[0]["body"]
            .as_str()
            .unwrap()
            .contains("Added MORE.md"),
        "{st}"
    );

    // No GitHub token anywhere it must not be: workspace (.git included), the
    // container's environment, events, and the raw bytes of the data dir.
    let tokens = s.gh.issued_tokens();
    let container = again.sandbox.clone().map(|x| x.id);
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut stack = vec![s.h.data_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                blobs.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    if let Some(c) = container {
        let env = std::process::Command::new("docker")
            .args([
                "exec",
                &c,
                "sh",
                "-c",
                "env; cat /proc/*/environ 2>/dev/null",
            ])
            .output()
            .unwrap();
        blobs.push(("container environment".into(), env.stdout));
    }
    blobs.push((
        "events".into(),
        serde_json::to_vec(&s.h.events(&id).await).unwrap(),
    ));
    assert!(
        blobs
            .iter()
            .any(|(p, _)| p.contains("workspaces") && p.ends_with(".git/config"))
    );
    for (place, bytes) in &blobs {
        for t in &tokens {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "{place} holds a GitHub token"
            );
        }
    }
    let origin = std::fs::read_to_string(workspace(&s.h, &id).join(".git/config")).unwrap();
    assert!(
        origin.contains(&format!("{}/acme/app.git", s.gh.base_url())),
        "origin is the plain URL: {origin}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_workspace_runs_nothing_on_the_host() {
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("ran-on-host");
    let c = canary.display().to_string();
    let hostile = format!(
        "git config core.fsmonitor 'touch {c}' && git config filter.evil.clean 'touch {c}; cat' && \
         git config filter.evil.smudge 'touch {c}; cat' && echo '* filter=evil' > .gitattributes && \
         for h in pre-push pre-commit post-commit reference-transaction post-checkout; do \
           printf '#!/bin/sh\\ntouch {c}\\n' > .git/hooks/$h && chmod +x .git/hooks/$h; done && \
         mkdir -p /tmp/hooks && cp .git/hooks/pre-push /tmp/hooks/ && git config core.hooksPath /tmp/hooks && echo x > evil.txt"
    );
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": hostile})))
        .text("Planted.");
    let s = setup(scenario, true).await;
    let task = s.submit("be hostile").await;
    let id = task["id"].as_str().unwrap().to_owned();
    let done = s.h.wait_done(&id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let branch = task["branch"].as_str().unwrap();
    assert_eq!(
        bare_git(&s.bare(), &["show", &format!("{branch}:evil.txt")]),
        "x"
    );
    assert!(
        !canary.exists(),
        "a command from the workspace ran on the host"
    );
    assert_eq!(s.state().await["pulls"].as_array().unwrap().len(), 1);
}

pub(crate) async fn tasks_of(s: &Setup) -> Vec<Value> {
    let (_, v) =
        s.h.request(reqwest::Method::GET, "/api/v1/tasks", None)
            .await;
    v["tasks"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_start_tasks_only_for_signed_trusted_humans() {
    let scenario = Scenario::new()
        .turn(create("/workspace/FIX.md", "fixed\n"))
        .text("Fixed it.");
    let s = setup(scenario, false).await;
    let url = format!("{}/webhooks/github", s.h.base);
    let issue =
        s.gh.create_issue("acme", "app", "Broken thing", "It breaks when X.");
    let send =
        |secret: &'static str, event: &'static str, delivery: &'static str, payload: Value| {
            let url = url.clone();
            async move {
                dockhand_testkit::github::send_webhook(&url, secret, event, delivery, &payload)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
    let good = s.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand please fix it",
        "alice",
        "OWNER",
        false,
    );

    // A bad signature is refused and creates nothing.
    assert_eq!(
        send("wrong-secret", "issue_comment", "d-1", good.clone()).await,
        401
    );
    // Strangers, bots and Dockhand's own comments are ignored.
    let none =
        s.gh.issue_comment_payload("acme/app", issue, "/dockhand do it", "bob", "NONE", false);
    assert_eq!(send(SECRET, "issue_comment", "d-2", none).await, 202);
    let bot = s.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand do it",
        "helper[bot]",
        "OWNER",
        false,
    );
    assert_eq!(send(SECRET, "issue_comment", "d-3", bot).await, 202);
    let own = s.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand <!-- dockhand --> echo",
        "alice",
        "OWNER",
        false,
    );
    assert_eq!(send(SECRET, "issue_comment", "d-4", own).await, 202);

    // The real one, delivered twice, makes one task and one reply.
    assert_eq!(
        send(SECRET, "issue_comment", "d-5", good.clone()).await,
        202
    );
    assert_eq!(send(SECRET, "issue_comment", "d-5", good).await, 200);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let task = loop {
        let tasks = tasks_of(&s).await;
        if let Some(t) = tasks.first() {
            break t.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no task was started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let id = task["id"].as_str().unwrap().to_owned();
    assert!(
        task["prompt"]
            .as_str()
            .unwrap()
            .starts_with("please fix it")
    );
    assert!(
        task["prompt"]
            .as_str()
            .unwrap()
            .contains("It breaks when X."),
        "the issue is context"
    );
    let done = s.h.wait_done(&id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        tasks_of(&s).await.len(),
        1,
        "one task for a duplicate delivery, none for the ignored ones"
    );
    let st = s.state().await;
    let replies: Vec<&str> = st["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["issue_number"] == issue)
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert!(
        replies
            .iter()
            .any(|b| b.contains("<!-- dockhand -->") && b.contains(&id)),
        "{st}"
    );
    assert!(
        replies.iter().any(|b| b.contains("/pull/")),
        "the PR is linked on the issue: {st}"
    );
}

pub(crate) async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_on_the_pull_request_follow_up_and_labels_start_tasks() {
    let scenario = Scenario::new()
        .turn(create("/workspace/A.md", "a\n"))
        .text("Made A.")
        .turn(create("/workspace/B.md", "b\n"))
        .text("Made B.")
        .text("Nothing to change for this issue.")
        // The labelled task gets the last turn: counted globally.
        .global();
    let s = setup_with(scenario, |c| c.auth.operators = vec!["alice".into()]).await;
    let url = format!("{}/webhooks/github", s.h.base);
    let task = s.submit("make A").await;
    let id = task["id"].as_str().unwrap().to_owned();
    let done = s.h.wait_done(&id).await;
    let pr = done.pull_request.unwrap().number;

    // `/dockhand` on the task's own pull request is a follow-up to it.
    let on_pr = s.gh.issue_comment_payload(
        "acme/app",
        pr,
        "/dockhand also make B",
        "alice",
        "OWNER",
        true,
    );
    let status =
        dockhand_testkit::github::send_webhook(&url, SECRET, "issue_comment", "f-1", &on_pr)
            .await
            .unwrap()
            .status();
    assert_eq!(status, 202);
    wait_for("the follow-up to run", async || {
        s.h.task(&id).await.turns >= 4 && s.h.task(&id).await.status.is_terminal()
    })
    .await;
    let branch = task["branch"].as_str().unwrap();
    assert_eq!(
        bare_git(&s.bare(), &["show", &format!("{branch}:B.md")]),
        "b"
    );
    assert_eq!(tasks_of(&s).await.len(), 1, "no new task");
    assert_eq!(s.state().await["pulls"].as_array().unwrap().len(), 1);

    // An allowed person who never signed in is asked to sign in (with an operator's token).
    let issue =
        s.gh.create_issue("acme", "app", "Docs", "Please document it.");
    let bob = s.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand write docs",
        "bob",
        "COLLABORATOR",
        false,
    );
    dockhand_testkit::github::send_webhook(&url, SECRET, "issue_comment", "f-2", &bob)
        .await
        .unwrap();
    wait_for("the sign-in reply", async || {
        s.state()
            .await
            .to_string()
            .contains("@bob, sign in to Dockhand first")
    })
    .await;
    assert_eq!(tasks_of(&s).await.len(), 1);

    // The `dockhand` label starts a task with the issue as its prompt.
    let labeled =
        s.gh.issues_labeled_payload("acme/app", issue, "dockhand", "alice");
    dockhand_testkit::github::send_webhook(&url, SECRET, "issues", "f-3", &labeled)
        .await
        .unwrap();
    wait_for("the labelled task", async || tasks_of(&s).await.len() == 2).await;
    let new = tasks_of(&s).await[0].clone();
    assert!(
        new["prompt"]
            .as_str()
            .unwrap()
            .contains("Please document it."),
        "{new}"
    );
    let finished = s.h.wait_done(new["id"].as_str().unwrap()).await;
    assert_eq!(
        finished.status,
        TaskStatus::Succeeded,
        "{:?}",
        finished.error
    );
    assert_eq!(finished.error, None);
    assert!(
        finished.pull_request.is_none(),
        "no changes, no pull request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_repositories_and_oversized_results_fail_clearly() {
    let scenario = Scenario::new()
        .turn(create("/workspace/BIG.md", &"x".repeat(4096)))
        .text("Done.");
    let s = setup_with(scenario, |c| c.git.max_bundle_bytes = 512).await;
    let resp =
        s.h.http
            .post(format!("{}/api/v1/tasks", s.h.base))
            .bearer_auth(&s.access)
            .json(&json!({"repo": "acme/nope", "prompt": "x"}))
            .send()
            .await
            .unwrap();
    let missing: Value = resp.json().await.unwrap();
    let done = s.h.wait_done(missing["id"].as_str().unwrap()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("was not found, or your GitHub account cannot read it"),
        "{error}"
    );

    let task = s.submit("write a big file").await;
    let done = s.h.wait_done(task["id"].as_str().unwrap()).await;
    assert_eq!(done.status, TaskStatus::Failed);
    let error = done.error.unwrap();
    assert!(
        error.contains("too large") && error.contains("git.max_bundle_bytes"),
        "{error}"
    );
}
