//! The web UI in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver with fantoccini. Each test starts
//! its own `chromedriver` on a free port and a coordinator with the fake model,
//! and runs at a phone (390×844) and a desktop (1280×800) viewport.
//!
//! Every wait is a bounded condition poll: a WebDriver wait for an element, or
//! `Browser::until`, which re-evaluates a JavaScript expression.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use dockhand_protocol::TaskStatus;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use fantoccini::Client;
use fantoccini::ClientBuilder;
use fantoccini::Locator;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Viewport {
    Phone,
    Desktop,
}

/// Runs a test body once per viewport, as the tests `BODY::phone` and `BODY::desktop`.
macro_rules! at_both_sizes {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread")]
            async fn phone() {
                super::$body(super::Viewport::Phone).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn desktop() {
                super::$body(super::Viewport::Desktop).await
            }
        }
    };
}

/// `chromedriver`, killed with everything it started (Chromium) when dropped.
struct Driver {
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

async fn start_driver() -> (Driver, String) {
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
struct NetworkConditions {
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
struct Browser {
    c: Client,
    _driver: Driver,
    viewport: Viewport,
    /// Whether to save screenshots of the screens passed on the way.
    shots: bool,
}

async fn browser(viewport: Viewport) -> Browser {
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
    fn size(&self) -> String {
        format!("{:?}", self.viewport).to_lowercase()
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Re-evaluates `expr` until it is truthy; returns its value.
    async fn until(&self, what: &str, expr: &str) -> Value {
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

    async fn wait_for(&self, what: Locator<'_>) -> Element {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(what)
            .await
            .unwrap_or_else(|e| panic!("no element {what:?}: {e}"))
    }

    async fn find(&self, css: &str) -> Element {
        self.wait_for(Locator::Css(css)).await
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The text of every element matching `css`, visible or not.
    async fn texts(&self, css: &str) -> Value {
        let script = format!(
            "return [...document.querySelectorAll({})].map(e => e.textContent);",
            json!(css)
        );
        self.js(&script).await
    }

    async fn title(&self) -> String {
        self.c.title().await.unwrap()
    }

    /// Clicks the button with this name.
    async fn press(&self, name: &str) {
        let b = self
            .wait_for(Locator::XPath(&format!(
                "//button[normalize-space()='{name}']"
            )))
            .await;
        self.click(&b).await;
    }

    /// The control a `<label>` with this text names: the label must be real.
    async fn field(&self, label: &str) -> Element {
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
    async fn click(&self, el: &Element) {
        let arg = vec![serde_json::to_value(el).unwrap()];
        let center = "arguments[0].scrollIntoView({block: 'center'});";
        self.c.execute(center, arg).await.unwrap();
        el.click().await.unwrap();
    }

    async fn sign_in(&self, h: &Harness) {
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
    async fn start_task(&self, repo: &Path, prompt: &str) -> String {
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

    async fn wait_status(&self, status: &str) {
        self.find(&format!("section.task[data-status={status}]"))
            .await;
    }

    /// Waits until the page shows every event the API has, then checks that it
    /// shows each exactly once.
    async fn check_events_match(&self, h: &Harness, id: &str) {
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

    async fn no_sideways_scroll(&self, screen: &str) {
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

    async fn network(&self, online: bool) {
        let cmd = NetworkConditions { offline: !online };
        self.c.issue_cmd(cmd).await.unwrap();
    }

    /// Saves a screenshot under `target/ui-screenshots/`.
    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        let file = dir.join(format!("{name}-{}.png", self.size()));
        std::fs::write(file, png).unwrap();
    }

    async fn shot(&self, name: &str) {
        if self.shots {
            self.screenshot(name).await;
        }
    }

    async fn close(self) {
        let _ = self.c.close().await;
    }
}

/// A long line with no break opportunity, to catch anything that would scroll sideways.
const LONG_WORD: &str =
    "supercalifragilisticexpialidocious_and_then_some_more_text_without_any_spaces_0123456789";

fn final_text() -> String {
    let words = "The check passed and the marker file is in place. I printed the answer to the \
                 question of life, which the shell computed as forty-two, and left the rest of \
                 the repository untouched. Here is a long identifier to show wrapping:";
    format!("{words} {LONG_WORD}{LONG_WORD}")
}

async fn a_task_started_from_the_page_streams_and_finishes(viewport: Viewport) {
    let command =
        format!("echo ui-output-$((6*7)); echo {LONG_WORD}{LONG_WORD}; echo m > done.txt");
    let scenario = Scenario::new()
        .token_delay_ms(40)
        .turn(Turn::text("Let me run the check.").tool_use("bash", json!({ "command": command })))
        .text(final_text());
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("hello.txt", "hello\n")]);
    let mut b = browser(viewport).await;
    b.shots = true;
    b.sign_in(&h).await;
    b.no_sideways_scroll("empty task list").await;
    let prompt = format!("Run the check and report {LONG_WORD}");
    let id = b.start_task(&repo, &prompt).await;

    // The final text streams in before the task ends: it shows in the live
    // block while no committed block holds it yet.
    let streaming = "(() => { const s = document.querySelector('.live .streaming'); \
        const committed = [...document.querySelectorAll('.k-assistant')].some(e => e.textContent.startsWith('The check')); \
        return s && !committed && s.textContent.startsWith('The check') && s.textContent; })()";
    let streamed = b.until("streamed text", streaming).await;
    assert!(!h.task(&id).await.status.is_terminal(), "streamed too late");
    let text = final_text();
    assert!(text.starts_with(streamed.as_str().unwrap()), "{streamed}");
    b.screenshot("task-streaming").await;

    b.wait_status("succeeded").await;
    assert_eq!(b.title().await, "succeeded · Dockhand");
    assert_eq!(h.task(&id).await.status, TaskStatus::Succeeded);
    // The committed text replaced the streaming block.
    b.until(
        "the end of streaming",
        "!document.querySelector('.streaming')",
    )
    .await;
    let committed = b.texts(".k-assistant").await;
    assert_eq!(committed, json!(["Let me run the check.", text]));

    // The tool call opens to show its command, its output and its exit code.
    let summary = b.find("li.k-tool details > summary").await;
    assert!(summary.text().await.unwrap().contains("echo ui-output"));
    b.click(&summary).await;
    let output = b.find("li.k-tool pre.output").await;
    assert!(output.is_displayed().await.unwrap());
    assert!(output.text().await.unwrap().contains("ui-output-42"));
    let state = b.text("li.k-tool .tool-state").await;
    assert!(state.starts_with("exit 0 · "), "{state}");
    let result = b.text("li.k-tool .result").await;
    assert!(result.starts_with("exit 0 after "), "{result}");
    // The diff stat and the token usage are shown.
    let diff = b.text("li.k-diff").await;
    assert!(
        diff.starts_with("1 file changed +1 −0 on dockhand/"),
        "{diff}"
    );
    let usage = b.text("[data-usage]").await;
    assert!(usage.ends_with(" tokens"), "{usage}");
    // The sandbox's network level is on the page.
    let network = b.text(".chip.net-allowlist").await;
    assert_eq!(network, "network allowlist");
    b.check_events_match(&h, &id).await;
    b.no_sideways_scroll("task view").await;
    b.screenshot("task-tool").await;
    // The end of the task, as the page shows it when it follows along.
    b.js("scrollTo(0, document.documentElement.scrollHeight);")
        .await;
    b.screenshot("task").await;

    // Back on the list, the task reads succeeded.
    let back = b.find("a.back").await;
    b.click(&back).await;
    let badge = b
        .text(&format!("li.task-item[data-id='{id}'] .badge"))
        .await;
    assert_eq!(badge, "succeeded");
    b.no_sideways_scroll("task list").await;
    b.screenshot("list").await;
    b.close().await;
}

at_both_sizes!(a_task_started_from_the_page_streams_and_finishes);

async fn a_follow_up_sent_from_the_page_runs_the_task_again(viewport: Viewport) {
    // The second run prints about 2 MB, which the page must cap, not choke on.
    let scenario = Scenario::new()
        .token_delay_ms(5)
        .text("First pass done.")
        .turn(Turn::tool("bash", json!({"command": "seq 1 300000"})))
        .text("Second pass done, as you asked.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Do the first pass").await;
    b.wait_status("succeeded").await;

    let field = b.field("Follow-up").await;
    field.send_keys("Now the second pass").await.unwrap();
    b.press("Send").await;
    // The follow-up appears, the task runs again, and it ends with the second answer.
    let again = "[...document.querySelectorAll('.k-user')].some(e => e.textContent.includes('Now the second pass')) \
        && document.querySelectorAll('.steps .s-succeeded').length === 2 \
        && document.querySelector('section.task').dataset.status === 'succeeded'";
    b.until("the second run", again).await;
    let texts = b.texts(".k-assistant").await;
    assert_eq!(
        texts,
        json!(["First pass done.", "Second pass done, as you asked."])
    );
    // The live output keeps its last 64 KiB (the server stops streaming at 256 KiB);
    // the result shows the end.
    let out = b.texts("li.k-tool pre.output").await;
    let (live, end) = (out[0].as_str().unwrap(), out[1].as_str().unwrap());
    assert!(
        live.len() <= 64 * 1024 && live.contains("live output stops here"),
        "{}",
        live.len()
    );
    assert!(end.trim_end().ends_with("\n299999\n300000"), "{end}");
    let note = b.texts("li.k-tool .tool-body > p").await;
    assert!(
        note[0]
            .as_str()
            .unwrap()
            .ends_with("earlier characters are not shown here.")
    );
    let left = field.prop("value").await.unwrap();
    assert_eq!(
        left.as_deref(),
        Some(""),
        "the box is cleared after sending"
    );
    assert_eq!(h.task(&id).await.status, TaskStatus::Succeeded);
    b.check_events_match(&h, &id).await;

    // Signing out ends the session: the sign-in form is back and the API refuses the page.
    b.press("Sign out").await;
    b.field("Token").await;
    let me = "const done = arguments[0]; fetch('/api/v1/me').then(r => done(r.status));";
    assert_eq!(b.c.execute_async(me, vec![]).await.unwrap(), json!(401));
    b.close().await;
}

at_both_sizes!(a_follow_up_sent_from_the_page_runs_the_task_again);

async fn a_running_task_is_cancelled_from_the_page(viewport: Viewport) {
    let sleep = json!({"command": "echo sleeping; sleep 600"});
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", sleep))
        .text("never reached");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Sleep for a long time").await;
    // The command is running: its first output line shows in the collapsed block.
    let running = "document.querySelector('li.k-tool .tail')?.textContent === 'sleeping'";
    b.until("the running command", running).await;
    assert_eq!(b.title().await, "running · Dockhand");

    b.press("Cancel").await;
    // A confirmation step comes first; nothing is cancelled yet.
    b.find("[data-confirm]:not([hidden])").await;
    assert_eq!(h.task(&id).await.status, TaskStatus::Running);
    b.press("Cancel task").await;
    b.wait_status("cancelled").await;
    assert_eq!(b.title().await, "cancelled · Dockhand");
    assert_eq!(h.wait_done(&id).await.status, TaskStatus::Cancelled);
    let cancel = b.find("[data-cancel]").await;
    assert!(
        !cancel.is_displayed().await.unwrap(),
        "nothing left to cancel"
    );
    b.check_events_match(&h, &id).await;
    b.close().await;
}

at_both_sizes!(a_running_task_is_cancelled_from_the_page);

/// Waits until the `round`th tool block's newest output line is `tick 2`.
async fn second_tick(b: &Browser, round: usize) {
    let expr = format!(
        "(() => {{ const t = document.querySelectorAll('li.k-tool .tail'); \
         return t.length === {round} && t[{round} - 1].textContent === 'tick 2'; }})()"
    );
    b.until(&format!("tick 2 of round {round}"), &expr).await;
}

async fn the_page_reconnects_and_shows_every_event_once(viewport: Viewport) {
    let ticks = json!({"command": "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done"});
    let scenario = Scenario::new()
        .token_delay_ms(20)
        .turn(Turn::text("Counting slowly.").tool_use("bash", ticks.clone()))
        .turn(Turn::text("One more round.").tool_use("bash", ticks.clone()))
        .turn(Turn::text("And a last one.").tool_use("bash", ticks))
        .text("All rounds are done, and every tick was printed in order.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Count three times").await;

    // Kill the socket mid-command in the first two rounds, after the second tick.
    for round in 1..=2 {
        second_tick(&b, round).await;
        let kill = "const s = window.dockhandSocket; window.killedSocket = s; s.close(); return s.readyState;";
        assert_eq!(b.js(kill).await, json!(2), "the socket was open");
        let fresh = "window.dockhandSocket && window.dockhandSocket !== window.killedSocket \
            && window.dockhandSocket.readyState === 1 && window.dockhandSocket.url";
        let url = b.until("a new socket", fresh).await;
        let url = url.as_str().unwrap();
        // It asks only for what the page has not seen, with a ticket, never a token.
        let after = url
            .split("after=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert!(after.parse::<u64>().unwrap() > 0, "{url}");
        assert!(url.contains("ticket=wst_") && !url.contains("dh_"), "{url}");
    }
    assert!(!h.task(&id).await.status.is_terminal(), "killed mid-task");

    // The network drops in the third round: the banner says so, the task ends
    // meanwhile, and the page catches up when the network is back.
    second_tick(&b, 3).await;
    b.js("window.offlineSocket = window.dockhandSocket;").await;
    b.network(false).await;
    let banner = "!document.getElementById('offline').hidden && document.getElementById('offline').textContent";
    let banner = b.until("the offline banner", banner).await;
    assert!(banner.as_str().unwrap().contains("offline"), "{banner}");
    assert_eq!(h.wait_done(&id).await.status, TaskStatus::Succeeded);
    b.network(true).await;
    // Back online, the page opens a fresh socket: the old one may be dead.
    let fresh = "document.getElementById('offline').hidden && window.dockhandSocket \
        && window.dockhandSocket !== window.offlineSocket && window.dockhandSocket.readyState === 1";
    b.until("a fresh socket", fresh).await;
    b.wait_status("succeeded").await;
    b.check_events_match(&h, &id).await;
    // Each tick shows once, in order, in each round.
    let want: String = (1..=6).map(|i| format!("tick {i}\n")).collect();
    let outputs = b.texts("li.k-tool pre.output").await;
    assert_eq!(outputs, json!([want, want, want]));
    b.close().await;
}

at_both_sizes!(the_page_reconnects_and_shows_every_event_once);

/// With GitHub configured, the page offers GitHub sign-in, and the new-task form
/// suggests the user's repositories.
#[tokio::test(flavor = "multi_thread")]
async fn github_sign_in_and_repository_suggestions() {
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["alice".into()],
        repos: vec!["acme/demo".into(), "alice/notes".into()],
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let url = gh.base_url();
    let h = Harness::start_with(Scenario::new(), |c| {
        c.github.client_id = "cid".into();
        c.github.client_secret = "csecret".into();
        c.github.web_url = url.clone();
        c.github.api_url = url;
        c.github.allowed_users = vec!["alice".into()];
    })
    .await;
    let info: Value = reqwest::get(format!("{}/auth/info", h.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info, json!({"github": true}));
    let b = browser(Viewport::Phone).await;
    b.c.goto(&h.base).await.unwrap();
    let link = b.wait_for(Locator::LinkText("Sign in with GitHub")).await;
    // The token form is one step away, not in the way.
    assert!(!b.field("Token").await.is_displayed().await.unwrap());
    b.click(&link).await;
    // GitHub (the fake) approves at once and sends the browser back, signed in.
    b.press("New task").await;
    assert_eq!(b.text("#who b").await, "alice");
    let options =
        "[...document.querySelectorAll('#repo-list option')].map(o => o.value).sort().join(' ')";
    let suggested = b.until("repository suggestions", options).await;
    assert_eq!(suggested, json!("acme/demo alice/notes"));
    let list = b.field("Repository").await.attr("list").await.unwrap();
    assert_eq!(list.as_deref(), Some("repo-list"));
    b.close().await;
}
