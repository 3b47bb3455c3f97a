//! The fake GitHub on the wire, driven with plain HTTP and real git: the web
//! flow here; the device flow, the REST routes, git smart HTTP, pulls and
//! comments, and webhooks in `github/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dockhand_testkit::FakeError;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;
use reqwest::Url;
use reqwest::redirect::Policy;
use serde_json::Value;
use serde_json::json;

#[path = "github/device.rs"]
mod device;
#[path = "github/git.rs"]
mod git;
#[path = "github/pulls.rs"]
mod pulls;
#[path = "github/rest.rs"]
mod rest;
#[path = "github/webhooks.rs"]
mod webhooks;

const CALLBACK: &str = "http://127.0.0.1:9/auth/callback";

fn options(users: &[&str]) -> FakeGitHubOptions {
    FakeGitHubOptions {
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        ..FakeGitHubOptions::default()
    }
}

/// A client like the coordinator's: a User-Agent, redirects not followed.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("dockhand-test")
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `GET /login/oauth/authorize` with these parameters.
async fn authorize(fake: &FakeGitHub, params: &[(&str, &str)]) -> reqwest::Response {
    let url = Url::parse_with_params(
        &format!("{}/login/oauth/authorize", fake.base_url()),
        params,
    )
    .unwrap();
    client().get(url).send().await.unwrap()
}

/// The 302's target, checked to be under `prefix`, and its query.
fn redirect_params(response: &reqwest::Response, prefix: &str) -> Vec<(String, String)> {
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(prefix), "{location}");
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `POST /login/oauth/access_token` with a form, asking for JSON.
async fn token_json(fake: &FakeGitHub, form: &[(&str, &str)]) -> Value {
    let response = client()
        .post(format!("{}/login/oauth/access_token", fake.base_url()))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap();
    // OAuth errors are 200s too.
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The web flow end to end as `login` (the default user when `None`).
async fn sign_in(fake: &FakeGitHub, login: Option<&str>, scope: &str) -> String {
    let mut params = vec![
        ("client_id", "any"),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("state", "s"),
    ];
    params.extend(login.map(|l| ("login", l)));
    let back = redirect_params(&authorize(fake, &params).await, CALLBACK);
    let code = param(&back, "code").unwrap();
    let reply = token_json(fake, &[("client_id", "any"), ("code", code)]).await;
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn api(fake: &FakeGitHub, token: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_web_flow_signs_in_and_codes_are_single_use() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        ..options(&["alice", "bob"])
    })
    .await
    .unwrap();
    let callback = format!("{CALLBACK}?next=%2Fhome");
    let response = authorize(
        &fake,
        &[
            ("client_id", "cid"),
            ("redirect_uri", &callback),
            ("scope", "read:user read:org"),
            ("state", "st8-xyz"),
        ],
    )
    .await;
    let back = redirect_params(&response, &format!("{callback}&code="));
    assert_eq!(param(&back, "next"), Some("/home"));
    assert_eq!(param(&back, "state"), Some("st8-xyz"));
    let code = param(&back, "code").unwrap();

    let exchange = [
        ("client_id", "cid"),
        ("client_secret", "csecret"),
        ("code", code),
        ("redirect_uri", callback.as_str()),
    ];
    let reply = token_json(&fake, &exchange).await;
    let token = reply["access_token"].as_str().unwrap();
    assert!(
        token.starts_with("gho_fake_") && token.len() >= 9 + 24,
        "{token}"
    );
    assert!(token[9..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        reply,
        json!({"access_token": token, "token_type": "bearer", "scope": "read:user,read:org"})
    );
    assert_eq!(fake.issued_tokens(), vec![token.to_owned()]);

    let response = api(&fake, token, "/user").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-oauth-scopes"], "read:user, read:org");
    assert!(!headers["x-github-request-id"].is_empty());
    assert_eq!(headers["x-ratelimit-limit"], "5000");
    assert_eq!(headers["x-ratelimit-remaining"], "4999");
    assert!(headers.contains_key("x-ratelimit-reset"));
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["login"], "alice");
    assert_eq!(user["id"], 1001);
    assert_eq!(user["type"], "User");
    assert_eq!(user["email"], Value::Null);
    for field in [
        "node_id",
        "avatar_url",
        "html_url",
        "created_at",
        "updated_at",
    ] {
        assert!(user[field].is_string(), "{field}: {user}");
    }

    // The code is spent.
    let again = token_json(&fake, &exchange).await;
    assert_eq!(again["error"], "bad_verification_code");
    assert_eq!(
        again["error_description"],
        "The code passed is incorrect or expired."
    );
    assert!(again["error_uri"].is_string());
    assert_eq!(fake.issued_tokens().len(), 1);

    // Requests are recorded whole, secrets included, header names lowercased.
    let requests = fake.requests();
    let exchange_request = requests
        .iter()
        .find(|r| r.path == "/login/oauth/access_token")
        .unwrap();
    assert_eq!(exchange_request.method, "POST");
    assert!(exchange_request.body.contains("client_secret=csecret"));
    assert_eq!(exchange_request.header("accept"), Some("application/json"));
    let user_request = requests.iter().find(|r| r.path == "/user").unwrap();
    assert_eq!(
        user_request.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    let authorize_request = &requests[0];
    assert!(authorize_request.query.contains("state=st8-xyz"));
}

#[tokio::test]
async fn client_credentials_and_redirect_uri_are_checked() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        client_id: Some("cid".into()),
        client_secret: Some("csecret".into()),
        ..options(&["alice"])
    })
    .await
    .unwrap();
    let authorize_params = [("client_id", "cid"), ("redirect_uri", CALLBACK)];
    let back = redirect_params(&authorize(&fake, &authorize_params).await, CALLBACK);
    let code = param(&back, "code").unwrap();

    let reply = token_json(
        &fake,
        &[
            ("client_id", "cid"),
            ("client_secret", "wrong"),
            ("code", code),
        ],
    )
    .await;
    assert_eq!(reply["error"], "incorrect_client_credentials");
    let reply = token_json(&fake, &[("client_id", "cid"), ("code", code)]).await;
    assert_eq!(reply["error"], "incorrect_client_credentials");
    let reply = token_json(
        &fake,
        &[
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ],
    )
    .await;
    assert_eq!(reply["error"], "redirect_uri_mismatch");
    // Refusals do not spend the code; omitting redirect_uri is allowed, and
    // GitHub also takes a JSON body.
    let reply: Value = client()
        .post(format!("{}/login/oauth/access_token", fake.base_url()))
        .header("accept", "application/json")
        .json(&json!({"client_id": "cid", "client_secret": "csecret", "code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reply["access_token"].is_string(), "{reply}");
    assert_eq!(reply["scope"], "");

    // An unknown app gets an error page, not a redirect.
    let response = authorize(&fake, &[("client_id", "other"), ("redirect_uri", CALLBACK)]).await;
    assert_eq!(response.status(), 404);
    let response = authorize(&fake, &[("client_id", "cid")]).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn login_picks_the_user_and_an_unknown_login_is_denied() {
    let fake = FakeGitHub::start(options(&["alice", "bob"])).await.unwrap();
    let token = sign_in(&fake, Some("bob"), "read:user").await;
    let user: Value = api(&fake, &token, "/user").await.json().await.unwrap();
    assert_eq!(
        (user["login"].as_str(), user["id"].as_u64()),
        (Some("bob"), Some(1002))
    );

    let response = authorize(
        &fake,
        &[
            ("client_id", "x"),
            ("redirect_uri", CALLBACK),
            ("state", "s1"),
            ("login", "mallory"),
        ],
    )
    .await;
    let back = redirect_params(&response, CALLBACK);
    assert_eq!(param(&back, "error"), Some("access_denied"));
    assert!(param(&back, "error_description").is_some());
    assert_eq!(param(&back, "state"), Some("s1"));
    assert_eq!(param(&back, "code"), None);
}

#[tokio::test]
async fn without_accept_json_replies_are_form_encoded() {
    let fake = FakeGitHub::start(options(&["alice"])).await.unwrap();
    let params = [
        ("client_id", "x"),
        ("redirect_uri", CALLBACK),
        ("scope", "repo gist"),
    ];
    let back = redirect_params(&authorize(&fake, &params).await, CALLBACK);
    let code = param(&back, "code").unwrap();
    let post = |form: Vec<(&'static str, String)>| {
        client()
            .post(format!("{}/login/oauth/access_token", fake.base_url()))
            .form(&form)
            .send()
    };
    let response = post(vec![("code", code.to_owned())]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let text = response.text().await.unwrap();
    let token = &fake.issued_tokens()[0];
    assert_eq!(
        text,
        format!("access_token={token}&token_type=bearer&scope=repo%2Cgist")
    );

    let response = post(vec![("code", code.to_owned())]).await.unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with(
            "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired."
        ),
        "{text}"
    );
}

#[tokio::test]
async fn bad_options_are_refused() {
    let refused = |options| async move {
        match FakeGitHub::start(options).await {
            Err(FakeError::Scenario(message)) => message,
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("started"),
        }
    };
    assert!(refused(options(&[])).await.contains("at least one user"));
    let message = refused(FakeGitHubOptions {
        orgs: vec![("acme".into(), vec!["ghost".into()])],
        ..options(&["alice"])
    })
    .await;
    assert!(message.contains("ghost"), "{message}");
    let message = refused(FakeGitHubOptions {
        repos: vec!["noslash".into()],
        ..options(&["alice"])
    })
    .await;
    assert!(message.contains("owner/name"), "{message}");
}
