//! `POST /webhooks/github`: GitHub triggers. The signature is checked in constant
//! time over the raw body, deliveries are deduplicated, and the work happens after
//! the 202. `/dockhand <prompt>` in a comment (or the `dockhand` label on an issue)
//! starts a task, run with the commenter's own token; the same comment on a
//! Dockhand pull request is a follow-up to its task.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::post;
use dockhand_protocol::CreateTaskParams;
use dockhand_store::User;
use hmac::Mac;
use serde_json::Value;
use serde_json::json;

use super::ApiError;
use crate::AppState;
use crate::auth::AuthUser;
use crate::publish::MARKER;
use crate::publish::user_token;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/webhooks/github", post(github))
}

fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let secret = &state.config.github.webhook_secret;
    if secret.is_empty() {
        return Err(ApiError::NotFound(
            "GitHub webhooks are not configured (DOCKHAND_GITHUB_WEBHOOK_SECRET)".into(),
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !verify(secret, &body, header("x-hub-signature-256")) {
        return Err(ApiError::Unauthorized(
            "missing or wrong X-Hub-Signature-256".into(),
        ));
    }
    let event = header("x-github-event").unwrap_or("").to_owned();
    let delivery = header("x-github-delivery").filter(|d| !d.is_empty() && d.len() <= 100);
    let Some(delivery) = delivery else {
        return Err(ApiError::field("X-GitHub-Delivery", "is required"));
    };
    let payload: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        message: format!("the body is not JSON: {e}"),
        fields: Default::default(),
    })?;
    if !state.store.first_delivery(delivery).await? {
        return Ok((StatusCode::OK, Json(json!({"status": "duplicate"}))));
    }
    let st = state.clone();
    tokio::spawn(async move {
        if let Err(e) = handle(&st, &event, &payload).await {
            tracing::warn!(event, error = %e, "handling a GitHub webhook");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "accepted"}))))
}

fn is_bot(user: &Value) -> bool {
    user["type"] == "Bot" || user["login"].as_str().is_some_and(|l| l.ends_with("[bot]"))
}

/// The Dockhand user behind a GitHub account, if they may use Dockhand.
enum Who {
    User(User),
    /// Allowed, but never signed in (so no token to act with).
    NotSignedIn(String),
    Stranger,
}

fn who(state: &AppState, gh_user: &Value) -> Who {
    let login = gh_user["login"].as_str().unwrap_or("").to_owned();
    if let Some(id) = gh_user["id"].as_i64()
        && let Ok(Some(user)) = state.store.user_by_github_id(id)
    {
        return Who::User(user);
    }
    if state
        .config
        .github
        .allowed_users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(&login))
    {
        return Who::NotSignedIn(login);
    }
    Who::Stranger
}

async fn reply(state: &AppState, token: &str, repo: &str, number: u64, text: &str) {
    let Some((owner, name)) = repo.split_once('/') else {
        return;
    };
    let body = format!("{MARKER}\n{text}");
    if let Err(e) = state
        .scheduler
        .deps()
        .github
        .comment(token, owner, name, number, &body)
        .await
    {
        tracing::warn!(repo, number, error = %e, "replying on GitHub");
    }
}

async fn handle(state: &AppState, event: &str, p: &Value) -> Result<(), ApiError> {
    let repo = p["repository"]["full_name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let issue = &p["issue"];
    let number = issue["number"].as_u64().unwrap_or(0);
    if repo.is_empty() || number == 0 {
        return Ok(());
    }
    let (actor, text) = match (event, p["action"].as_str()) {
        ("issue_comment", Some("created")) => {
            let comment = &p["comment"];
            let body = comment["body"].as_str().unwrap_or("");
            let Some(rest) = body.trim_start().strip_prefix("/dockhand") else {
                return Ok(());
            };
            if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) || body.contains(MARKER)
            {
                return Ok(());
            }
            if is_bot(&comment["user"]) || is_bot(&p["sender"]) {
                return Ok(());
            }
            let assoc = comment["author_association"].as_str().unwrap_or("NONE");
            if !["OWNER", "MEMBER", "COLLABORATOR"].contains(&assoc) {
                return Ok(());
            }
            (comment["user"].clone(), rest.trim().to_owned())
        }
        ("issues", Some("labeled")) if p["label"]["name"] == "dockhand" => {
            if is_bot(&p["sender"]) {
                return Ok(());
            }
            (p["sender"].clone(), String::new())
        }
        _ => return Ok(()),
    };
    let deps = state.scheduler.deps();
    let user = match who(state, &actor) {
        Who::User(u) => u,
        Who::NotSignedIn(login) => {
            // They have no token yet; an operator's token carries the answer.
            let op = state
                .store
                .operator_with_github_token()?
                .and_then(|id| user_token(&deps, id));
            if let Some(token) = op {
                let link = format!("{}/auth/github/login", state.config.public_url());
                reply(
                    state,
                    &token,
                    &repo,
                    number,
                    &format!("@{login}, sign in to Dockhand first ({link}), then ask again."),
                )
                .await;
            }
            return Ok(());
        }
        Who::Stranger => return Ok(()),
    };
    let Some(token) = user_token(&deps, user.id) else {
        return Ok(());
    };
    let on_pr = issue.get("pull_request").is_some_and(|v| !v.is_null());
    if on_pr {
        let web = state.config.github.web_url.trim_end_matches('/');
        let names = [
            repo.clone(),
            format!("{web}/{repo}.git"),
            format!("{web}/{repo}"),
        ];
        if let Some(task) = state.store.task_by_pull_request(&names, number)? {
            if task.user_id != user.id {
                reply(
                    state,
                    &token,
                    &repo,
                    number,
                    "Only the person who started this task can steer it.",
                )
                .await;
                return Ok(());
            }
            let text = if text.is_empty() {
                "Continue.".to_owned()
            } else {
                text
            };
            state.store.follow_up(&task.id, text).await?;
            state.scheduler.wake();
            let link = format!("{}/#/tasks/{}", state.config.public_url(), task.id);
            reply(
                state,
                &token,
                &repo,
                number,
                &format!("Follow-up queued on [the task]({link})."),
            )
            .await;
            return Ok(());
        }
    }
    let title = issue["title"].as_str().unwrap_or("");
    let context = crate::runner::clip(issue["body"].as_str().unwrap_or(""), 8000);
    let ask = if text.is_empty() {
        format!("Resolve this issue: {title}")
    } else {
        text
    };
    let prompt = format!("{ask}\n\n---\nGitHub issue {repo}#{number}: {title}\n\n{context}");
    let params = CreateTaskParams {
        repo: repo.clone(),
        prompt,
        base_branch: None,
        model: None,
        image: None,
    };
    let auth = AuthUser(user);
    match crate::api::tasks::create_task(
        state,
        &auth,
        None,
        params,
        Some(format!("{repo}#{number}")),
    )
    .await
    {
        Ok(task) => {
            let link = format!("{}/#/tasks/{}", state.config.public_url(), task.id);
            reply(
                state,
                &token,
                &repo,
                number,
                &format!(
                    "On it: [Dockhand task {}]({link}). The pull request will be linked here.",
                    task.id
                ),
            )
            .await;
        }
        Err(e) => {
            reply(
                state,
                &token,
                &repo,
                number,
                &format!("Dockhand could not start a task: {e}"),
            )
            .await
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_match_githubs_test_vector() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some(sig)
        ));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World?",
            Some(sig)
        ));
        assert!(!super::verify("other", b"Hello, World!", Some(sig)));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            None
        ));
        assert!(!super::verify(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some("sha1=abc")
        ));
    }
}
