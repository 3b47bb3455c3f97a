//! `POST /webhooks/github`: GitHub triggers. The signature is checked in constant
//! time over the raw body, deliveries are deduplicated by id and by a hash of the
//! signed body (a captured delivery replayed under a new id does nothing), and the
//! work happens after the 202. `/dockhand <prompt>` in a comment (or the
//! `dockhand` label on an issue) starts a task, run with the sender's own token;
//! the same comment on a Dockhand pull request is a follow-up to its task. Only a
//! Dockhand user who is still allowed in and may push to the repository triggers
//! anything; anyone else is told why in a reply.

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
use serde::Deserialize;
use serde::Serialize;
use sha2::Digest;
use std::sync::Arc;

use super::ApiError;
use crate::auth::AuthUser;
use crate::publish::MARKER;
use crate::services::Services;

pub(super) fn router() -> Router<Arc<Services>> {
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

/// What the webhook answers.
#[derive(Serialize)]
struct Accepted {
    status: &'static str,
}

/// The parts of an `issue_comment` or `issues` payload Dockhand reads; anything
/// missing reads as empty, so other events parse and are ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Payload {
    action: Option<String>,
    repository: Repository,
    issue: Option<Issue>,
    comment: Option<Comment>,
    label: Option<Label>,
    sender: Account,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Issue {
    number: u64,
    title: String,
    body: Option<String>,
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Comment {
    body: String,
    user: Account,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Label {
    name: String,
}

#[derive(Clone, Deserialize, Default)]
#[serde(default)]
struct Account {
    login: String,
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
}

impl Account {
    fn is_bot(&self) -> bool {
        self.kind == "Bot" || self.login.ends_with("[bot]")
    }
}

async fn github(
    State(state): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
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
    let payload: Payload = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        message: format!("the body is not a JSON object: {e}"),
        fields: Default::default(),
    })?;
    let body_hash = hex::encode(sha2::Sha256::digest(&body));
    if !state.store.first_delivery(delivery, &body_hash).await? {
        return Ok((
            StatusCode::OK,
            Json(Accepted {
                status: "duplicate",
            }),
        ));
    }
    let st = state.clone();
    tokio::spawn(async move {
        if let Some(trigger) = Trigger::read(&event, payload)
            && let Err(e) = handle(&st, trigger).await
        {
            tracing::warn!(event, error = %e, "handling a GitHub webhook");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(Accepted { status: "accepted" })))
}

/// A `/dockhand` comment or the `dockhand` label on an issue or pull request.
struct Trigger {
    /// `owner/name`.
    repo: String,
    number: u64,
    on_pr: bool,
    sender: Account,
    /// What followed `/dockhand`; empty for the label.
    text: String,
    title: String,
    body: String,
}

impl Trigger {
    /// The trigger a payload holds; `None` for everything Dockhand ignores (other
    /// events, bots, its own comments).
    fn read(event: &str, p: Payload) -> Option<Trigger> {
        let issue = p.issue?;
        if p.repository.full_name.is_empty() || issue.number == 0 || p.sender.is_bot() {
            return None;
        }
        let (sender, text) = match (event, p.action.as_deref()) {
            ("issue_comment", Some("created")) => {
                let comment = p.comment?;
                let rest = comment.body.trim_start().strip_prefix("/dockhand")?;
                let word_ends = rest.is_empty() || rest.starts_with(char::is_whitespace);
                if !word_ends || comment.body.contains(MARKER) || comment.user.is_bot() {
                    return None;
                }
                (comment.user, rest.trim().to_owned())
            }
            ("issues", Some("labeled")) if p.label?.name == "dockhand" => (p.sender, String::new()),
            _ => return None,
        };
        Some(Trigger {
            repo: p.repository.full_name,
            number: issue.number,
            on_pr: issue.pull_request.is_some(),
            sender,
            text,
            title: issue.title,
            body: issue.body.unwrap_or_default(),
        })
    }

    fn link(&self, state: &Services) -> String {
        format!("{}/auth/github/login", state.config.public_url())
    }
}

/// Posts a reply on the trigger's issue, marked so it never triggers anything.
async fn reply(state: &Services, token: &str, t: &Trigger, text: &str) {
    let Some((owner, name)) = t.repo.split_once('/') else {
        return;
    };
    let body = format!("{MARKER}\n{text}");
    let github = &state.forge.github;
    if let Err(e) = github.comment(token, owner, name, t.number, &body).await {
        tracing::warn!(repo = t.repo, number = t.number, error = %e, "replying on GitHub");
    }
}

/// Replies with an operator's token, for senders who have none Dockhand may use.
async fn reply_as_operator(state: &Services, t: &Trigger, text: &str) {
    let token = state
        .store
        .operator_with_github_token()
        .ok()
        .flatten()
        .and_then(|id| state.user_token(id));
    match token {
        Some(token) => reply(state, &token, t, text).await,
        None => tracing::info!(repo = t.repo, "no operator token to reply with: {text}"),
    }
}

/// The Dockhand user behind the trigger and their token, or why they get nothing.
async fn admit(state: &Services, t: &Trigger) -> Result<(User, String), String> {
    let login = &t.sender.login;
    let user = t
        .sender
        .id
        .and_then(|id| state.store.user_by_github_id(id).ok().flatten());
    let Some(user) = user else {
        let listed = state.config.github.allowed_users.iter();
        if listed.clone().any(|u| u.eq_ignore_ascii_case(login)) {
            return Err(format!(
                "@{login}, sign in to Dockhand first ({}), then ask again.",
                t.link(state)
            ));
        }
        return Err(format!(
            "@{login}, Dockhand runs tasks only for its own users with write access to {}.",
            t.repo
        ));
    };
    if crate::auth::still_allowed(state, &user).await.is_err() {
        return Err(format!(
            "@{login}, your account is no longer allowed to use this Dockhand, so no task was started."
        ));
    }
    let Some(token) = state.user_token(user.id) else {
        return Err(format!(
            "@{login}, sign in to Dockhand again ({}).",
            t.link(state)
        ));
    };
    let (owner, name) = t.repo.split_once('/').unwrap_or((&t.repo, ""));
    match state
        .forge
        .github
        .can_push(&token, owner, name, login)
        .await
    {
        Ok(true) => Ok((user, token)),
        Ok(false) => Err(format!(
            "@{login}, Dockhand runs only for people with write access to {}.",
            t.repo
        )),
        Err(e) => Err(format!(
            "@{login}, Dockhand could not check your access to {} ({e}); try again.",
            t.repo
        )),
    }
}

async fn handle(state: &Services, t: Trigger) -> Result<(), ApiError> {
    let (user, token) = match admit(state, &t).await {
        Ok(admitted) => admitted,
        Err(why) => {
            reply_as_operator(state, &t, &why).await;
            return Ok(());
        }
    };
    if t.on_pr && follow_up(state, &t, &user, &token).await? {
        return Ok(());
    }
    let context = crate::runner::clip(&t.body, 8000);
    let ask = if t.text.is_empty() {
        format!("Resolve this issue: {}", t.title)
    } else {
        t.text.clone()
    };
    let (repo, number, title) = (&t.repo, t.number, &t.title);
    let prompt = format!("{ask}\n\n---\nGitHub issue {repo}#{number}: {title}\n\n{context}");
    let params = CreateTaskParams {
        repo: repo.clone(),
        prompt,
        base_branch: None,
        model: None,
        image: None,
    };
    let origin = Some(format!("{repo}#{number}"));
    let created =
        crate::api::tasks::create_task(state, &AuthUser(user), None, params, origin).await;
    let text = match created {
        Ok(task) => format!(
            "On it: [Dockhand task {}]({}/#/tasks/{}). The pull request will be linked here.",
            task.id,
            state.config.public_url(),
            task.id
        ),
        Err(e) => format!("Dockhand could not start a task: {e}"),
    };
    reply(state, &token, &t, &text).await;
    Ok(())
}

/// `/dockhand` on a Dockhand pull request: a follow-up to its task, by its owner.
/// False when the pull request is not a task's.
async fn follow_up(
    state: &Services,
    t: &Trigger,
    user: &User,
    token: &str,
) -> Result<bool, ApiError> {
    let web = state.config.github.web_url.trim_end_matches('/');
    let names = [
        t.repo.clone(),
        format!("{web}/{}.git", t.repo),
        format!("{web}/{}", t.repo),
    ];
    let Some(task) = state.store.task_by_pull_request(&names, t.number)? else {
        return Ok(false);
    };
    if task.user_id != user.id {
        reply(
            state,
            token,
            t,
            "Only the person who started this task can steer it.",
        )
        .await;
        return Ok(true);
    }
    let text = if t.text.is_empty() {
        "Continue.".to_owned()
    } else {
        t.text.clone()
    };
    state.store.follow_up(&task.id, text).await?;
    state.scheduler.wake();
    let link = format!("{}/#/tasks/{}", state.config.public_url(), task.id);
    reply(
        state,
        token,
        t,
        &format!("Follow-up queued on [the task]({link})."),
    )
    .await;
    Ok(true)
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
