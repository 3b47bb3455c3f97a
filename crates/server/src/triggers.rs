//! GitHub triggers: `/dockhand <prompt>` in a comment (or the `dockhand` label
//! on an issue) starts a task, run with the sender's own token; the same comment
//! on a Dockhand pull request is a follow-up to its task. Only a Dockhand user
//! who is still allowed in and may push to the repository triggers anything;
//! anyone else is told why in a reply.

use dockhand_protocol::CreateTaskParams;
use dockhand_store::User;
use serde::Deserialize;

use crate::actor::Actor;
use crate::publish::MARKER;
use crate::services::Services;
use crate::tasks::NewTaskInput;
use crate::tasks::TaskError;
use crate::tasks::TaskService;

/// The parts of an `issue_comment` or `issues` payload Dockhand reads; anything
/// missing reads as empty, so other events parse and are ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Payload {
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

/// A `/dockhand` comment or the `dockhand` label on an issue or pull request.
pub struct Trigger {
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
    pub fn read(event: &str, p: Payload) -> Option<Trigger> {
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

/// Starts (or steers) the task a trigger asks for, and says so on GitHub.
pub async fn handle(state: &Services, t: Trigger) -> Result<(), TaskError> {
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
    let context = crate::text::clip(&t.body, 8000);
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
    let tasks = TaskService::new(state);
    let created = match NewTaskInput::parse(params, &state.config) {
        Ok(input) => tasks.create(&Actor::webhook(user), input, origin).await,
        Err(e) => Err(e),
    };
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
) -> Result<bool, TaskError> {
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
    let actor = Actor::webhook(user.clone());
    TaskService::new(state)
        .follow_up(&actor, task.id.as_str(), text)
        .await?;
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
