//! The web UI in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver with fantoccini. Each test starts
//! its own `chromedriver` on a free port and a coordinator with the fake model,
//! and runs at a phone (390×844) and a desktop (1280×800) viewport.
//!
//! Every wait is a bounded condition poll: a WebDriver wait for an element, or
//! [`until`], which re-evaluates a JavaScript expression.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use fantoccini::Client;
use fantoccini::ClientBuilder;
use fantoccini::Locator;
use fantoccini::elements::Element;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

#[derive(Clone, Copy, Debug)]
enum Viewport {
    Phone,
    Desktop,
}

impl Viewport {
    fn name(self) -> &'static str {
        match self {
            Viewport::Phone => "phone",
            Viewport::Desktop => "desktop",
        }
    }
}

/// `chromedriver`, killed with everything it started (Chromium) when dropped.
struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver leads its own process group; Chromium is in it too.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session. Fields drop in order: the session's client, then the driver.
struct Browser {
    c: Client,
    _driver: Driver,
    viewport: Viewport,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> (Driver, String) {
    let port = free_port();
    let profile = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(profile.path().join("chromedriver.log")).unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("chromedriver is missing: apt-get install chromium chromium-driver");
    let driver = Driver {
        child,
        _profile: profile,
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = reqwest::get(format!("{url}/status"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return (driver, url);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn browser(viewport: Viewport) -> Browser {
    let (driver, url) = start_driver().await;
    let profile = driver._profile.path().join("profile");
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut chrome = json!({"binary": "/usr/bin/chromium"});
    match viewport {
        // A phone: its viewport, pixel ratio and `<meta name=viewport>` handling.
        Viewport::Phone => {
            chrome["mobileEmulation"] = json!({"deviceMetrics": {
                "width": 390, "height": 844, "pixelRatio": 2.0, "mobile": true, "touch": true
            }});
        }
        Viewport::Desktop => args.push("--window-size=1280,800".to_owned()),
    }
    chrome["args"] = json!(args);
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), chrome);
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
    }
}

impl Browser {
    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Re-evaluates `expr` until it is truthy; returns its value.
    async fn until(&self, what: &str, expr: &str) -> Value {
        let started = Instant::now();
        let script = format!("return ({expr});");
        loop {
            let v = self.js(&script).await;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "timed out waiting for {what}; last value {v}; title {:?}",
                self.c.title().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn button(&self, name: &str) -> Element {
        let xpath = format!("//button[normalize-space()='{name}']");
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {name:?}: {e}"))
    }

    /// The control a `<label>` with this text names: the label must be real.
    async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()='{label}']");
        let label_el = self
            .c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no label {label:?}: {e}"));
        let id = label_el.attr("for").await.unwrap().expect("label for=");
        self.c.find(Locator::Id(&id)).await.unwrap()
    }

    /// Clicks like a person: the element is scrolled to the middle first, clear of the sticky dock.
    async fn click(&self, el: &Element) {
        self.c
            .execute(
                "arguments[0].scrollIntoView({block: 'center'});",
                vec![serde_json::to_value(el).unwrap()],
            )
            .await
            .unwrap();
        el.click().await.unwrap();
    }

    async fn sign_in(&self, h: &Harness) {
        self.c.goto(&h.base).await.unwrap();
        self.field("Token").await.send_keys(&h.token).await.unwrap();
        let b = self.button("Sign in").await;
        self.click(&b).await;
        self.button("New task").await;
        assert_eq!(self.c.title().await.unwrap(), "Tasks · Dockhand");
    }

    /// Fills in the new-task form; returns the task id from the view it opens.
    async fn start_task(&self, repo: &std::path::Path, prompt: &str) -> String {
        let b = self.button("New task").await;
        self.click(&b).await;
        self.field("Repository")
            .await
            .send_keys(repo.to_str().unwrap())
            .await
            .unwrap();
        self.field("Prompt").await.send_keys(prompt).await.unwrap();
        let b = self.button("Start task").await;
        self.click(&b).await;
        let hash = self
            .until(
                "the task view",
                "location.hash.startsWith('#/tasks/') && location.hash",
            )
            .await;
        hash.as_str()
            .unwrap()
            .trim_start_matches("#/tasks/")
            .to_owned()
    }

    async fn open_task(&self, h: &Harness, id: &str) {
        self.c
            .goto(&format!("{}/#/tasks/{id}", h.base))
            .await
            .unwrap();
        self.find("section.task[data-status]").await;
    }

    async fn wait_status(&self, status: &str) {
        self.find(&format!("section.task[data-status={status}]"))
            .await;
    }

    /// The `data-seq` of every rendered event, in page order.
    async fn rendered_seqs(&self) -> Vec<u64> {
        let v = self
            .js("return [...document.querySelectorAll('[data-seq]')].map(e => Number(e.dataset.seq));")
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// Waits until the page shows every event the API has, then checks that it
    /// shows each exactly once.
    async fn check_events_match(&self, h: &Harness, id: &str) {
        let api: Vec<u64> = h.events(id).await.iter().map(|e| e.seq).collect();
        let last = *api.last().unwrap();
        self.until(
            "every event rendered",
            &format!("document.querySelector('[data-seq=\"{last}\"]')"),
        )
        .await;
        let rendered = self.rendered_seqs().await;
        let mut sorted = rendered.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), rendered.len(), "duplicates: {rendered:?}");
        assert_eq!(sorted, api, "the page's events differ from the API's");
    }

    async fn no_sideways_scroll(&self, screen: &str) {
        let v = self
            .js("return [document.documentElement.scrollWidth, window.innerWidth];")
            .await;
        let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        if matches!(self.viewport, Viewport::Phone) {
            assert_eq!(inner, 390, "the phone viewport");
        }
        assert!(
            scroll <= inner,
            "the {screen} scrolls sideways at {}: scrollWidth {scroll} > {inner}",
            self.viewport.name()
        );
    }

    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(
            dir.join(format!("{name}-{}.png", self.viewport.name())),
            png,
        )
        .unwrap();
    }

    async fn close(self) {
        let _ = self.c.close().await;
    }
}

/// A long line with no break opportunity, to catch anything that would scroll sideways.
const LONG_WORD: &str = "supercalifragilisticexpialidocious_and_then_some_more_text_without_any_spaces_at_all_0123456789";

fn final_text() -> String {
    let words = "The check passed and the marker file is in place. I printed the answer to the \
                 question of life, which the shell computed as forty-two, and left the rest of \
                 the repository untouched. Here is a long identifier to show wrapping:";
    format!("{words} {LONG_WORD}{LONG_WORD}")
}

async fn watch_a_task(viewport: Viewport) {
    let scenario = Scenario::new()
        .token_delay_ms(40)
        .turn(Turn::text("Let me run the check.").tool_use(
            "bash",
            json!({"command": format!("echo ui-output-$((6*7)); echo {LONG_WORD}{LONG_WORD}; echo marker > done.txt")}),
        ))
        .text(final_text());
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("hello.txt", "hello\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    if matches!(viewport, Viewport::Phone) {
        b.screenshot("signed-in").await;
    }
    let id = b
        .start_task(&repo, &format!("Run the check and report {LONG_WORD}"))
        .await;

    // The final text streams in before the task ends: it shows in the live
    // block while no committed block holds it yet.
    let text = final_text();
    let streamed = b
        .until(
            "streamed text",
            "(() => { const s = document.querySelector('.live .streaming'); \
             const committed = [...document.querySelectorAll('.k-assistant')].some(e => e.textContent.startsWith('The check')); \
             return s && !committed && s.textContent.startsWith('The check') && s.textContent; })()",
        )
        .await;
    let streamed = streamed.as_str().unwrap();
    assert!(text.starts_with(streamed), "streamed {streamed:?}");
    let status = h.task(&id).await.status;
    assert!(
        !status.is_terminal(),
        "the text streamed only after the end"
    );

    b.wait_status("succeeded").await;
    assert_eq!(b.c.title().await.unwrap(), "succeeded · Dockhand");
    assert_eq!(h.task(&id).await.status, TaskStatus::Succeeded);
    // The committed text replaced the streaming block.
    b.until(
        "the committed text",
        "!document.querySelector('.streaming') && [...document.querySelectorAll('.k-assistant')].map(e => e.textContent).join('\\n')",
    )
    .await;
    let committed = b
        .js("return [...document.querySelectorAll('.k-assistant')].map(e => e.textContent);")
        .await;
    assert_eq!(committed, json!(["Let me run the check.", text]));

    // The tool call opens to show its command, its output and its exit code.
    let summary = b.find("li.k-tool details > summary").await;
    assert!(summary.text().await.unwrap().contains("echo ui-output"));
    b.click(&summary).await;
    let output = b.find("li.k-tool pre.output").await;
    assert!(output.is_displayed().await.unwrap());
    assert!(output.text().await.unwrap().contains("ui-output-42"));
    let state = b.find("li.k-tool .tool-state").await.text().await.unwrap();
    assert!(state.starts_with("exit 0"), "{state}");
    let result = b.find("li.k-tool .result").await.text().await.unwrap();
    assert!(result.starts_with("exit 0"), "{result}");
    // The diff stat and the token usage are shown.
    let diff = b.find("li.k-diff").await.text().await.unwrap();
    assert!(diff.contains("1 file changed"), "{diff}");
    let usage = b.find("[data-usage]").await.text().await.unwrap();
    assert!(usage.ends_with("tokens"), "{usage}");
    b.check_events_match(&h, &id).await;
    b.no_sideways_scroll("task view").await;
    b.screenshot("task").await;

    // Back on the list, the task reads succeeded.
    let back = b.find("a.back").await;
    b.click(&back).await;
    let item = b
        .find(&format!("li.task-item[data-id='{id}'] .badge"))
        .await;
    assert_eq!(item.text().await.unwrap(), "succeeded");
    b.no_sideways_scroll("task list").await;
    b.screenshot("list").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_started_from_the_page_streams_and_finishes_phone() {
    watch_a_task(Viewport::Phone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_started_from_the_page_streams_and_finishes_desktop() {
    watch_a_task(Viewport::Desktop).await;
}

async fn follow_up(viewport: Viewport) {
    let scenario = Scenario::new()
        .token_delay_ms(5)
        .text("First pass done.")
        .text("Second pass done, as you asked.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Do the first pass").await;
    b.wait_status("succeeded").await;

    let box_ = b.field("Follow-up").await;
    box_.send_keys("Now the second pass").await.unwrap();
    let send = b.button("Send").await;
    b.click(&send).await;
    // The follow-up appears, the task runs again, and it ends with the second answer.
    b.until(
        "the second run",
        "[...document.querySelectorAll('.k-user')].some(e => e.textContent.includes('Now the second pass')) \
         && [...document.querySelectorAll('.k-status .s-succeeded')].length === 2 \
         && document.querySelector('section.task').dataset.status === 'succeeded'",
    )
    .await;
    let texts = b
        .js("return [...document.querySelectorAll('.k-assistant')].map(e => e.textContent);")
        .await;
    assert_eq!(
        texts,
        json!(["First pass done.", "Second pass done, as you asked."])
    );
    assert_eq!(
        b.field("Follow-up").await.prop("value").await.unwrap(),
        Some(String::new()),
        "the box is cleared after sending"
    );
    assert_eq!(h.task(&id).await.status, TaskStatus::Succeeded);
    b.check_events_match(&h, &id).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_sent_from_the_page_runs_the_task_again_phone() {
    follow_up(Viewport::Phone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_sent_from_the_page_runs_the_task_again_desktop() {
    follow_up(Viewport::Desktop).await;
}

async fn cancel(viewport: Viewport) {
    let scenario = Scenario::new()
        .turn(Turn::tool(
            "bash",
            json!({"command": "echo sleeping; sleep 600"}),
        ))
        .text("never reached");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Sleep for a long time").await;
    // The command is running: its first output line shows in the collapsed block.
    b.until(
        "the running command",
        "document.querySelector('li.k-tool .tail')?.textContent === 'sleeping'",
    )
    .await;
    assert_eq!(b.c.title().await.unwrap(), "running · Dockhand");

    let cancel = b.button("Cancel").await;
    b.click(&cancel).await;
    // A confirmation step comes first; nothing is cancelled yet.
    let yes = b.button("Cancel task").await;
    assert_eq!(h.task(&id).await.status, TaskStatus::Running);
    b.click(&yes).await;
    b.wait_status("cancelled").await;
    assert_eq!(b.c.title().await.unwrap(), "cancelled · Dockhand");
    let done = h.wait_done(&id).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    assert!(
        !b.find("[data-cancel]").await.is_displayed().await.unwrap(),
        "a finished task offers no Cancel"
    );
    b.check_events_match(&h, &id).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_task_is_cancelled_from_the_page_phone() {
    cancel(Viewport::Phone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_task_is_cancelled_from_the_page_desktop() {
    cancel(Viewport::Desktop).await;
}

async fn reconnect(viewport: Viewport) {
    let ticks = "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done";
    let scenario = Scenario::new()
        .token_delay_ms(20)
        .turn(
            Turn::text("Counting slowly, then talking.")
                .tool_use("bash", json!({"command": ticks})),
        )
        .turn(Turn::text("One more round.").tool_use("bash", json!({"command": ticks})))
        .text("Both rounds are done, and every tick was printed in order.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("a.txt", "a\n")]);
    let b = browser(viewport).await;
    b.sign_in(&h).await;
    let id = b.start_task(&repo, "Count twice").await;

    // Kill the socket mid-command, twice: in each round, after the second tick.
    for round in 1..=2 {
        b.until(
            &format!("tick 2 of round {round}"),
            &format!(
                "(() => {{ const t = document.querySelectorAll('li.k-tool .tail'); \
                 return t.length === {round} && t[{round} - 1].textContent === 'tick 2' \
                 && window.dockhandSocket && window.dockhandSocket.readyState === 1; }})()"
            ),
        )
        .await;
        b.js("window.killedSocket = window.dockhandSocket; window.dockhandSocket.close();")
            .await;
        b.until(
            "a new socket",
            "window.dockhandSocket && window.dockhandSocket !== window.killedSocket \
             && window.dockhandSocket.readyState === 1",
        )
        .await;
    }
    assert!(
        !h.task(&id).await.status.is_terminal(),
        "the sockets were killed mid-task"
    );
    b.wait_status("succeeded").await;
    b.check_events_match(&h, &id).await;
    // Each tick shows once, in order, in each round.
    let outputs = b
        .js("return [...document.querySelectorAll('li.k-tool pre.output')].map(e => e.textContent);")
        .await;
    let want: String = (1..=6).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(outputs, json!([want, want]));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_reconnects_and_shows_every_event_once_phone() {
    reconnect(Viewport::Phone).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_reconnects_and_shows_every_event_once_desktop() {
    reconnect(Viewport::Desktop).await;
}

/// The page and its files come from the binary, with their types and a strict policy.
#[tokio::test(flavor = "multi_thread")]
async fn the_ui_is_served_from_the_binary_with_a_strict_policy() {
    let h = Harness::start(Scenario::new()).await;
    let get = |path: &str| reqwest::get(format!("{}{path}", h.base));
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(html.contains("rel=\"manifest\" href=\"/manifest.webmanifest\""));
    assert!(
        !html.contains("<script>") && !html.contains("style=\""),
        "no inline script or style"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/task.js", "text/javascript"),
        ("/ui/util.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        let etag = resp.headers()["etag"].clone();
        let again = h
            .http
            .get(format!("{}{path}", h.base))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let manifest: Value = get("/manifest.webmanifest")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["start_url"], "/");
    assert_eq!(manifest["icons"][0]["src"], "/ui/icon.svg");
    let info: Value = get("/auth/info").await.unwrap().json().await.unwrap();
    assert_eq!(info, json!({"github": false}));
}
