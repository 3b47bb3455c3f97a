//! The web UI in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver with fantoccini. Each test starts
//! its own `chromedriver` on a free port and a coordinator with the fake model,
//! and runs at a phone (390×844) and a desktop (1280×800) viewport.
//!
//! Every wait is a bounded condition poll: a WebDriver wait for an element, or
//! `Browser::until`, which re-evaluates a JavaScript expression.

use dockhand_protocol::TaskStatus;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use fantoccini::Locator;
use serde_json::Value;
use serde_json::json;

use crate::common::*;
use crate::ui_driver::*;

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
