//! A headless Chromium over WebDriver (fantoccini): `chromedriver` on a free
//! port, a browser at a phone or desktop viewport, and bounded waits.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use fantoccini::Client;
use fantoccini::ClientBuilder;
use fantoccini::Locator;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Viewport {
    Phone,
    Desktop,
}

/// `chromedriver`, killed with everything it started (Chromium) when dropped.
pub(crate) struct Driver {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver leads its own process group, and Chromium is in it.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver() -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("chromedriver.log")).unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("chromedriver is missing: apt-get install chromium chromium-driver");
    let driver = Driver { child, dir };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !reqwest::get(format!("{url}/status"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(started.elapsed() < PATIENCE, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (driver, url)
}

/// chromedriver's `POST /session/{id}/chromium/network_conditions`: takes the page offline or back.
#[derive(Debug)]
pub(crate) struct NetworkConditions {
    offline: bool,
}

impl WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        let session = session.unwrap_or_default();
        base.join(&format!("session/{session}/chromium/network_conditions"))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        let conditions = json!({"offline": self.offline, "latency": 0,
            "download_throughput": -1, "upload_throughput": -1});
        let body = json!({ "network_conditions": conditions }).to_string();
        (axum::http::Method::POST, Some(body))
    }
}

/// A browser session. Fields drop in order: the session's client, then the driver.
pub(crate) struct Browser {
    pub(crate) c: Client,
    _driver: Driver,
    viewport: Viewport,
    /// Whether to save screenshots of the screens passed on the way.
    pub(crate) shots: bool,
}

pub(crate) async fn browser(viewport: Viewport) -> Browser {
    let (driver, url) = start_driver().await;
    let profile = driver.dir.path().join("profile");
    // Exact viewports: a phone (pixel ratio, touch, `<meta name=viewport>`) or a desktop.
    let metrics = match viewport {
        Viewport::Phone => json!({"width": 390, "height": 844, "pixelRatio": 2.0, "mobile": true}),
        Viewport::Desktop => {
            json!({"width": 1280, "height": 800, "pixelRatio": 1.0, "mobile": false, "touch": false})
        }
    };
    let chrome = json!({
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display())],
        "mobileEmulation": {"deviceMetrics": metrics},
    });
    let caps = serde_json::Map::from_iter([("goog:chromeOptions".to_owned(), chrome)]);
    let c = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a Chromium session");
    Browser {
        c,
        _driver: driver,
        viewport,
        shots: false,
    }
}

impl Browser {
    pub(crate) fn size(&self) -> String {
        format!("{:?}", self.viewport).to_lowercase()
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Re-evaluates `expr` until it is truthy; returns its value.
    pub(crate) async fn until(&self, what: &str, expr: &str) -> Value {
        let started = Instant::now();
        let script = format!("return ({expr});");
        loop {
            let v = self.js(&script).await;
            if !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("") {
                return v;
            }
            let title = self.c.title().await.unwrap_or_default();
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}; last value {v}; title {title:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn wait_for(&self, what: Locator<'_>) -> Element {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(what)
            .await
            .unwrap_or_else(|e| panic!("no element {what:?}: {e}"))
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        self.wait_for(Locator::Css(css)).await
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The text of every element matching `css`, visible or not.
    pub(crate) async fn texts(&self, css: &str) -> Value {
        let script = format!(
            "return [...document.querySelectorAll({})].map(e => e.textContent);",
            json!(css)
        );
        self.js(&script).await
    }

    pub(crate) async fn title(&self) -> String {
        self.c.title().await.unwrap()
    }

    /// Clicks the button with this name.
    pub(crate) async fn press(&self, name: &str) {
        let b = self
            .wait_for(Locator::XPath(&format!(
                "//button[normalize-space()='{name}']"
            )))
            .await;
        self.click(&b).await;
    }

    /// The control a `<label>` with this text names: the label must be real.
    pub(crate) async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()='{label}']");
        let id = self
            .wait_for(Locator::XPath(&xpath))
            .await
            .attr("for")
            .await;
        let id = id.unwrap().expect("the label names its control");
        self.c.find(Locator::Id(&id)).await.unwrap()
    }

    /// Clicks like a person: the element is scrolled to the middle first, clear of the sticky dock.
    pub(crate) async fn click(&self, el: &Element) {
        let arg = vec![serde_json::to_value(el).unwrap()];
        let center = "arguments[0].scrollIntoView({block: 'center'});";
        self.c.execute(center, arg).await.unwrap();
        el.click().await.unwrap();
    }

    pub(crate) async fn sign_in(&self, h: &Harness) {
        self.c.goto(&h.base).await.unwrap();
        let token = self.field("Token").await;
        assert_eq!(self.title().await, "Sign in · Dockhand");
        self.shot("sign-in").await;
        token.send_keys(&h.token).await.unwrap();
        self.press("Sign in").await;
        self.find("[data-new]").await;
        assert_eq!(self.title().await, "Tasks · Dockhand");
    }

    /// Fills in the new-task form; returns the task id from the view it opens.
    pub(crate) async fn start_task(&self, repo: &Path, prompt: &str) -> String {
        self.press("New task").await;
        let repo_field = self.field("Repository").await;
        repo_field.send_keys(repo.to_str().unwrap()).await.unwrap();
        self.field("Prompt").await.send_keys(prompt).await.unwrap();
        self.shot("new-task").await;
        self.press("Start task").await;
        let hash = "location.hash.startsWith('#/tasks/') && location.hash";
        let hash = self.until("the task view", hash).await;
        hash.as_str().unwrap()["#/tasks/".len()..].to_owned()
    }

    pub(crate) async fn wait_status(&self, status: &str) {
        self.find(&format!("section.task[data-status={status}]"))
            .await;
    }

    /// Waits until the page shows every event the API has, then checks that it
    /// shows each exactly once.
    pub(crate) async fn check_events_match(&self, h: &Harness, id: &str) {
        let api: Vec<u64> = h.events(id).await.iter().map(|e| e.seq).collect();
        let last = api.last().unwrap();
        let shown = format!("document.querySelector('[data-seq=\"{last}\"]')");
        self.until("every event rendered", &shown).await;
        let script =
            "return [...document.querySelectorAll('[data-seq]')].map(e => Number(e.dataset.seq));";
        let rendered: Vec<u64> = serde_json::from_value(self.js(script).await).unwrap();
        let mut sorted = rendered.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), rendered.len(), "duplicates: {rendered:?}");
        assert_eq!(sorted, api, "the page's events differ from the API's");
    }

    pub(crate) async fn no_sideways_scroll(&self, screen: &str) {
        let script = "return [document.documentElement.scrollWidth, innerWidth, innerHeight];";
        let v = self.js(script).await;
        let want = match self.viewport {
            Viewport::Phone => json!([390, 844]),
            Viewport::Desktop => json!([1280, 800]),
        };
        assert_eq!(json!([v[1], v[2]]), want, "the viewport");
        assert!(
            v[0].as_u64() <= v[1].as_u64(),
            "the {screen} scrolls sideways at {}: {v}",
            self.size()
        );
    }

    pub(crate) async fn network(&self, online: bool) {
        let cmd = NetworkConditions { offline: !online };
        self.c.issue_cmd(cmd).await.unwrap();
    }

    /// Saves a screenshot under `target/ui-screenshots/`.
    pub(crate) async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        let file = dir.join(format!("{name}-{}.png", self.size()));
        std::fs::write(file, png).unwrap();
    }

    pub(crate) async fn shot(&self, name: &str) {
        if self.shots {
            self.screenshot(name).await;
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.c.close().await;
    }
}
