//! Host git against real repositories and a real git smart-HTTP server (the
//! fake GitHub's `git http-backend`): what a workspace clone holds, what a
//! bundle import refuses, where credentials go and which address git connects to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;

use dockhand_forge::Mirrors;
use dockhand_forge::RemotePolicy;
use dockhand_forge::github::DevicePoll;
use dockhand_forge::github::GitHubClient;
use dockhand_forge::github::NewPullRequest;
use dockhand_net::AddressPolicy;
use dockhand_net::Resolver;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
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

fn commit_file(repo: &Path, name: &str, text: &str) {
    std::fs::write(repo.join(name), text).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", name]);
}

fn has_object(repo: &Path, sha: &str) -> bool {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "-e", sha])
        .status()
        .unwrap()
        .success()
}

#[tokio::test]
async fn a_seed_holds_only_its_base_branch() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mirror");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    commit_file(&src, "README", "shared\n");
    // Another task's private ref, with objects of its own.
    git(&src, &["checkout", "-q", "-b", "other"]);
    commit_file(&src, "secret.txt", "only on another task's branch\n");
    let secret = git(&src, &["rev-parse", "HEAD:secret.txt"]);
    git(&src, &["update-ref", "refs/dockhand/t1", "HEAD"]);
    git(&src, &["checkout", "-q", "main"]);
    git(&src, &["branch", "-q", "-D", "other"]);
    assert!(has_object(&src, &secret));

    let (base, bundle) = dockhand_forge::seed_bundle(&src, None, None, 1 << 20)
        .await
        .unwrap();
    assert_eq!(base.branch, "main");
    assert_eq!(base.commit, git(&src, &["rev-parse", "main"]));
    let file = dir.path().join("seed.bundle");
    std::fs::write(&file, &bundle).unwrap();
    let ws = dir.path().join("ws");
    git(
        dir.path(),
        &["clone", "-q", file.to_str().unwrap(), ws.to_str().unwrap()],
    );
    assert!(has_object(&ws, &base.commit));
    assert!(
        !has_object(&ws, &secret),
        "the seed holds an object only another task's ref reaches"
    );
    let missing = dockhand_forge::seed_bundle(&src, Some("nope"), None, 1 << 20).await;
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("branch nope not found")
    );
    let small = dockhand_forge::seed_bundle(&src, Some("main"), None, 10).await;
    assert!(
        small
            .unwrap_err()
            .to_string()
            .contains("git.max_bundle_bytes")
    );
}

#[tokio::test]
async fn a_bundle_with_a_dangerous_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    git(&evil, &["init", "-q", "-b", "main"]);
    commit_file(&evil, "README", "base\n");
    let base = git(&evil, &["rev-parse", "HEAD"]);
    // A tree with a `.git` entry: checking it out would write into .git/.
    let blob = git(&evil, &["rev-parse", "HEAD:README"]);
    let tree = {
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(&evil)
            .args(["mktree", "--missing"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "100644 blob {blob}\t.git").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let bad = git(&evil, &["commit-tree", &tree, "-p", &base, "-m", "evil"]);
    git(&evil, &["update-ref", "refs/heads/dockhand/t1-x", &bad]);
    let bundle = dir.path().join("result.bundle");
    git(
        &evil,
        &[
            "bundle",
            "create",
            "-q",
            bundle.to_str().unwrap(),
            "refs/heads/dockhand/t1-x",
            &format!("^{base}"),
        ],
    );
    let target = dir.path().join("target");
    let from = evil.to_str().unwrap();
    let args = [
        "clone",
        "-q",
        "--no-local",
        "--single-branch",
        "-b",
        "main",
        from,
        "target",
    ];
    git(dir.path(), &args);
    assert!(!has_object(&target, &bad));
    let err = dockhand_forge::fetch_bundle(&bundle, &target, "dockhand/t1-x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("dotgit") || err.contains("fsck"), "{err}");
    assert!(!has_object(&target, &bad), "nothing of it was kept");
}

/// A resolver whose answers the test changes, as a rebinding name server would.
fn switchable(first: &str) -> (Resolver, Arc<Mutex<IpAddr>>) {
    let answer = Arc::new(Mutex::new(first.parse::<IpAddr>().unwrap()));
    let a = answer.clone();
    let resolver = Resolver::with_lookup(Arc::new(move |_, _| {
        let ip = *a.lock().unwrap();
        Box::pin(async move { Ok(vec![ip]) })
    }));
    (resolver, answer)
}

async fn plain_git_server(repos: &Path) -> FakeGitHub {
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["nobody".into()],
        repos_dir: Some(repos.to_path_buf()),
        anonymous_git: true,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    gh.create_repo("acme", "app", &[("README.md", "hello\n")], "main")
        .unwrap();
    gh
}

#[tokio::test]
async fn git_connects_to_the_checked_address_and_rebinding_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gh = plain_git_server(dir.path()).await;
    // Loopback is allowed here only so the test has a server to reach.
    let addresses = AddressPolicy {
        allow: vec![dockhand_net::parse_net("127.0.0.0/8").unwrap()],
        allow_all: false,
    };
    let (resolver, answer) = switchable("127.0.0.1");
    let policy = RemotePolicy::new(
        "https://github.example",
        "https://api.github.example",
        addresses,
    )
    .with_resolver(resolver);
    let mirrors = Mirrors::new(dir.path().join("mirrors"), policy);
    // `pinned.invalid` is in no DNS: the fetch works only through the pinned address.
    let url = format!("http://pinned.invalid:{}/acme/app.git", gh.addr().port());
    let mirror = mirrors
        .sync(&url, Some("gho_not_for_this_host"))
        .await
        .unwrap();
    assert!(!git(&mirror, &["rev-parse", "refs/heads/main"]).is_empty());
    for r in gh.requests() {
        assert_eq!(r.header("authorization"), None, "{r:?}");
    }
    // The name now answers a private address: the next command is refused.
    *answer.lock().unwrap() = "10.0.0.7".parse().unwrap();
    let err = mirrors.sync(&url, None).await.unwrap_err().to_string();
    assert!(err.contains("10.0.0.7, a private address"), "{err}");
}

#[tokio::test]
async fn the_token_reaches_only_githubs_own_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let other = plain_git_server(&dir.path().join("other")).await;
    let github = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["alice".into()],
        repos_dir: Some(dir.path().join("github")),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    github
        .create_repo("acme", "app", &[("README.md", "hi\n")], "main")
        .unwrap();
    let token = github.issue_token("alice", &["repo"]).unwrap();
    // Same host as GitHub, another port: no credential.
    let policy = RemotePolicy::new(
        &github.base_url(),
        &github.base_url(),
        AddressPolicy {
            allow: Vec::new(),
            allow_all: true,
        },
    );
    let mirrors = Mirrors::new(dir.path().join("mirrors"), policy);
    let elsewhere = format!("{}/acme/app.git", other.base_url());
    mirrors.sync(&elsewhere, Some(&token)).await.unwrap();
    assert!(!other.requests().is_empty());
    for r in other.requests() {
        assert_eq!(r.header("authorization"), None, "{r:?}");
    }
    let on_github = format!("{}/acme/app.git", github.base_url());
    mirrors.sync(&on_github, Some(&token)).await.unwrap();
    assert!(
        github
            .requests()
            .iter()
            .any(|r| r.header("authorization").is_some()),
        "GitHub itself gets the token"
    );
}

/// The GitHub client's requests, as the fake GitHub recorded them: the OAuth
/// forms field by field and the REST bodies as GitHub documents them.
#[tokio::test]
async fn the_github_client_speaks_githubs_wire_shapes() {
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["alice".into()],
        repos: vec!["alice/app".into()],
        client_id: Some("cid".into()),
        client_secret: Some("sec".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let base = gh.base_url();
    let client = GitHubClient::new(&base, &base, "cid", "sec").unwrap();

    // Web flow: the fake approves at once and redirects back with a code.
    let callback = "http://dock.example/cb";
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = no_redirects
        .get(client.authorize_url(callback, "st", None))
        .send()
        .await
        .unwrap();
    let location = back.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let web = client.exchange_code(&code, callback).await.unwrap();
    assert_eq!(client.user(&web.token).await.unwrap().login, "alice");

    // Device flow: the fake answers pending, then slow_down, then a token.
    let device = client.device_code().await.unwrap();
    assert!(matches!(
        client.poll_device(&device.device_code).await.unwrap(),
        DevicePoll::Pending
    ));
    assert!(matches!(
        client.poll_device(&device.device_code).await.unwrap(),
        DevicePoll::SlowDown(_)
    ));
    let DevicePoll::Granted(grant) = client.poll_device(&device.device_code).await.unwrap() else {
        panic!("the third poll is approved");
    };

    let pr = NewPullRequest {
        owner: "alice",
        repo: "app",
        head: "dockhand/t1",
        base: "main",
        title: "Fix it",
        body: "Done.",
        draft: true,
    };
    let (opened, created) = client.open_pr(&grant.token, &pr).await.unwrap();
    assert!(created);
    let (again, created) = client.open_pr(&grant.token, &pr).await.unwrap();
    assert_eq!(
        (again, created),
        (opened.clone(), false),
        "found, not opened twice"
    );
    client
        .comment(&grant.token, "alice", "app", opened.number, "Hello")
        .await
        .unwrap();

    let posts: Vec<(String, String)> = gh
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| (r.path, r.body))
        .collect();
    let form = |path: &str, body: String| (path.to_owned(), body);
    let poll = format!(
        "client_id=cid&device_code={}&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
        device.device_code
    );
    assert_eq!(
        posts[..5],
        [
            form(
                "/login/oauth/access_token",
                format!(
                    "client_id=cid&client_secret=sec&code={code}&redirect_uri=http%3A%2F%2Fdock.example%2Fcb"
                )
            ),
            form(
                "/login/device/code",
                "client_id=cid&scope=read%3Auser+read%3Aorg+repo".into()
            ),
            form("/login/oauth/access_token", poll.clone()),
            form("/login/oauth/access_token", poll.clone()),
            form("/login/oauth/access_token", poll),
        ]
    );
    let json = |i: usize| serde_json::from_str::<serde_json::Value>(&posts[i].1).unwrap();
    assert_eq!(posts[5].0, "/repos/alice/app/pulls");
    assert_eq!(
        json(5),
        serde_json::json!({"title": "Fix it", "head": "dockhand/t1", "base": "main", "body": "Done.", "draft": true})
    );
    assert_eq!(
        posts[6].0,
        format!("/repos/alice/app/issues/{}/comments", opened.number)
    );
    assert_eq!(json(6), serde_json::json!({"body": "Hello"}));
    assert_eq!(posts.len(), 7);
}

#[tokio::test]
async fn the_environment_is_read_from_the_commit_not_a_checkout() {
    use dockhand_forge::Environment;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    commit_file(repo, "README", "r\n");
    let bare = git(repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        Environment::read_at(repo, &bare).await.unwrap(),
        Environment::default()
    );

    std::fs::create_dir(repo.join(".dockhand")).unwrap();
    commit_file(repo, ".dockhand/environment.toml", "image = \"rust:1\"\n");
    let with_file = git(repo, &["rev-parse", "HEAD"]);
    // What the working tree holds later does not count; the commit does.
    std::fs::write(repo.join(".dockhand/environment.toml"), "image = \"x:2\"\n").unwrap();
    let env = Environment::read_at(repo, &with_file).await.unwrap();
    assert_eq!(env.image.as_deref(), Some("rust:1"));
    assert_eq!(
        Environment::read_at(repo, &bare).await.unwrap(),
        Environment::default()
    );

    let reason = |commit: String| async move {
        Environment::read_at(repo, &commit)
            .await
            .unwrap_err()
            .to_string()
    };
    commit_file(repo, ".dockhand/environment.toml", "imgae = \"typo\"\n");
    let typo = reason(git(repo, &["rev-parse", "HEAD"])).await;
    assert!(typo.contains("imgae"), "{typo}");
    commit_file(repo, ".dockhand/environment.toml", &"#".repeat(70_000));
    let big = reason(git(repo, &["rev-parse", "HEAD"])).await;
    assert!(big.contains("limit"), "{big}");
    std::fs::remove_file(repo.join(".dockhand/environment.toml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.join(".dockhand/environment.toml")).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "link"]);
    let link = reason(git(repo, &["rev-parse", "HEAD"])).await;
    assert!(link.contains("symlink"), "{link}");
    // A `.dockhand` that is itself a symlink holds no file of the repository's.
    git(repo, &["rm", "-q", "-r", ".dockhand"]);
    std::os::unix::fs::symlink("/etc", repo.join(".dockhand")).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "dir link"]);
    let head = git(repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        Environment::read_at(repo, &head).await.unwrap(),
        Environment::default()
    );
    for bad in ["--output=/tmp/x", "HEAD:README", "no-such-commit"] {
        assert!(Environment::read_at(repo, bad).await.is_err(), "{bad}");
    }
}
