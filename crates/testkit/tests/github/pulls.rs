//! Repositories, pull requests, issue comments and `/_fake/state`.

use reqwest::Method;

use super::git::clone;
use super::git::clone_url;
use super::git::commit_file;
use super::git::fake_with_repo;
use super::git::git;
use super::git::rev_parse;
use super::*;

/// A JSON call with the token; the status and the parsed body.
async fn call(
    fake: &FakeGitHub,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", fake.base_url()))
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const PULLS: &str = "/repos/alice/widgets/pulls";

#[tokio::test]
async fn pulls_are_created_listed_and_refused_as_github_does() {
    let (fake, dir, bare) = fake_with_repo().await;
    let base = fake.base_url();
    let token = sign_in(&fake, None, "repo").await;
    let work = clone(dir.path(), &clone_url(&base), &token, "work").await;
    commit_file(&work, "f.txt", b"f\n").await;
    let push = git(
        &work,
        Some(&token),
        &["push", "origin", "HEAD:refs/heads/feature"],
    )
    .await;
    assert!(push.ok, "{}", push.stderr);
    let feature_sha = rev_parse(&bare, "refs/heads/feature").await.unwrap();
    let trunk_sha = rev_parse(&bare, "refs/heads/trunk").await.unwrap();

    // Issues and pull requests share the numbers.
    assert_eq!(
        fake.create_issue("alice", "widgets", "A bug", "It breaks"),
        1
    );
    let new_pull = json!({"title": "Add f", "head": "feature", "base": "trunk",
                          "body": "Adds f.\n\n<!-- dockhand -->", "draft": true});
    let (status, pull) = call(&fake, &token, Method::POST, PULLS, Some(new_pull.clone())).await;
    assert_eq!(status, 201, "{pull}");
    assert_eq!(pull["number"], 2);
    assert!(pull["id"].is_u64());
    assert_eq!(pull["url"], format!("{base}/repos/alice/widgets/pulls/2"));
    assert_eq!(pull["html_url"], format!("{base}/alice/widgets/pull/2"));
    assert_eq!(pull["state"], "open");
    assert_eq!(pull["title"], "Add f");
    assert_eq!(pull["body"], "Adds f.\n\n<!-- dockhand -->");
    assert_eq!(pull["draft"], true);
    assert_eq!(pull["head"]["ref"], "feature");
    assert_eq!(pull["head"]["label"], "alice:feature");
    assert_eq!(pull["head"]["sha"], feature_sha.as_str());
    assert_eq!(pull["base"]["ref"], "trunk");
    assert_eq!(pull["base"]["sha"], trunk_sha.as_str());
    assert_eq!(pull["user"]["login"], "alice");
    assert_eq!(pull["merged"], false);
    assert_eq!(pull["mergeable"], Value::Null);
    assert!(pull["created_at"].as_str().unwrap().ends_with('Z'));

    // A second one for the same head, with or without the owner.
    let duplicate = json!({"title": "Again", "head": "alice:feature", "base": "trunk"});
    let (status, error) = call(&fake, &token, Method::POST, PULLS, Some(duplicate)).await;
    assert_eq!(status, 422);
    assert_eq!(error["message"], "Validation Failed");
    assert_eq!(error["status"], "422");
    assert!(error["documentation_url"].is_string());
    assert_eq!(
        error["errors"],
        json!([{"resource": "PullRequest", "code": "custom",
                "message": "A pull request already exists for alice:feature."}])
    );
    let refused = |body: Value| {
        let (fake, token) = (&fake, &token);
        async move {
            let (status, error) = call(fake, token, Method::POST, PULLS, Some(body)).await;
            assert_eq!(status, 422, "{error}");
            error["errors"][0].clone()
        }
    };
    assert_eq!(
        refused(json!({"title": "t", "head": "nope", "base": "trunk"})).await,
        json!({"resource": "PullRequest", "field": "head", "code": "invalid"})
    );
    assert_eq!(
        refused(json!({"title": "t", "head": "other:feature", "base": "trunk"})).await["field"],
        "head"
    );
    assert_eq!(
        refused(json!({"title": "t", "head": "feature", "base": "nope"})).await["field"],
        "base"
    );
    assert_eq!(
        refused(json!({"title": "t", "head": "trunk", "base": "trunk"})).await["message"],
        "No commits between trunk and trunk"
    );
    assert_eq!(
        refused(json!({"head": "feature", "base": "trunk"})).await["code"],
        "missing_field"
    );

    // Listing by `owner:branch`; a bare branch name is no filter on GitHub.
    let list = |query: &'static str| {
        let (fake, token) = (&fake, &token);
        async move {
            let (status, pulls) =
                call(fake, token, Method::GET, &format!("{PULLS}{query}"), None).await;
            assert_eq!(status, 200);
            pulls
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["number"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("?head=alice:feature&state=open").await, [2]);
    assert_eq!(list("?head=alice:other").await, Vec::<u64>::new());
    assert_eq!(list("?state=closed").await, Vec::<u64>::new());
    let (_, pulls) = call(&fake, &token, Method::GET, PULLS, None).await;
    assert_eq!(pulls[0]["head"]["sha"], feature_sha.as_str());

    let get = |n: u64| {
        let (fake, token) = (&fake, &token);
        async move { call(fake, token, Method::GET, &format!("{PULLS}/{n}"), None).await }
    };
    assert_eq!(get(2).await.1["title"], "Add f");
    assert_eq!(get(1).await.0, 404, "issue 1 is no pull request");
    assert_eq!(get(99).await.0, 404);

    // Closing frees the head for a new pull request; reopening the old one
    // would then be a duplicate.
    let patch = json!({"state": "closed", "title": "Add f (closed)"});
    let (status, closed) = call(
        &fake,
        &token,
        Method::PATCH,
        &format!("{PULLS}/2"),
        Some(patch),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["title"], "Add f (closed)");
    assert!(closed["closed_at"].is_string());
    assert_eq!(list("?head=alice:feature").await, Vec::<u64>::new());
    assert_eq!(list("?head=alice:feature&state=all").await, [2]);
    let (status, again) = call(&fake, &token, Method::POST, PULLS, Some(new_pull)).await;
    assert_eq!((status, again["number"].as_u64()), (201, Some(3)));
    assert_eq!(list("?head=feature&state=all").await, [3, 2]);
    let reopen = json!({"state": "open"});
    let (status, _) = call(
        &fake,
        &token,
        Method::PATCH,
        &format!("{PULLS}/2"),
        Some(reopen),
    )
    .await;
    assert_eq!(status, 422);

    // An under-scoped token reads but cannot write, and GitHub says 404.
    let reader = sign_in(&fake, None, "read:user").await;
    assert_eq!(list("?state=all").await.len(), 2);
    let body = json!({"title": "t", "head": "feature", "base": "trunk"});
    let (status, error) = call(&fake, &reader, Method::POST, PULLS, Some(body)).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (404, Some("Not Found"))
    );
    let (status, _) = call(&fake, &reader, Method::GET, PULLS, None).await;
    assert_eq!(status, 200);
    let path = "/repos/alice/nothing/pulls";
    assert_eq!(call(&fake, &token, Method::GET, path, None).await.0, 404);
}

#[tokio::test]
async fn comments_and_the_state_summary() {
    let (fake, _dir, _bare) = fake_with_repo().await;
    let base = fake.base_url();
    let alice = sign_in(&fake, None, "repo").await;
    let bob = sign_in(&fake, Some("bob"), "repo").await;
    let issue = fake.create_issue("alice", "widgets", "Crash on start", "Steps: run it.");
    assert_eq!(issue, 1);
    let (status, pull) = call(
        &fake,
        &alice,
        Method::POST,
        PULLS,
        Some(json!({"title": "Fix", "head": "trunk", "base": "trunk"})),
    )
    .await;
    assert_eq!(status, 422, "no commits between trunk and trunk: {pull}");

    let comments = "/repos/alice/widgets/issues/1/comments";
    let body = json!({"body": "On it.\n<!-- dockhand -->"});
    let (status, comment) = call(&fake, &alice, Method::POST, comments, Some(body)).await;
    assert_eq!(status, 201, "{comment}");
    let id = comment["id"].as_u64().unwrap();
    assert!(comment["node_id"].is_string());
    assert_eq!(comment["body"], "On it.\n<!-- dockhand -->");
    assert_eq!(comment["user"]["login"], "alice");
    assert_eq!(comment["user"]["id"], 1001);
    assert_eq!(comment["user"]["type"], "User");
    assert_eq!(
        comment["html_url"],
        format!("{base}/alice/widgets/issues/1#issuecomment-{id}")
    );
    assert_eq!(
        comment["issue_url"],
        format!("{base}/repos/alice/widgets/issues/1")
    );
    assert_eq!(comment["author_association"], "OWNER");
    assert!(comment["created_at"].is_string() && comment["updated_at"].is_string());
    let body = json!({"body": "Thanks"});
    let (status, second) = call(&fake, &bob, Method::POST, comments, Some(body)).await;
    assert_eq!(status, 201);
    assert_eq!(second["user"]["id"], 1002);
    assert_eq!(second["author_association"], "COLLABORATOR");

    let (status, listed) = call(&fake, &alice, Method::GET, comments, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed, json!([comment, second]));
    let (status, issue_json) = call(
        &fake,
        &alice,
        Method::GET,
        "/repos/alice/widgets/issues/1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            issue_json["title"].as_str(),
            issue_json["comments"].as_u64()
        ),
        (Some("Crash on start"), Some(2))
    );

    let missing = "/repos/alice/widgets/issues/99/comments";
    let body = json!({"body": "x"});
    assert_eq!(
        call(&fake, &alice, Method::POST, missing, Some(body))
            .await
            .0,
        404
    );
    let (status, error) = call(&fake, &alice, Method::POST, comments, Some(json!({}))).await;
    assert_eq!(status, 422);
    assert_eq!(error["errors"][0]["field"], "body");
    let reader = sign_in(&fake, None, "read:user").await;
    let body = json!({"body": "x"});
    assert_eq!(
        call(&fake, &reader, Method::POST, comments, Some(body))
            .await
            .0,
        404
    );

    // A pull request on a configured repository without a bare one takes
    // any branch names.
    let configured = FakeGitHub::start(FakeGitHubOptions {
        repos: vec!["acme/site".into()],
        ..options(&["alice"])
    })
    .await
    .unwrap();
    let token = sign_in(&configured, None, "repo").await;
    let new_pull = json!({"title": "T", "head": "dockhand/1-x", "base": "main", "draft": false});
    let (status, _) = call(
        &configured,
        &token,
        Method::POST,
        "/repos/acme/site/pulls",
        Some(new_pull),
    )
    .await;
    assert_eq!(status, 201);
    let body = json!({"body": "Follow-up done."});
    let path = "/repos/acme/site/issues/1/comments";
    assert_eq!(
        call(&configured, &token, Method::POST, path, Some(body))
            .await
            .0,
        201
    );

    // The summary needs no token, and keeps creation order.
    let state: Value = client()
        .get(format!("{}/_fake/state", configured.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state,
        json!({
            "pulls": [{"repo": "acme/site", "number": 1, "head": {"ref": "dockhand/1-x"},
                       "base": {"ref": "main"}, "title": "T", "body": null, "draft": false,
                       "state": "open", "user": "alice"}],
            "comments": [{"repo": "acme/site", "issue_number": 1, "id": state["comments"][0]["id"],
                          "body": "Follow-up done.", "user": "alice"}],
        })
    );
    assert_eq!(configured.state(), state);
    let state = fake.state();
    assert_eq!(state["pulls"], json!([]));
    let summary: Vec<(&str, &str)> = state["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["user"].as_str().unwrap(), c["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [("alice", "On it.\n<!-- dockhand -->"), ("bob", "Thanks")]
    );
}

#[tokio::test]
async fn repositories_in_repos_dir_are_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitHub::start(FakeGitHubOptions {
        repos_dir: Some(dir.path().to_owned()),
        repos: vec!["acme/site".into()],
        ..options(&["alice"])
    })
    .await
    .unwrap();
    let base = fake.base_url();
    fake.create_repo("alice", "widgets", &[("a", "a")], "trunk")
        .unwrap();
    assert!(fake.create_repo("alice", "widgets", &[], "main").is_err());
    assert!(fake.create_repo("alice", "../x", &[], "main").is_err());
    assert!(
        fake.create_repo("alice", "y", &[("../a", "")], "main")
            .is_err()
    );
    // One made by hand counts too.
    let run = git(
        dir.path(),
        None,
        &["init", "--quiet", "--bare", "-b", "dev", "bob/tools.git"],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    let token = sign_in(&fake, None, "repo").await;

    let (status, repo) = call(&fake, &token, Method::GET, "/repos/alice/widgets", None).await;
    assert_eq!(status, 200);
    assert!(repo["id"].is_u64());
    assert_eq!(repo["name"], "widgets");
    assert_eq!(repo["full_name"], "alice/widgets");
    assert_eq!(repo["owner"]["login"], "alice");
    assert_eq!(repo["private"], false);
    assert_eq!(repo["default_branch"], "trunk");
    assert_eq!(repo["permissions"]["push"], true);
    assert_eq!(repo["permissions"]["admin"], false);
    assert_eq!(repo["permissions"]["pull"], true);
    assert_eq!(repo["clone_url"], format!("{base}/alice/widgets.git"));
    assert_eq!(repo["html_url"], format!("{base}/alice/widgets"));
    let (_, again) = call(&fake, &token, Method::GET, "/repos/alice/widgets", None).await;
    assert_eq!(again["id"], repo["id"], "ids are stable");
    let (_, tools) = call(&fake, &token, Method::GET, "/repos/bob/tools", None).await;
    assert_eq!(tools["default_branch"], "dev");
    let (_, site) = call(&fake, &token, Method::GET, "/repos/acme/site", None).await;
    assert_eq!(site["default_branch"], "main");
    let (status, error) = call(&fake, &token, Method::GET, "/repos/alice/nothing", None).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (404, Some("Not Found"))
    );
    let response = client()
        .get(format!("{base}/repos/alice/widgets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (_, repos) = call(&fake, &token, Method::GET, "/user/repos", None).await;
    let names: Vec<&str> = repos
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme/site", "alice/widgets", "bob/tools"]);
}
