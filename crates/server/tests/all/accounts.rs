//! Sign-in, sessions, tokens, isolation and limits, against the fake GitHub.

use dockhand_server::Config;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use dockhand_testkit::Scenario;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

pub(crate) async fn github_harness(
    scenario: Scenario,
    tweak: impl FnOnce(&mut Config),
) -> (Harness, FakeGitHub) {
    let gh = FakeGitHub::start(FakeGitHubOptions {
        users: vec!["alice".into(), "bob".into(), "mallory".into()],
        orgs: vec![("acme".into(), vec!["bob".into()])],
        repos: vec!["acme/demo".into()],
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        device_interval: 0,
        slow_down_increment: 1,
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let url = gh.base_url();
    let h = Harness::start_with(scenario, |c| {
        c.github.client_id = "cid".into();
        c.github.client_secret = "csecret".into();
        c.github.web_url = url.clone();
        c.github.api_url = url;
        c.github.allowed_users = vec!["alice".into()];
        c.github.allowed_orgs = vec!["acme".into()];
        c.allow_local_repos = Some(true);
        tweak(c);
    })
    .await;
    (h, gh)
}

/// A browser (cookies, redirects followed, our Origin on every request) signed in as `login`.
pub(crate) async fn browser(h: &Harness, login: &str) -> (reqwest::Client, reqwest::Response) {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("origin", h.base.parse().unwrap());
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap();
    let resp = client
        .get(format!("{}/auth/github/login?login={login}", h.base))
        .send()
        .await
        .unwrap();
    (client, resp)
}

/// A browser signed in as `login`, and a personal API token it made.
pub(crate) async fn personal_token(h: &Harness, login: &str) -> (reqwest::Client, String) {
    let (client, resp) = browser(h, login).await;
    assert!(resp.status().is_success(), "{login}: {}", resp.status());
    let created: Value = client
        .post(format!("{}/api/v1/tokens", h.base))
        .json(&json!({"name": "test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    (client, token)
}

/// Runs the device flow to its end (the fake approves as its first user):
/// its start and every poll.
pub(crate) async fn device_flow(h: &Harness) -> (Value, Vec<Value>) {
    let http = reqwest::Client::new();
    let start: Value = http
        .post(format!("{}/auth/device/start", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut polls = Vec::new();
    loop {
        let poll: Value = http
            .post(format!("{}/auth/device/poll", h.base))
            .json(&json!({"handle": start["handle"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = poll["status"] == "ok";
        polls.push(poll);
        if done {
            return (start, polls);
        }
        assert!(polls.len() < 5, "{polls:?}");
    }
}

/// The tokens of a device-flow sign-in.
pub(crate) async fn device_tokens(h: &Harness) -> Value {
    let (_, polls) = device_flow(h).await;
    polls.last().unwrap()["tokens"].clone()
}

/// Signs in through the device flow, checking each step.
pub(crate) async fn device_sign_in(h: &Harness) -> Value {
    let (start, mut polls) = device_flow(h).await;
    assert!(
        start["user_code"].as_str().unwrap().contains('-'),
        "{start}"
    );
    let seen: Vec<&str> = polls
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["pending", "slow_down", "ok"]);
    assert_eq!(
        polls[1]["interval"], 1,
        "slow_down carries the new interval"
    );
    polls.pop().unwrap()
}

pub(crate) async fn get(h: &Harness, bearer: &str, path: &str) -> (u16, Value) {
    let resp = h
        .http
        .get(format!("{}{path}", h.base))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn count_users(h: &Harness, login: &str) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        h.data_dir().join("dockhand.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM users WHERE login = ?1",
        [login],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_flow_signs_in_allowed_users_and_checks_state() {
    let (h, gh) = github_harness(Scenario::new(), |_| {}).await;
    // alice is allowed by name; bob through the acme organisation.
    for login in ["alice", "bob"] {
        let (client, resp) = browser(&h, login).await;
        assert_eq!(resp.status(), 200);
        // The callback lands the browser on the web UI.
        assert_eq!(resp.url().path(), "/");
        let me: Value = client
            .get(format!("{}/api/v1/me", h.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["login"], login);
        assert_eq!(me["github"], true);
    }
    // The authorize URL carried the login hint, the scopes and a state.
    let authorize = gh
        .requests()
        .into_iter()
        .find(|r| r.path == "/login/oauth/authorize")
        .unwrap();
    assert!(
        authorize.query.contains("login=alice") && authorize.query.contains("state="),
        "{}",
        authorize.query
    );
    assert!(
        authorize.query.contains("read%3Aorg"),
        "{}",
        authorize.query
    );

    // Missing, forged, or foreign state is refused.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for query in ["code=x", "code=x&state=forged"] {
        let resp = plain
            .get(format!("{}/auth/github/callback?{query}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
    }
    // A state issued to another browser does not work without that browser's cookie.
    let login = plain
        .get(format!("{}/auth/github/login", h.base))
        .send()
        .await
        .unwrap();
    let to_github = login.headers()["location"].to_str().unwrap().to_owned();
    let back = plain.get(&to_github).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let stolen = plain.get(&callback).send().await.unwrap();
    assert_eq!(stolen.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_outside_the_allowlist_are_refused_and_not_created() {
    let (h, _gh) = github_harness(Scenario::new(), |_| {}).await;
    let (_, resp) = browser(&h, "mallory").await;
    assert_eq!(resp.status(), 403);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("mallory is not allowed") && page.contains("allowed_users"),
        "{page}"
    );
    assert_eq!(count_users(&h, "mallory"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_device_flow_gives_the_cli_tokens_that_rotate_and_revoke() {
    let (h, gh) = github_harness(Scenario::new(), |_| {}).await;
    let poll = device_sign_in(&h).await;
    assert_eq!(poll["login"], "alice");
    assert_eq!(gh.device_polls().len(), 3);
    let access = poll["tokens"]["access_token"].as_str().unwrap().to_owned();
    let refresh = poll["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&h, &access, "/api/v1/me").await.1["login"], "alice");

    // Tampered and expired access tokens are refused.
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(get(&h, &tampered, "/api/v1/me").await.0, 401);
    let keys = dockhand_server::secrets::Keys::load(&h.data_dir(), &Default::default()).unwrap();
    let claims: Value = {
        use base64::Engine;
        let body = access.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    };
    let expired = keys.sign_access(&dockhand_server::secrets::AccessClaims {
        sub: claims["sub"].as_i64().unwrap(),
        sid: claims["sid"].as_str().unwrap().to_owned(),
        iat: 1,
        exp: 2,
    });
    let (status, body) = get(&h, &expired, "/api/v1/me").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // A refresh token works once; its reuse revokes the whole session.
    let http = reqwest::Client::new();
    let refresh_with = |rt: String| {
        http.post(format!("{}/auth/refresh", h.base))
            .json(&json!({"refresh_token": rt}))
            .send()
    };
    let rotated: Value = refresh_with(refresh.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&h, &new_access, "/api/v1/me").await.0, 200);
    let reuse = refresh_with(refresh).await.unwrap();
    assert_eq!(reuse.status(), 401);
    assert_eq!(
        get(&h, &new_access, "/api/v1/me").await.0,
        401,
        "reuse revoked the session"
    );
    let again = refresh_with(rotated["refresh_token"].as_str().unwrap().to_owned())
        .await
        .unwrap();
    assert_eq!(again.status(), 401);

    // Signing out revokes the session.
    let fresh = device_sign_in(&h).await;
    let access = fresh["tokens"]["access_token"].as_str().unwrap().to_owned();
    let out = http
        .post(format!("{}/auth/logout", h.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(get(&h, &access, "/api/v1/me").await.0, 401);
    // The GitHub token is stored encrypted, never in plaintext.
    let token = gh.issued_tokens().last().unwrap().clone();
    let db = std::fs::read(h.data_dir().join("dockhand.db")).unwrap();
    let wal = std::fs::read(h.data_dir().join("dockhand.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_tokens_are_shown_once_listed_and_revoked() {
    let (h, _gh) = github_harness(Scenario::new().text("Done."), |_| {}).await;
    let (alice, _) = browser(&h, "alice").await;
    let created: Value = alice
        .post(format!("{}/api/v1/tokens", h.base))
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("dh_"));
    assert_eq!(get(&h, &token, "/api/v1/me").await.1["login"], "alice");
    // The last use is recorded without holding up the request; wait for the commit.
    h.coord().services().store.flush().await.unwrap();
    let list: Value = alice
        .get(format!("{}/api/v1/tokens", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["tokens"][0]["name"], "laptop");
    assert!(!list.to_string().contains(&token), "never shown again");
    assert!(list["tokens"][0]["last_used_at"].is_string());
    let id = created["id"].as_i64().unwrap();
    let del = alice
        .delete(format!("{}/api/v1/tokens/{id}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(get(&h, &token, "/api/v1/me").await.0, 401);
    // A browser opens the events WebSocket with a single-use ticket.
    let repo = h.repo(&[("README", "r\n")]);
    let task: Value = alice
        .post(format!("{}/api/v1/tasks", h.base))
        .json(&json!({"repo": repo, "prompt": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket: Value = alice
        .post(format!("{}/api/v1/ws-ticket", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws_url = format!(
        "{}/api/v1/tasks/{}/events?after=0&ticket={}",
        h.base.replacen("http", "ws", 1),
        task["id"].as_str().unwrap(),
        ticket["ticket"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.clone())
        .await
        .unwrap();
    assert!(next_msg(&mut ws).await.is_some());
    let reuse = tokio_tungstenite::connect_async(ws_url)
        .await
        .unwrap_err()
        .to_string();
    assert!(reuse.contains("401"), "a ticket works once: {reuse}");
    // A cookie-signed state change from another site is refused.
    let (cross, _) = browser(&h, "alice").await;
    let resp = cross
        .post(format!("{}/api/v1/tokens", h.base))
        .header("origin", "https://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}
