use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dockhand_protocol::ControlKind;
use dockhand_protocol::Event;
use dockhand_protocol::EventBody;
use dockhand_protocol::Task;
use dockhand_protocol::WsMessage;
use dockhand_server::Config;
use dockhand_server::Coordinator;
use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::Scenario;
use futures_util::StreamExt;
use serde_json::Value;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Upper bound for anything a test waits on, so a bug fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub fake: FakeAnthropic,
    coord: Option<Coordinator>,
    config: Config,
    pub token: String,
    pub http: reqwest::Client,
    pub base: String,
    repos: AtomicUsize,
}

impl Harness {
    pub async fn start(scenario: Scenario) -> Harness {
        Self::start_with(scenario, |_| {}).await
    }

    pub async fn start_with(scenario: Scenario, tweak: impl FnOnce(&mut Config)) -> Harness {
        Self::with_fake(FakeAnthropic::start(scenario).await, tweak).await
    }

    pub async fn with_fake(fake: FakeAnthropic, tweak: impl FnOnce(&mut Config)) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::with_listener(fake, listener, tweak).await
    }

    /// A harness whose coordinator listens on every address (`0.0.0.0`), as a
    /// server exposed to its network would.
    pub async fn start_public(scenario: Scenario, tweak: impl FnOnce(&mut Config)) -> Harness {
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        Self::with_listener(FakeAnthropic::start(scenario).await, listener, tweak).await
    }

    async fn with_listener(
        fake: FakeAnthropic,
        listener: tokio::net::TcpListener,
        tweak: impl FnOnce(&mut Config),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let url = fake.base_url();
        let env = move |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some("test-key".to_owned()),
            "ANTHROPIC_BASE_URL" => Some(url.clone()),
            _ => None,
        };
        let mut config = Config::load(&data, &env).unwrap();
        // Tests pick their backend; docker ones say so.
        config.sandbox.backend = Some(dockhand_server::config::Backend::Local);
        let port = listener.local_addr().unwrap().port();
        config.public_url = format!("http://127.0.0.1:{port}");
        tweak(&mut config);
        let coord = Coordinator::start(config.clone(), Some(listener))
            .await
            .unwrap();
        let token = std::fs::read_to_string(data.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        let base = format!("http://127.0.0.1:{}", coord.addr().port());
        Harness {
            dir,
            fake,
            coord: Some(coord),
            config,
            token,
            http: reqwest::Client::new(),
            base,
            repos: AtomicUsize::new(0),
        }
    }

    /// The running coordinator.
    pub fn coord(&self) -> &Coordinator {
        self.coord.as_ref().expect("a running coordinator")
    }

    /// Stops the coordinator and starts it again on the same data directory,
    /// with `tweak` applied to its configuration (a new address, too).
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Config)) {
        if let Some(old) = self.coord.take() {
            old.shutdown().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        tweak(&mut self.config);
        self.config.public_url = format!("http://{}", listener.local_addr().unwrap());
        let coord = Coordinator::start(self.config.clone(), Some(listener))
            .await
            .unwrap();
        self.base = coord.base_url();
        self.coord = Some(coord);
    }

    /// A harness on the docker backend, with no warm pool unless `tweak` adds one.
    pub async fn docker(scenario: Scenario, tweak: impl FnOnce(&mut Config)) -> Harness {
        require_docker();
        Self::start_with(scenario, |c| {
            c.sandbox.backend = Some(dockhand_server::config::Backend::Docker);
            c.sandbox.pool_size = 0;
            tweak(c);
        })
        .await
    }

    /// Ids of the containers this harness's coordinator made.
    pub fn containers(&self) -> Vec<String> {
        let id = std::fs::read_to_string(self.data_dir().join("coordinator-id")).unwrap();
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("label=dockhand.coordinator={}", id.trim()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A git repository with one commit holding `files`.
    pub fn repo(&self, files: &[(&str, &str)]) -> PathBuf {
        let n = self.repos.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("repo{n}"));
        make_repo(&path, files);
        path
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends a request straight to the coordinator's router (no socket):
    /// the status, the headers and the body as JSON (or a string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, axum::http::HeaderMap, Value) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(axum::body::Body::from(body.to_owned())).unwrap();
        let app = dockhand_server::http::router(self.coord().services().clone());
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, value)
    }

    pub async fn submit(&self, repo: &Path, prompt: &str) -> Task {
        let body = json!({"repo": repo.to_str().unwrap(), "prompt": prompt});
        let (status, v) = self
            .request(reqwest::Method::POST, "/api/v1/tasks", Some(body))
            .await;
        assert_eq!(status, 201, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn task(&self, id: &str) -> Task {
        let (status, v) = self
            .request(reqwest::Method::GET, &format!("/api/v1/tasks/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn events(&self, id: &str) -> Vec<Event> {
        let (status, v) = self
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{id}/events"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        serde_json::from_value(v["events"].clone()).unwrap()
    }

    pub async fn ws(&self, id: &str, after: u64) -> Ws {
        let url = format!(
            "{}/api/v1/tasks/{id}/events?after={after}",
            self.base.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(req).await.unwrap().0
    }

    /// Waits for the task to end (a terminal status after the replay), over the
    /// WebSocket, reconnecting with `after=SEQ` as real clients do.
    pub async fn wait_done(&self, id: &str) -> Task {
        tokio::time::timeout(PATIENCE, async {
            let mut last = 0;
            loop {
                let mut ws = self.ws(id, last).await;
                let mut caught_up = false;
                loop {
                    match next_msg(&mut ws).await {
                        Some(WsMessage::Event(e)) => {
                            last = e.seq;
                            if let EventBody::Status(s) = &e.body
                                && caught_up
                                && s.status.is_terminal()
                            {
                                return;
                            }
                        }
                        Some(WsMessage::Control(c)) if c.control == ControlKind::CaughtUp => {
                            caught_up = true;
                            let t = self.task(id).await;
                            if t.status.is_terminal() && t.last_seq <= last {
                                return;
                            }
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
        })
        .await
        .expect("the task did not end in time");
        self.task(id).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Before the data dir goes: the coordinator unmounts its workspaces.
        drop(self.coord.take());
        // Docker containers outlive the test process; remove this coordinator's.
        if self.data_dir().join("coordinator-id").exists() && docker_answers() {
            let ids = self.containers();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
            // And the environment images its setups built (they carry its label).
            let id = std::fs::read_to_string(self.data_dir().join("coordinator-id")).unwrap();
            let out = Command::new("docker")
                .args([
                    "images",
                    "-q",
                    "--filter",
                    "label=dockhand.env=1",
                    "--filter",
                ])
                .arg(format!("label=dockhand.coordinator={}", id.trim()))
                .output()
                .unwrap();
            let images: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !images.is_empty() {
                let _ = Command::new("docker")
                    .args(["rmi", "-f"])
                    .args(&images)
                    .output();
            }
        }
    }
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Docker tests run against the real engine; a missing engine is a failure.
pub fn require_docker() {
    assert!(
        docker_answers(),
        "these tests need a running Docker engine (CI sets DOCKHAND_REQUIRE_DOCKER=1); start dockerd"
    );
    let image = dockhand_sandbox::docker::image::default_image();
    let found = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "the sandbox image {image} is missing; build it with `dockhand image build`"
    );
}

/// Output of `docker exec` in a container, as root.
pub fn docker_exec(container: &str, script: &str) -> String {
    let out = Command::new("docker")
        .args(["exec", "-u", "0", container, "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The next event, delta or control message; `None` when the socket closed.
pub async fn next_msg(ws: &mut Ws) -> Option<WsMessage> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).expect("a WsMessage")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    // Workspaces belong to the sandbox's uid, not the test's.
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "safe.directory=*"])
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

pub fn make_repo(path: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
    for (name, text) in files {
        let p = path.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
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

pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.body.kind()).collect()
}

/// A command that prints `started`, then waits until the test creates `.git/go`.
pub const GATED: &str =
    "echo started; while [ ! -e /workspace/.git/go ]; do sleep 0.02; done; echo finished";

/// Reads events until one matches `stop` (inclusive); returns them all.
pub async fn read_until(ws: &mut Ws, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match next_msg(ws).await {
                Some(WsMessage::Event(e)) => {
                    let done = stop(&e);
                    got.push(e);
                    if done {
                        return;
                    }
                }
                Some(_) => {}
                None => panic!("stream closed early"),
            }
        }
    })
    .await
    .expect("timed out reading events");
    got
}

pub fn is_end(e: &Event) -> bool {
    matches!(&e.body, EventBody::Status(s) if s.status.is_terminal())
}

pub fn is_started(e: &Event) -> bool {
    matches!(&e.body, EventBody::ToolOutput(o) if o.text.contains("started"))
}

pub fn is_tool_call(e: &Event) -> bool {
    matches!(&e.body, EventBody::ToolCall(_))
}

/// The host directory of a task's workspace.
pub fn workspace(h: &Harness, id: &str) -> PathBuf {
    let id = dockhand_protocol::TaskId::parse(id).unwrap();
    PathBuf::from(
        h.coord()
            .services()
            .store
            .get_task(&id)
            .unwrap()
            .unwrap()
            .workspace
            .unwrap(),
    )
}

/// Opens the gate of a task running [`GATED`].
pub fn open_gate(h: &Harness, id: &str) {
    std::fs::write(workspace(h, id).join(".git/go"), "").unwrap();
}
