//! Who may use Dockhand, checked at every request and every GitHub trigger: a
//! user removed from the allowlist (here, from an allowed org) is refused on
//! every credential at once; webhook triggers need write access to the
//! repository; a delivery replayed under a new id does nothing.

use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use dockhand_testkit::github::send_webhook;
use serde_json::Value;
use serde_json::json;

use crate::accounts::browser;
use crate::accounts::device_tokens;
use crate::accounts::personal_token;
use crate::common::*;
use crate::pull_requests::wait_for;

const SECRET: &str = "access-webhook-secret";

struct Org {
    h: Harness,
    gh: FakeGitHub,
    _repos: tempfile::TempDir,
}

/// bob (first user, so the device flow signs him in) may use Dockhand only as a
/// member of acme; alice is listed by name; carol may only read repositories.
async fn org_setup(scenario: Scenario) -> Org {
    let repos = tempfile::tempdir().unwrap();
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["bob".into(), "alice".into(), "carol".into()],
        orgs: vec![("acme".into(), vec!["bob".into()])],
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        device_interval: 0,
        slow_down_increment: 0,
        repos_dir: Some(repos.path().to_path_buf()),
        read_only: vec!["carol".into()],
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    gh.create_repo("acme", "app", &[("README.md", "hello\n")], "main")
        .unwrap();
    let url = gh.base_url();
    let h = Harness::start_with(scenario, |c| {
        c.github.client_id = "cid".into();
        c.github.client_secret = "csecret".into();
        c.github.web_url = url.clone();
        c.github.api_url = url;
        c.github.allowed_users = vec!["alice".into(), "carol".into()];
        c.github.allowed_orgs = vec!["acme".into()];
        c.github.webhook_secret = SECRET.into();
        c.github.membership_ttl_secs = 0;
        c.auth.operators = vec!["alice".into()];
    })
    .await;
    Org {
        h,
        gh,
        _repos: repos,
    }
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

async fn hook(o: &Org, event: &str, delivery: &str, payload: &Value) -> u16 {
    let url = format!("{}/webhooks/github", o.h.base);
    send_webhook(&url, SECRET, event, delivery, payload)
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn task_count(o: &Org) -> usize {
    let (_, v) =
        o.h.request(reqwest::Method::GET, "/api/v1/tasks", None)
            .await;
    v["tasks"].as_array().unwrap().len()
}

async fn comments(o: &Org) -> String {
    reqwest::get(format!("{}/_fake/state", o.gh.base_url()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["comments"]
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_leaves_the_allowed_org_is_refused_on_every_credential() {
    let o = org_setup(Scenario::new().text("Done.")).await;
    // alice signs in too, so replies to people without a usable token can be posted.
    let _ = browser(&o.h, "alice").await;
    let tokens = device_tokens(&o.h).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (cookie_client, api_token) = personal_token(&o.h, "bob").await;
    let me = format!("{}/api/v1/me", o.h.base);
    let http = &o.h.http;
    assert_eq!(status_of(http.get(&me).bearer_auth(&access)).await, 200);
    assert_eq!(status_of(http.get(&me).bearer_auth(&api_token)).await, 200);
    assert_eq!(status_of(cookie_client.get(&me)).await, 200);

    assert!(o.gh.remove_org_member("acme", "bob"));
    assert_eq!(status_of(http.get(&me).bearer_auth(&access)).await, 401);
    assert_eq!(status_of(http.get(&me).bearer_auth(&api_token)).await, 401);
    assert_eq!(status_of(cookie_client.get(&me)).await, 401);
    let refreshed = http
        .post(format!("{}/auth/refresh", o.h.base))
        .json(&json!({"refresh_token": refresh}));
    assert_eq!(status_of(refreshed).await, 401);
    let body = http
        .get(&me)
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("no longer allowed"), "{body}");

    // A trigger from bob now starts nothing, and the reply says why.
    let issue = o.gh.create_issue("acme", "app", "Bug", "It breaks.");
    let payload =
        o.gh.issue_comment_payload("acme/app", issue, "/dockhand fix", "bob", "MEMBER", false);
    assert_eq!(hook(&o, "issue_comment", "gone-1", &payload).await, 202);
    wait_for("the refusal reply", async || {
        comments(&o).await.contains("no longer allowed")
    })
    .await;
    assert_eq!(task_count(&o).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_need_write_access_and_replays_do_nothing() {
    let o = org_setup(Scenario::new().text("Looked at it.")).await;
    let _ = browser(&o.h, "alice").await;
    let _ = browser(&o.h, "carol").await;
    let issue = o.gh.create_issue("acme", "app", "Docs", "Write them.");

    // carol is a Dockhand user, but may only read acme/app.
    let carol = o.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand docs",
        "carol",
        "CONTRIBUTOR",
        false,
    );
    assert_eq!(hook(&o, "issue_comment", "w-1", &carol).await, 202);
    wait_for("the reply to carol", async || {
        comments(&o)
            .await
            .contains("@carol, Dockhand runs only for people with write access")
    })
    .await;
    // A stranger is told too, and gets nothing.
    let stranger = o.gh.issue_comment_payload(
        "acme/app",
        issue,
        "/dockhand hi",
        "nobody-here",
        "NONE",
        false,
    );
    assert_eq!(hook(&o, "issue_comment", "w-2", &stranger).await, 202);
    wait_for("the reply to the stranger", async || {
        comments(&o)
            .await
            .contains("@nobody-here, Dockhand runs tasks only for its own users")
    })
    .await;
    assert_eq!(task_count(&o).await, 0);

    // alice may push: one task. The same signed body under a new id is a replay.
    let alice =
        o.gh.issue_comment_payload("acme/app", issue, "/dockhand docs", "alice", "OWNER", false);
    assert_eq!(hook(&o, "issue_comment", "w-3", &alice).await, 202);
    assert_eq!(hook(&o, "issue_comment", "w-4", &alice).await, 200);
    wait_for("alice's task", async || task_count(&o).await == 1).await;
    let (_, list) =
        o.h.request(reqwest::Method::GET, "/api/v1/tasks", None)
            .await;
    let id = list["tasks"][0]["id"].as_str().unwrap().to_owned();
    o.h.wait_done(&id).await;
    assert_eq!(task_count(&o).await, 1, "the replay started nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_state_and_tickets_are_capped_per_client_and_per_user() {
    let o = org_setup(Scenario::new()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |ip: &'static str| {
        http.get(format!("{}/auth/github/login", o.h.base))
            .header("x-forwarded-for", ip)
    };
    // The harness does not trust X-Forwarded-For: every request is 127.0.0.1.
    for _ in 0..10 {
        assert_eq!(status_of(login("10.0.0.1")).await, 303);
    }
    let refused = login("10.0.0.2").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Tickets: 20 outstanding per user.
    let tokens = device_tokens(&o.h).await;
    let access = tokens["access_token"].as_str().unwrap();
    let ticket = || {
        o.h.http
            .post(format!("{}/api/v1/ws-ticket", o.h.base))
            .bearer_auth(access)
    };
    for _ in 0..20 {
        assert_eq!(status_of(ticket()).await, 200);
    }
    assert_eq!(status_of(ticket()).await, 429);
    // Another user still gets theirs.
    let (admin_status, _) =
        o.h.request(reqwest::Method::POST, "/api/v1/ws-ticket", None)
            .await;
    assert_eq!(admin_status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_taken_off_allowed_users_is_refused_after_a_restart() {
    let mut o = org_setup(Scenario::new()).await;
    let (_, token) = personal_token(&o.h, "carol").await;
    let me = |h: &Harness| {
        h.http
            .get(format!("{}/api/v1/me", h.base))
            .bearer_auth(&token)
    };
    assert_eq!(status_of(me(&o.h)).await, 200);
    o.h.restart(|c| c.github.allowed_users = vec!["alice".into()])
        .await;
    assert_eq!(status_of(me(&o.h)).await, 401);
    let (status, _) = o.h.request(reqwest::Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200, "the admin token is unaffected");
}
