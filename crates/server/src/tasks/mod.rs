//! The task service: what can be done with tasks, below HTTP. Every operation
//! takes an [`Actor`] and validated input, so the HTTP handlers and the GitHub
//! triggers share one set of rules.

mod error;
mod input;

use dockhand_forge::RepoSource;
use dockhand_protocol::CreateTaskParams;
use dockhand_protocol::ListTasksQuery;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::task_branch;
use dockhand_store::CancelOutcome;
use dockhand_store::NewTask;
use dockhand_store::TaskCursor;
use dockhand_store::TaskFilter;
use dockhand_store::TaskRow;

pub use error::TaskError;
pub use input::BranchName;
pub use input::ImageRef;
pub use input::ModelId;
pub use input::Prompt;
pub use input::RepoRef;

use crate::actor::Actor;
use crate::config::Config;
use crate::services::Services;

/// A task to create, every field checked.
#[derive(Clone, Debug)]
pub struct NewTaskInput {
    /// The repository.
    pub repo: RepoRef,
    /// What to do.
    pub prompt: Prompt,
    /// The branch to start from.
    pub base_branch: Option<BranchName>,
    /// A model other than the default.
    pub model: Option<ModelId>,
    /// An image other than the default (checked against the policy at creation).
    pub image: Option<ImageRef>,
}

impl NewTaskInput {
    /// Checks a request's fields, in the order a person reads them.
    pub fn parse(p: CreateTaskParams, config: &Config) -> Result<NewTaskInput, TaskError> {
        let prompt = Prompt::parse("prompt", p.prompt, config.limits.max_prompt_bytes)?;
        Ok(NewTaskInput {
            repo: RepoRef::parse(&p.repo, config)?,
            prompt,
            base_branch: p.base_branch.map(BranchName::parse).transpose()?,
            model: p.model.map(ModelId::parse).transpose()?,
            image: p.image.map(ImageRef::parse).transpose()?,
        })
    }
}

/// One page of tasks.
pub struct TaskPage {
    /// The tasks, newest first.
    pub tasks: Vec<TaskRow>,
    /// Where the next page starts.
    pub next: Option<TaskCursor>,
}

/// Task operations over the shared services.
pub struct TaskService<'a> {
    services: &'a Services,
}

impl<'a> TaskService<'a> {
    /// The service over `services`.
    pub fn new(services: &'a Services) -> TaskService<'a> {
        TaskService { services }
    }

    /// Queues a task; `origin_issue` is the GitHub issue that asked for it.
    pub async fn create(
        &self,
        actor: &Actor,
        input: NewTaskInput,
        origin_issue: Option<String>,
    ) -> Result<TaskRow, TaskError> {
        let s = self.services;
        if let RepoSource::Remote { url } = input.repo.source() {
            s.forge
                .mirrors
                .check(url)
                .await
                .map_err(|e| TaskError::invalid("repo", e.to_string()))?;
        }
        if let Some(image) = &input.image {
            crate::policy::image_allowed(
                &s.config,
                s.sandboxes.images(),
                image.as_str(),
                actor.user.id,
            )
            .await
            .map_err(|why| TaskError::invalid("image", why))?;
        }
        self.check_limits(actor)?;
        let id = TaskId::generate();
        let row = s
            .store
            .create_task(NewTask {
                branch: task_branch(&id, input.prompt.as_str()),
                id,
                user_id: actor.user.id,
                repo: input.repo.as_str().to_owned(),
                title: input.prompt.title(),
                prompt: input.prompt.into_string(),
                base_branch: input.base_branch.map(BranchName::into_string),
                model: input
                    .model
                    .map_or_else(|| s.config.model.name.clone(), ModelId::into_string),
                image: input.image.map(ImageRef::into_string),
                origin_issue,
            })
            .await?;
        s.scheduler.wake();
        Ok(row)
    }

    /// A task the actor may see; others' answer [`TaskError::NotFound`] like missing ones.
    pub fn get(&self, actor: &Actor, id: &str) -> Result<TaskRow, TaskError> {
        let id = TaskId::parse(id).ok_or(TaskError::NotFound)?;
        let row = self
            .services
            .store
            .get_task(&id)?
            .ok_or(TaskError::NotFound)?;
        if !actor.may_see(row.user_id) {
            return Err(TaskError::NotFound);
        }
        Ok(row)
    }

    /// The actor's tasks (everyone's for an operator), newest first.
    pub fn list(&self, actor: &Actor, q: ListTasksQuery) -> Result<TaskPage, TaskError> {
        let status = match q.status.as_deref() {
            Some(s) => Some(
                TaskStatus::parse(s)
                    .ok_or_else(|| TaskError::invalid("status", format!("unknown status {s:?}")))?,
            ),
            None => None,
        };
        let cursor = match q.cursor.as_deref() {
            Some(c) => Some(
                TaskCursor::decode(c)
                    .ok_or_else(|| TaskError::invalid("cursor", "is not a cursor from this API"))?,
            ),
            None => None,
        };
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(TaskError::invalid("limit", "must be between 1 and 200"));
        }
        let filter = TaskFilter {
            user_id: (!actor.is_operator()).then_some(actor.user.id),
            status,
            repo: q.repo,
        };
        let (tasks, next) = self
            .services
            .store
            .list_tasks(&filter, cursor.as_ref(), limit)?;
        Ok(TaskPage { tasks, next })
    }

    /// Gives a task more to do: delivered to a running one, or a finished one
    /// goes back to the queue.
    pub async fn follow_up(
        &self,
        actor: &Actor,
        id: &str,
        text: String,
    ) -> Result<TaskRow, TaskError> {
        let row = self.get(actor, id)?;
        let text = Prompt::parse("text", text, self.services.config.limits.max_prompt_bytes)?;
        if row.status.is_terminal() {
            self.check_limits(actor)?;
        }
        let store = &self.services.store;
        store.follow_up(&row.id, text.into_string()).await?;
        self.services.scheduler.wake();
        store.get_task(&row.id)?.ok_or(TaskError::NotFound)
    }

    /// Cancels a task: at once when queued, through its runner when running.
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<TaskRow, TaskError> {
        let row = self.get(actor, id)?;
        let reason = format!("cancelled by {}", actor.user.login);
        let outcome = self.services.scheduler.cancel(&row.id, reason).await?;
        if outcome == CancelOutcome::AlreadyFinished {
            return Err(TaskError::Conflict(format!(
                "the task already finished ({})",
                row.status
            )));
        }
        self.services
            .store
            .get_task(&row.id)?
            .ok_or(TaskError::NotFound)
    }

    /// Stored events after `after`, as their JSON, at most `limit`.
    pub fn events(
        &self,
        actor: &Actor,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, TaskError> {
        let row = self.get(actor, id)?;
        if !(1..=10_000).contains(&limit) {
            return Err(TaskError::invalid("limit", "must be between 1 and 10000"));
        }
        Ok(self
            .services
            .store
            .events_after_json(&row.id, after, limit)?)
    }

    /// Per-user and per-address task limits, and the cap on a user's queued or
    /// running tasks.
    fn check_limits(&self, actor: &Actor) -> Result<(), TaskError> {
        let s = self.services;
        let limits = &s.config.auth.rate_limits;
        let limited = |wait| TaskError::RateLimited {
            message: "too many tasks started; wait a moment".into(),
            retry_after: wait,
        };
        let user = actor.user.id.to_string();
        let limiter = &s.auth.limiter;
        limiter
            .check("tasks-user", &user, limits.tasks_per_user)
            .map_err(limited)?;
        if let Some(ip) = actor.client_ip() {
            limiter
                .check_ip("tasks-ip", ip, limits.tasks_per_ip)
                .map_err(limited)?;
        }
        let cap = s.config.auth.max_active_tasks_per_user;
        if s.store.active_task_count(actor.user.id)? >= cap {
            return Err(TaskError::RateLimited {
                message: format!(
                    "you have {cap} tasks queued or running (auth.max_active_tasks_per_user); wait for one to finish"
                ),
                retry_after: std::time::Duration::from_secs(30),
            });
        }
        Ok(())
    }
}
