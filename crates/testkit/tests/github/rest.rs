//! The REST routes, their checks, and the binary.

use std::io::BufRead;
use std::io::BufReader;
use std::process::Command;
use std::process::Stdio;

use super::*;

#[tokio::test]
async fn org_membership_needs_read_org_for_the_list() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![
            ("acme".into(), vec!["alice".into()]),
            ("other".into(), vec!["bob".into()]),
        ],
        ..options(&["alice", "bob"])
    })
    .await
    .unwrap();
    let with_scope = sign_in(&fake, None, "read:user read:org").await;
    let without = sign_in(&fake, None, "read:user").await;

    let orgs: Value = api(&fake, &with_scope, "/user/orgs")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["login"], "acme");
    assert!(orgs[0]["id"].is_u64() && orgs[0]["node_id"].is_string());
    assert_eq!(orgs[0]["description"], Value::Null);
    let orgs: Value = api(&fake, &without, "/user/orgs")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(orgs, json!([]));

    let response = api(&fake, &without, "/user/memberships/orgs/acme").await;
    assert_eq!(response.status(), 200);
    let membership: Value = response.json().await.unwrap();
    assert_eq!(membership["state"], "active");
    assert_eq!(membership["role"], "member");
    assert_eq!(membership["organization"]["login"], "acme");
    assert_eq!(membership["user"]["login"], "alice");
    let response = api(&fake, &without, "/user/memberships/orgs/other").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Not Found");

    let status = |path: &'static str| {
        let fake = &fake;
        let token = with_scope.clone();
        async move { api(fake, &token, path).await.status().as_u16() }
    };
    assert_eq!(status("/orgs/acme/members/alice").await, 204);
    assert_eq!(status("/orgs/acme/members/bob").await, 404);
    assert_eq!(status("/orgs/acme/members/nobody").await, 404);
    assert_eq!(status("/orgs/nowhere/members/alice").await, 404);
}

#[tokio::test]
async fn user_repos_are_paginated_with_a_link_header() {
    let fake = FakeGitHub::start(FakeGitHubOptions {
        repos: ["acme/e", "acme/a", "alice/d", "acme/c", "alice/b"]
            .map(String::from)
            .to_vec(),
        ..options(&["alice"])
    })
    .await
    .unwrap();
    let token = sign_in(&fake, None, "repo").await;
    let mut url = format!("{}/user/repos?per_page=2&sort=full_name", fake.base_url());
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let response = client().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let repos: Value = response.json().await.unwrap();
        pages += 1;
        for repo in repos.as_array().unwrap() {
            names.push(repo["full_name"].as_str().unwrap().to_owned());
        }
        if pages == 1 {
            let repo = &repos[0];
            assert_eq!(repo["name"], "a");
            assert_eq!(repo["owner"]["login"], "acme");
            assert_eq!(repo["private"], false);
            assert_eq!(repo["default_branch"], "main");
            assert_eq!(repo["clone_url"], format!("{}/acme/a.git", fake.base_url()));
            assert_eq!(repo["html_url"], format!("{}/acme/a", fake.base_url()));
            let link = link.as_deref().unwrap();
            assert!(link.contains("page=3>; rel=\"last\""), "{link}");
        }
        let next = link.as_deref().and_then(|link| {
            link.split(", ")
                .find(|part| part.ends_with("rel=\"next\""))
                .map(|part| part[1..part.find('>').unwrap()].to_owned())
        });
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["acme/a", "acme/c", "acme/e", "alice/b", "alice/d"]);

    let response = api(&fake, &token, "/user/repos").await;
    assert!(response.headers().get("link").is_none());
    let all: Value = response.json().await.unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn api_calls_need_a_live_token_and_a_user_agent() {
    let fake = FakeGitHub::start(options(&["alice"])).await.unwrap();
    let token = sign_in(&fake, None, "").await;

    // `token X` works as well as `Bearer X`.
    let response = client()
        .get(format!("{}/user", fake.base_url()))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-oauth-scopes"], "");

    let response = reqwest::Client::new()
        .get(format!("{}/user", fake.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("User-Agent"));

    let response = client()
        .get(format!("{}/user", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    assert!(fake.revoke_token(&token));
    assert!(!fake.revoke_token(&token));
    let response = api(&fake, &token, "/user").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-github-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    );
    assert_eq!(fake.issued_tokens(), vec![token]);

    let response = api(&fake, "whatever", "/no/such/route").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Not Found");
}

/// Ends the child even when an assertion fails first.
pub(super) struct KillOnDrop(pub(super) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The base URL the binary prints on its first line.
pub(super) fn listening_on(child: &mut KillOnDrop) -> String {
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned()
}

#[tokio::test]
async fn the_binary_serves_users_from_flags() {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_dockhand-fake-github"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--user",
                "octo",
                "--user",
                "cat",
                "--org",
                "acme:cat",
                "--repo",
                "acme/widgets",
                "--client-id",
                "bin-id",
                "--client-secret",
                "bin-secret",
                "--device-interval",
                "0",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let base = listening_on(&mut child);

    let url = Url::parse_with_params(
        &format!("{base}/login/oauth/authorize"),
        [
            ("client_id", "bin-id"),
            ("redirect_uri", CALLBACK),
            ("scope", "read:org"),
            ("login", "cat"),
        ],
    )
    .unwrap();
    let response = client().get(url).send().await.unwrap();
    let back = redirect_params(&response, CALLBACK);
    let reply: Value = client()
        .post(format!("{base}/login/oauth/access_token"))
        .header("accept", "application/json")
        .form(&[
            ("client_id", "bin-id"),
            ("client_secret", "bin-secret"),
            ("code", param(&back, "code").unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["access_token"].as_str().unwrap();
    let get = |path: &str| {
        client()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
    };
    let user: Value = get("/user").await.unwrap().json().await.unwrap();
    let orgs: Value = get("/user/orgs").await.unwrap().json().await.unwrap();
    let repos: Value = get("/user/repos").await.unwrap().json().await.unwrap();
    drop(child);
    assert_eq!(
        (user["login"].as_str(), user["id"].as_u64()),
        (Some("cat"), Some(1002))
    );
    assert_eq!(orgs[0]["login"], "acme");
    assert_eq!(repos[0]["full_name"], "acme/widgets");
}
