//! What the tests share: the binary, a throwaway environment, the API.

pub(crate) use std::io::BufRead;
pub(crate) use std::io::BufReader;
pub(crate) use std::path::Path;
pub(crate) use std::path::PathBuf;
pub(crate) use std::process::Child;
pub(crate) use std::process::Command;
pub(crate) use std::process::Stdio;
pub(crate) use std::time::Duration;

pub(crate) use dockhand_testkit::FakeAnthropic;
pub(crate) use dockhand_testkit::Scenario;
pub(crate) use dockhand_testkit::Turn;
pub(crate) use serde_json::Value;
pub(crate) use serde_json::json;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_dockhand");
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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

pub(crate) fn make_repo(path: &Path) {
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

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) fake: FakeAnthropic,
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
    pub(crate) async fn new(scenario: Scenario) -> Env {
        Self::with_backend(scenario, "local").await
    }

    pub(crate) async fn with_backend(scenario: Scenario, backend: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            fake: FakeAnthropic::start(scenario).await,
            backend: backend.to_owned(),
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn cmd(&self) -> Command {
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
    pub(crate) fn serve(&self) -> (Child, String, Vec<String>) {
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

    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.data().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

pub(crate) async fn api(
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
pub(crate) async fn eventually<F: std::future::Future<Output = bool>>(
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

pub(crate) fn processes_with(marker: &str) -> usize {
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

pub(crate) fn kill9(child: &mut Child) {
    rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
}
