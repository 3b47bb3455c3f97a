//! Signing in, tokens, and no secret anywhere it should not be.

use crate::common::*;

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
