//! Git smart HTTP with real `git` processes: the token goes in
//! `http.extraHeader` through the environment, never in the URL.

use std::path::Path;
use std::path::PathBuf;

use base64::Engine;
use rand::RngCore;

use super::*;

/// A fake with `alice` and `bob` serving `repos/`, and `alice/widgets`
/// holding one commit on `trunk`.
pub(super) async fn fake_with_repo() -> (FakeGitHub, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitHub::start(FakeGitHubOptions {
        repos_dir: Some(dir.path().join("repos")),
        ..options(&["alice", "bob"])
    })
    .await
    .unwrap();
    let bare = fake
        .create_repo(
            "alice",
            "widgets",
            &[("README.md", "hello\n"), ("src/lib.rs", "// lib\n")],
            "trunk",
        )
        .unwrap();
    (fake, dir, bare)
}

pub(super) fn clone_url(base: &str) -> String {
    format!("{base}/alice/widgets.git")
}

/// The result of one git run.
pub(super) struct Run {
    pub(super) ok: bool,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs git in `cwd` away from the user's config and terminal, with the
/// token as HTTP Basic in `http.extraHeader` when given.
pub(super) async fn git(cwd: &Path, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new("git");
    command
        .current_dir(cwd)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com");
    if let Some(token) = token {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    let output = command.output().await.unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Clones into `into` (under `cwd`), which must succeed.
pub(super) async fn clone(cwd: &Path, url: &str, token: &str, into: &str) -> PathBuf {
    let run = git(cwd, Some(token), &["clone", "--quiet", url, into]).await;
    assert!(run.ok, "{}", run.stderr);
    cwd.join(into)
}

pub(super) async fn commit_file(work: &Path, name: &str, contents: &[u8]) {
    std::fs::write(work.join(name), contents).unwrap();
    let run = git(work, None, &["add", name]).await;
    assert!(run.ok, "{}", run.stderr);
    let run = git(
        work,
        None,
        &["commit", "--quiet", "-m", &format!("add {name}")],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
}

pub(super) async fn rev_parse(git_dir: &Path, rev: &str) -> Option<String> {
    let run = git(git_dir, None, &["rev-parse", "--verify", "--quiet", rev]).await;
    run.ok.then(|| run.stdout.trim().to_owned())
}

#[tokio::test]
async fn clone_and_push_go_through_the_token() {
    let (fake, dir, bare) = fake_with_repo().await;
    assert_eq!(bare, dir.path().join("repos/alice/widgets.git"));
    let token = sign_in(&fake, None, "repo read:user").await;
    let url = clone_url(&fake.base_url());

    let work = clone(dir.path(), &url, &token, "work").await;
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "hello\n"
    );
    assert!(work.join("src/lib.rs").exists());
    let branch = git(&work, None, &["symbolic-ref", "--short", "HEAD"]).await;
    assert_eq!(branch.stdout.trim(), "trunk");
    let log = git(&work, None, &["log", "--format=%an <%ae>|%s"]).await;
    assert_eq!(log.stdout.trim(), "fake <fake@example.com>|Initial commit");
    // Nothing of the token is kept in the clone.
    let remote = git(&work, None, &["remote", "get-url", "origin"]).await;
    assert_eq!(remote.stdout.trim(), url);
    let config = std::fs::read_to_string(work.join(".git/config")).unwrap();
    assert!(!config.contains(&token) && !config.contains("Authorization"));

    commit_file(&work, "feature.txt", b"new\n").await;
    let push = git(
        &work,
        Some(&token),
        &[
            "push",
            "--quiet",
            "origin",
            "HEAD:refs/heads/dockhand/1-feature",
        ],
    )
    .await;
    assert!(push.ok, "{}", push.stderr);
    let pushed = rev_parse(&bare, "refs/heads/dockhand/1-feature").await;
    assert_eq!(pushed, rev_parse(&work, "HEAD").await);

    // Git's requests were seen with the token as Basic credentials.
    let requests = fake.requests();
    let receive = requests
        .iter()
        .find(|r| r.path == "/alice/widgets.git/git-receive-pack")
        .unwrap();
    assert_eq!(receive.method, "POST");
    assert!(
        receive
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(receive.body.is_empty(), "pack bodies are not recorded");
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/alice/widgets.git/info/refs" && r.query.contains("upload-pack"))
    );
}

#[tokio::test]
async fn missing_revoked_and_underscoped_tokens_are_refused() {
    let (fake, dir, bare) = fake_with_repo().await;
    let url = clone_url(&fake.base_url());
    let refs = format!("{url}/info/refs?service=git-upload-pack");

    // No credentials: 401 with a Basic challenge, and git gives up.
    let response = client().get(&refs).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"GitHub\""
    );
    let run = git(dir.path(), None, &["clone", &url, "anonymous"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Authentication failed")
            || run.stderr.contains("could not read Username"),
        "{}",
        run.stderr
    );

    // A token without `repo` reads but cannot push.
    let reader = sign_in(&fake, None, "read:user").await;
    let work = clone(dir.path(), &url, &reader, "reader").await;
    commit_file(&work, "x.txt", b"x\n").await;
    let push = git(
        &work,
        Some(&reader),
        &["push", "origin", "HEAD:refs/heads/x"],
    )
    .await;
    assert!(!push.ok);
    assert!(
        push.stderr
            .contains("remote: Permission to alice/widgets.git denied to alice."),
        "{}",
        push.stderr
    );
    assert!(push.stderr.contains("403"), "{}", push.stderr);
    assert_eq!(rev_parse(&bare, "refs/heads/x").await, None);
    let response = client()
        .get(format!("{url}/info/refs?service=git-receive-pack"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = client()
        .post(format!("{url}/git-receive-pack"))
        .bearer_auth(&reader)
        .body("0000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // A bearer token reads as well as Basic does.
    let response = client()
        .get(&refs)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );

    // An unknown repository, for a valid token.
    let missing = format!("{}/alice/nothing.git", fake.base_url());
    let response = client()
        .get(format!("{missing}/info/refs?service=git-upload-pack"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "Repository not found.\n");
    let run = git(dir.path(), Some(&reader), &["clone", &missing, "missing"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Repository not found"),
        "{}",
        run.stderr
    );

    // A revoked token is refused like a missing one.
    assert!(fake.revoke_token(&reader));
    let run = git(dir.path(), Some(&reader), &["clone", &url, "revoked"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Authentication failed")
            || run.stderr.contains("could not read Username"),
        "{}",
        run.stderr
    );
    let response = client()
        .get(&refs)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_pre_receive_hook_can_refuse_a_push() {
    let (fake, dir, bare) = fake_with_repo().await;
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"protected branch: pushes to trunk are refused\" >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let token = sign_in(&fake, None, "repo").await;
    let work = clone(dir.path(), &clone_url(&fake.base_url()), &token, "work").await;
    let before = rev_parse(&bare, "refs/heads/trunk").await;
    commit_file(&work, "change.txt", b"change\n").await;
    let push = git(&work, Some(&token), &["push", "origin", "HEAD:trunk"]).await;
    assert!(!push.ok);
    assert!(
        push.stderr
            .contains("remote: protected branch: pushes to trunk are refused"),
        "{}",
        push.stderr
    );
    assert!(
        push.stderr.contains("pre-receive hook declined"),
        "{}",
        push.stderr
    );
    assert_eq!(rev_parse(&bare, "refs/heads/trunk").await, before);
}

#[tokio::test]
async fn large_pushes_and_gzipped_fetches_stream_through() {
    let (fake, dir, bare) = fake_with_repo().await;
    let token = sign_in(&fake, None, "repo").await;
    let url = clone_url(&fake.base_url());
    let first = clone(dir.path(), &url, &token, "first").await;
    let second = clone(dir.path(), &url, &token, "second").await;

    // Incompressible, past git's 1 MiB post buffer: sent chunked.
    let mut noise = vec![0u8; 3 << 20];
    rand::rng().fill_bytes(&mut noise);
    commit_file(&first, "noise.bin", &noise).await;
    let push = git(
        &first,
        Some(&token),
        &["push", "--quiet", "origin", "HEAD:trunk"],
    )
    .await;
    assert!(push.ok, "{}", push.stderr);
    assert_eq!(
        rev_parse(&bare, "refs/heads/trunk").await,
        rev_parse(&first, "HEAD").await
    );
    let chunked = fake.requests().into_iter().any(|r| {
        r.path.ends_with("/git-receive-pack") && r.header("transfer-encoding") == Some("chunked")
    });
    assert!(chunked, "the big push was not chunked");

    // Local commits make the fetch negotiation long enough for git to gzip.
    for i in 0..40 {
        commit_file(&second, &format!("local{i}.txt"), b"l\n").await;
    }
    let fetch = git(&second, Some(&token), &["fetch", "--quiet", "origin"]).await;
    assert!(fetch.ok, "{}", fetch.stderr);
    assert_eq!(
        rev_parse(&second, "refs/remotes/origin/trunk").await,
        rev_parse(&first, "HEAD").await
    );
    let gzipped = fake.requests().into_iter().any(|r| {
        r.path.ends_with("/git-upload-pack") && r.header("content-encoding") == Some("gzip")
    });
    assert!(gzipped, "no fetch request was gzipped");
}

#[tokio::test]
async fn the_binary_serves_repositories_from_repos() {
    let (fake, dir, _bare) = fake_with_repo().await;
    let repos = fake.repos_dir().unwrap().to_owned();
    drop(fake);
    let mut child = rest::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_dockhand-fake-github"))
            .args(["--listen", "127.0.0.1:0", "--user", "alice", "--repos"])
            .arg(&repos)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = rest::listening_on(&mut child);
    let back = redirect_params(
        &client()
            .get(
                Url::parse_with_params(
                    &format!("{base}/login/oauth/authorize"),
                    [
                        ("client_id", "c"),
                        ("redirect_uri", CALLBACK),
                        ("scope", "repo"),
                    ],
                )
                .unwrap(),
            )
            .send()
            .await
            .unwrap(),
        CALLBACK,
    );
    let reply: Value = client()
        .post(format!("{base}/login/oauth/access_token"))
        .header("accept", "application/json")
        .form(&[("client_id", "c"), ("code", param(&back, "code").unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["access_token"].as_str().unwrap();
    let work = clone(dir.path(), &clone_url(&base), token, "work").await;
    assert!(work.join("README.md").exists());
    let repo: Value = client()
        .get(format!("{base}/repos/alice/widgets"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(repo["default_branch"], "trunk");
}

#[tokio::test]
async fn a_client_that_goes_away_takes_the_backend_with_it() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    let (fake, dir, bare) = fake_with_repo().await;
    // The hook holds a FIFO open for as long as it lives: the test learns
    // that it started when its open returns, and that it died at EOF.
    let hold = dir.path().join("hold");
    let made = std::process::Command::new("mkfifo")
        .arg(&hold)
        .status()
        .unwrap();
    assert!(made.success());
    let hook = bare.join("hooks/pre-receive");
    let script = format!("#!/bin/sh\nexec 3>'{}'\nexec sleep 600\n", hold.display());
    std::fs::write(&hook, script).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    // A plain thread: the runtime would wait for a blocking task on failure.
    std::thread::spawn(move || {
        let mut fifo = std::fs::File::open(&hold).unwrap();
        started_tx.send(()).unwrap();
        fifo.read_to_end(&mut Vec::new()).unwrap();
        let _ = ended_tx.send(());
    });

    let token = sign_in(&fake, None, "repo").await;
    let work = clone(dir.path(), &clone_url(&fake.base_url()), &token, "work").await;
    commit_file(&work, "slow.txt", b"slow\n").await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x:{token}"));
    let mut push = tokio::process::Command::new("git")
        .current_dir(&work)
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/slow"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.extraHeader")
        .env(
            "GIT_CONFIG_VALUE_0",
            format!("Authorization: Basic {basic}"),
        )
        .stderr(std::process::Stdio::null())
        // git-remote-http holds the connection: the whole client must go.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Bounded: if the push fails before its hook starts, fail rather than hang.
    tokio::time::timeout(std::time::Duration::from_secs(60), started)
        .await
        .expect("the pre-receive hook never started")
        .unwrap();
    let group = rustix::process::Pid::from_raw(push.id().unwrap() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
    push.wait().await.unwrap();
    let limit = std::time::Duration::from_secs(60);
    tokio::time::timeout(limit, ended)
        .await
        .expect("the hook outlived its client")
        .unwrap();
    assert_eq!(rev_parse(&bare, "refs/heads/slow").await, None);
}
