//! Tests of the `dockhand` binary: real processes, real SQLite, git and bubblewrap,
//! with the fake Anthropic API running in the test process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_dockhand");
const PATIENCE: Duration = Duration::from_secs(60);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn make_repo(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
    std::fs::write(path.join("README.md"), "# demo\n").unwrap();
    git(path, &["add", "-A"]);
    git(
        path,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    );
}

struct Env {
    dir: tempfile::TempDir,
    fake: FakeAnthropic,
    backend: String,
}

impl Drop for Env {
    /// A `dockhand serve` killed with SIGKILL leaves its workspaces mount (the
    /// next start on the same data dir would take it over); the test ends here.
    fn drop(&mut self) {
        let workspaces = self.data().join("workspaces");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let path = workspaces.to_string_lossy().into_owned();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(path.as_str()))
        {
            let _ = Command::new("umount").arg("-l").arg(&workspaces).status();
        }
    }
}

impl Env {
    async fn new(scenario: Scenario) -> Env {
        Self::with_backend(scenario, "local").await
    }

    async fn with_backend(scenario: Scenario, backend: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            fake: FakeAnthropic::start(scenario).await,
            backend: backend.to_owned(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", self.dir.path())
            .env("DOCKHAND_DATA_DIR", self.data())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("ANTHROPIC_BASE_URL", self.fake.base_url())
            .env("DOCKHAND_SANDBOX", &self.backend);
        c
    }

    /// Starts `dockhand serve` and returns it with its URL; the caller kills and reaps it.
    #[allow(clippy::zombie_processes)]
    fn serve(&self) -> (Child, String, Vec<String>) {
        let mut child = self
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("serve.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let mut lines = Vec::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("serve exited early ({status}): {lines:?}");
            }
            if let Some(url) = line.trim().strip_prefix("Dockhand is listening on ") {
                return (child, url.to_owned(), lines);
            }
            lines.push(line);
        }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

async fn api(
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap()
}

/// Polls (bounded) until `cond` holds.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut cond: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

fn kill9(child: &mut Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
}

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

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_resumes_its_tasks_without_rerunning_a_command() {
    resume_after_kills("local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_reattaches_the_same_container() {
    resume_after_kills("docker").await;
}

/// Kills the coordinator twice, once while a command runs and once between tool
/// calls, and checks the task finishes without running the command again.
async fn resume_after_kills(backend: &str) {
    let gated = "echo started; sleep 777.123 & while [ ! -e /workspace/.git/go ]; do sleep 0.02; done; echo finished";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": gated})))
        .turn(Turn::tool("bash", json!({"command": "echo second"})))
        .turn(Turn::text("a slow answer that will be cut off by the crash").stop_reason("end_turn"))
        .text("Done.")
        .token_delay_ms(150);
    let env = Env::with_backend(scenario, backend).await;
    let docker = backend == "docker";
    std::fs::create_dir_all(env.data()).unwrap();
    std::fs::write(
        env.data().join("dockhand.toml"),
        "[sandbox]\nidle_secs = 1\npool_size = 0\n",
    )
    .unwrap();
    let repo = env.dir.path().join("repo");
    make_repo(&repo);
    let (mut server, url, _) = env.serve();
    let token = env.token();
    let task = api(
        &url,
        &token,
        reqwest::Method::POST,
        "/api/v1/tasks",
        Some(json!({"repo": repo, "prompt": "wait"})),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let events_path = format!("/api/v1/tasks/{id}/events");
    let has = |events: &Value, needle: &str| {
        events["events"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "tool_output" && e["data"]["text"].as_str().unwrap().contains(needle)
        })
    };

    // Crash 1: while a command runs in the sandbox.
    eventually("the command to start", || async {
        has(
            &api(&url, &token, reqwest::Method::GET, &events_path, None).await,
            "started",
        ) && processes_with("777.123") > 0
    })
    .await;
    let task_path = format!("/api/v1/tasks/{id}");
    let container =
        api(&url, &token, reqwest::Method::GET, &task_path, None).await["sandbox"]["id"].clone();
    kill9(&mut server);
    if !docker {
        eventually("the sandbox to die with the coordinator", || async {
            processes_with("777.123") == 0
        })
        .await;
    }

    let (mut server, url, _) = env.serve();
    // A container outlives the coordinator; re-attaching stops what was left running.
    eventually("the interrupted command to be gone", || async {
        processes_with("777.123") == 0
    })
    .await;
    // Crash 2: between tool calls, while the model is streaming its next turn.
    eventually("the model to be asked again", || async {
        env.fake.requests().len() >= 3
    })
    .await;
    kill9(&mut server);
    let (mut server, url2, _) = env.serve();
    let _ = url;
    let same =
        api(&url2, &token, reqwest::Method::GET, &task_path, None).await["sandbox"]["id"].clone();
    assert_eq!(
        same, container,
        "the task keeps its sandbox across restarts"
    );
    eventually("the task to finish", || async {
        let t = api(
            &url2,
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/tasks/{id}"),
            None,
        )
        .await;
        t["status"] == "succeeded"
    })
    .await;

    let requests = env.fake.requests();
    // After the first crash the model was told the command was interrupted.
    let second = &requests[1]["messages"];
    let result = second.as_array().unwrap().last().unwrap()["content"][0].clone();
    assert_eq!(result["type"], "tool_result");
    assert!(result["is_error"].as_bool().unwrap());
    let text = result["content"].as_str().unwrap();
    assert!(
        text.contains("interrupted") && text.contains("started"),
        "{text}"
    );
    // It was never run a second time.
    let events = api(&url2, &token, reqwest::Method::GET, &events_path, None).await;
    let all = events.to_string();
    let output: String = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "tool_output")
        .map(|e| e["data"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(output.matches("started").count(), 1, "{output}");
    assert!(
        !output.contains("finished"),
        "the interrupted command ran again: {output}"
    );
    assert!(output.contains("second"), "{output}");
    // Events stayed gap-free across both crashes.
    let seqs: Vec<u64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(all.contains("resuming after a coordinator restart"));
    if docker {
        let coordinator = std::fs::read_to_string(env.data().join("coordinator-id")).unwrap();
        let filter = format!("label=dockhand.coordinator={}", coordinator.trim());
        eventually("no container to be left over", || async {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .unwrap();
            out.stdout.is_empty()
        })
        .await;
    }
    kill9(&mut server);
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

/// Every file under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn login_tokens_and_no_secret_leaks_anywhere() {
    const MODEL_KEY: &str = "sk-ant-CANARY-model-key-4711";
    const CLIENT_SECRET: &str = "CANARY-oauth-client-secret-0815";
    const JWT_SECRET: &str = "CANARY-jwt-secret-0123456789abcdef0123456789";
    let probe =
        "env; tr '\\0' '\\n' < /proc/self/environ; cat /workspace/.git/config; ls -la / /tmp; id";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({"command": probe})))
        .text("Done.");
    let env = Env::new(scenario).await;
    let gh = dockhand_testkit::FakeGitHub::start(dockhand_testkit::FakeGitHubOptions {
        users: vec!["alice".into()],
        client_id: Some("cid".into()),
        client_secret: Some(CLIENT_SECRET.into()),
        device_interval: 0,
        slow_down_increment: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let repo = env.dir.path().join("repo");
    make_repo(&repo);
    let with_secrets = |mut c: Command| {
        c.env("ANTHROPIC_API_KEY", MODEL_KEY)
            .env("DOCKHAND_GITHUB_CLIENT_ID", "cid")
            .env("DOCKHAND_GITHUB_CLIENT_SECRET", CLIENT_SECRET)
            .env("DOCKHAND_GITHUB_WEB_URL", gh.base_url())
            .env("DOCKHAND_GITHUB_API_URL", gh.base_url())
            .env("DOCKHAND_GITHUB_ALLOWED_USERS", "alice")
            .env("DOCKHAND_ALLOW_LOCAL_REPOS", "true")
            .env("DOCKHAND_JWT_SECRET", JWT_SECRET)
            .env("DOCKHAND_LOG", "debug");
        c
    };
    let mut serve_cmd = with_secrets(env.cmd());
    serve_cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.dir.path().join("server.log")).unwrap());
    let mut server = serve_cmd.spawn().unwrap();
    let mut reader = BufReader::new(server.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        if let Some(u) = line.trim().strip_prefix("Dockhand is listening on ") {
            break u.to_owned();
        }
    };
    let cli = |args: &[&str]| {
        let mut c = env.cmd();
        c.env_remove("ANTHROPIC_API_KEY")
            .args(["--server", url.as_str()])
            .args(args);
        c
    };

    // Sign in from the CLI with the device flow; the session is stored privately.
    let out = tokio::task::spawn_blocking({
        let mut c = cli(&["login"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("enter the code") && text.contains("Signed in to") && text.contains("alice"),
        "{text}"
    );
    let creds = env.dir.path().join(".config/dockhand/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A personal token, shown once, then listed without its secret.
    let out = cli(&["token", "create", "ci"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("dh_"), "{token}");
    let out = cli(&["token", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("ci") && !list.contains(&token), "{list}");

    // A task run with the stored session.
    let out = tokio::task::spawn_blocking({
        let mut c = cli(&[
            "run",
            "--repo",
            repo.to_str().unwrap(),
            "show me your environment",
        ]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let run_out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{run_out}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(run_out.contains("PATH="), "the probe ran: {run_out}");
    kill9(&mut server);

    let github_token = gh.issued_tokens().last().unwrap().clone();
    let canaries = [MODEL_KEY, CLIENT_SECRET, JWT_SECRET, github_token.as_str()];
    let mut places: Vec<PathBuf> = files_under(&env.data());
    places.push(env.dir.path().join("server.log"));
    places.extend(files_under(&repo));
    assert!(places.iter().any(|p| p.ends_with("dockhand.db")));
    for place in &places {
        let bytes = std::fs::read(place).unwrap();
        for c in canaries {
            assert!(
                !contains(&bytes, c),
                "{} holds a secret ({c})",
                place.display()
            );
        }
    }
    assert!(
        std::fs::metadata(env.dir.path().join("server.log"))
            .unwrap()
            .len()
            > 0
    );
    for c in canaries {
        assert!(!run_out.contains(c), "the task's output holds {c}");
    }
    // What the model saw (the conversation) holds none either; only the key header carried the key.
    for req in env.fake.requests() {
        let body = req.to_string();
        for c in canaries {
            assert!(!body.contains(c), "a model request body holds {c}");
        }
    }
}
