//! Task rows and their lifecycle. Every status change is a row update and a
//! `status` event in one transaction.

use dockhand_protocol::EventBody;
use dockhand_protocol::PullRequestRef;
use dockhand_protocol::SandboxRef;
use dockhand_protocol::StatusEvent;
use dockhand_protocol::Task;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::TokenUsage;
use dockhand_protocol::UsageEvent;
use dockhand_protocol::UserMessageEvent;
use rusqlite::Connection;
use rusqlite::OptionalExtension;
use rusqlite::Row;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::StoreError;
use crate::time::rfc3339;
use crate::writer::JobCtx;

/// A task to insert.
#[derive(Clone, Debug)]
pub struct NewTask {
    /// Its id.
    pub id: TaskId,
    /// Its owner.
    pub user_id: i64,
    /// Repository as given.
    pub repo: String,
    /// First prompt.
    pub prompt: String,
    /// Short title.
    pub title: String,
    /// Base branch, if given.
    pub base_branch: Option<String>,
    /// Task branch.
    pub branch: String,
    /// Model id.
    pub model: String,
    /// Sandbox image asked for.
    pub image: Option<String>,
    /// The GitHub issue that started it (`owner/name#N`).
    pub origin_issue: Option<String>,
}

/// A task row.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// Its id.
    pub id: TaskId,
    /// Its owner.
    pub user_id: i64,
    /// Repository as given.
    pub repo: String,
    /// First prompt.
    pub prompt: String,
    /// Short title.
    pub title: String,
    /// Base branch, if given.
    pub base_branch: Option<String>,
    /// Task branch.
    pub branch: String,
    /// Model id.
    pub model: String,
    /// Status.
    pub status: TaskStatus,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
    /// Last run ended, ms.
    pub finished_at: Option<i64>,
    /// A cancel was asked for while a runner owned the task.
    pub cancel_requested: bool,
    /// The sandbox serving it.
    pub sandbox: Option<SandboxRef>,
    /// Tokens used.
    pub usage: TokenUsage,
    /// Model turns taken.
    pub turns: u32,
    /// The pull request, if any.
    pub pull_request: Option<PullRequestRef>,
    /// Last committed event seq.
    pub last_seq: u64,
    /// The branch the workspace was cloned from, once cloned.
    pub base_ref: Option<String>,
    /// The commit the task branch started at, once cloned.
    pub base_commit: Option<String>,
    /// The host directory of the workspace, once chosen.
    pub workspace: Option<String>,
    /// The repository's environment (JSON), read from the fresh clone.
    pub environment: Option<String>,
    /// Whether the repository's `prepare` commands have run.
    pub prepared: bool,
    /// Whether the agent may have changed the workspace since the last publish.
    pub workspace_dirty: bool,
    /// When the work was last handed back, ms.
    pub published_at: Option<i64>,
    /// When `dockhand gc` removed the workspace, ms.
    pub workspace_removed_at: Option<i64>,
    /// The sandbox image the task asked for.
    pub image: Option<String>,
    /// The GitHub issue that started the task (`owner/name#N`).
    pub origin_issue: Option<String>,
}

impl TaskRow {
    /// The API view.
    pub fn to_api(&self) -> Task {
        Task {
            id: self.id.clone(),
            repo: self.repo.clone(),
            prompt: self.prompt.clone(),
            title: self.title.clone(),
            base_branch: self.base_branch.clone(),
            branch: self.branch.clone(),
            model: self.model.clone(),
            image: self.image.clone(),
            status: self.status,
            error: self.error.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            finished_at: self.finished_at.map(rfc3339),
            sandbox: self.sandbox.clone(),
            usage: self.usage,
            turns: self.turns,
            last_seq: self.last_seq,
            pull_request: self.pull_request.clone(),
        }
    }
}

pub(crate) const COLUMNS: &str = "id, user_id, repo, prompt, title, base_branch, branch, model, status, error, \
     created_at, updated_at, finished_at, cancel_requested, sandbox_backend, sandbox_id, \
     input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, turns, pr_url, pr_number, \
     (SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.task_id = tasks.id), base_ref, base_commit, \
     workspace, environment, prepared, workspace_dirty, published_at, workspace_removed_at, image, origin_issue";

pub(crate) fn row_to_task(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let status: String = r.get(8)?;
    let backend: Option<String> = r.get(14)?;
    let sandbox_id: Option<String> = r.get(15)?;
    let pr_url: Option<String> = r.get(21)?;
    let pr_number: Option<i64> = r.get(22)?;
    Ok(TaskRow {
        id: TaskId::from_stored(r.get(0)?),
        user_id: r.get(1)?,
        repo: r.get(2)?,
        prompt: r.get(3)?,
        title: r.get(4)?,
        base_branch: r.get(5)?,
        branch: r.get(6)?,
        model: r.get(7)?,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        error: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        finished_at: r.get(12)?,
        cancel_requested: r.get::<_, i64>(13)? != 0,
        sandbox: backend
            .zip(sandbox_id)
            .map(|(backend, id)| SandboxRef { backend, id }),
        usage: TokenUsage {
            input_tokens: r.get::<_, i64>(16)? as u64,
            output_tokens: r.get::<_, i64>(17)? as u64,
            cache_creation_input_tokens: r.get::<_, i64>(18)? as u64,
            cache_read_input_tokens: r.get::<_, i64>(19)? as u64,
        },
        turns: r.get::<_, i64>(20)? as u32,
        pull_request: pr_url.zip(pr_number).map(|(url, n)| PullRequestRef {
            url,
            number: n as u64,
        }),
        last_seq: r.get::<_, i64>(23)? as u64,
        base_ref: r.get(24)?,
        base_commit: r.get(25)?,
        workspace: r.get(26)?,
        environment: r.get(27)?,
        prepared: r.get::<_, i64>(28)? != 0,
        workspace_dirty: r.get::<_, i64>(29)? != 0,
        published_at: r.get(30)?,
        workspace_removed_at: r.get(31)?,
        image: r.get(32)?,
        origin_issue: r.get(33)?,
    })
}

fn load(c: &Connection, id: &TaskId) -> Result<Option<TaskRow>> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
        [id.as_str()],
        row_to_task,
    )
    .optional()?)
}

fn next_queue_pos(c: &Connection) -> Result<i64> {
    let v: String = c.query_row(
        "INSERT INTO meta (key, value) VALUES ('queue_pos', '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) \
         RETURNING value",
        [],
        |r| r.get(0),
    )?;
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("meta queue_pos is not a number: {v}")))
}

/// Changes status inside a job when the current status is one of `from`; emits the
/// `status` event. Returns false (and changes nothing) otherwise.
pub(crate) fn transition(
    ctx: &mut JobCtx<'_>,
    id: &TaskId,
    from: &[TaskStatus],
    to: TaskStatus,
    message: Option<String>,
) -> Result<bool> {
    debug_assert!(from.iter().all(|f| f.can_go_to(to)), "{from:?} -> {to}");
    let now = ctx.now();
    let current: Option<String> = ctx
        .conn()
        .query_row(
            "SELECT status FROM tasks WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(format!("task {id}")));
    };
    if !from.iter().any(|s| s.as_str() == current) {
        return Ok(false);
    }
    let queue_pos = if to == TaskStatus::Queued {
        Some(next_queue_pos(ctx.conn())?)
    } else {
        None
    };
    let error = matches!(to, TaskStatus::Failed | TaskStatus::Cancelled)
        .then(|| message.clone())
        .flatten();
    ctx.conn().execute(
        "UPDATE tasks SET status = ?2, updated_at = ?3, \
           error = CASE WHEN ?2 IN ('failed', 'cancelled') THEN ?4 WHEN ?2 = 'succeeded' THEN NULL ELSE error END, \
           finished_at = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled') THEN ?3 ELSE finished_at END, \
           queue_pos = COALESCE(?5, queue_pos), \
           cancel_requested = CASE WHEN ?2 IN ('queued', 'succeeded', 'failed', 'cancelled') THEN 0 ELSE cancel_requested END, \
           workspace_dirty = CASE WHEN ?2 = 'running' THEN 1 ELSE workspace_dirty END \
         WHERE id = ?1",
        params![id.as_str(), to.as_str(), now, error, queue_pos],
    )?;
    ctx.emit(
        id,
        EventBody::Status(StatusEvent {
            status: to,
            message,
        }),
    )?;
    Ok(true)
}

/// How many tasks are in one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCount {
    /// The status.
    pub status: TaskStatus,
    /// Tasks in it.
    pub tasks: u64,
}

/// What a follow-up did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowUpOutcome {
    /// The task had finished and is queued again.
    Requeued,
    /// The task is queued or running; the runner picks the message up between turns.
    Delivered,
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was queued and is now cancelled.
    Cancelled,
    /// A runner owns the task; it has been asked to stop.
    Requested,
    /// The task had already finished.
    AlreadyFinished,
}

/// Filters for [`Store::list_tasks`].
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Only this user's tasks (`None`: everyone's, for operators).
    pub user_id: Option<i64>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks on this repository (exact match).
    pub repo: Option<String>,
}

/// A position in the task list: tasks strictly older than this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCursor {
    /// Creation time, ms.
    pub created_at: i64,
    /// Id, to break ties.
    pub id: String,
}

impl TaskCursor {
    /// Opaque text form.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    /// Parses the text form; `None` when it is not one.
    pub fn decode(s: &str) -> Option<TaskCursor> {
        let (ms, id) = s.split_once('.')?;
        let created_at = ms.parse().ok()?;
        TaskId::parse(id)?;
        Some(TaskCursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

impl Store {
    /// Inserts a queued task with its prompt waiting in the inbox.
    pub async fn create_task(&self, t: NewTask) -> Result<TaskRow> {
        self.transact(move |ctx| {
            let now = ctx.now();
            let pos = next_queue_pos(ctx.conn())?;
            ctx.conn().execute(
                "INSERT INTO tasks (id, user_id, repo, prompt, title, base_branch, branch, model, status, \
                   created_at, updated_at, queue_pos, image, origin_issue) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?9, ?10, ?11, ?12)",
                params![t.id.as_str(), t.user_id, t.repo, t.prompt, t.title, t.base_branch, t.branch, t.model, now, pos, t.image, t.origin_issue],
            )?;
            ctx.conn().execute(
                "INSERT INTO inbox (task_id, text, created_at) VALUES (?1, ?2, ?3)",
                params![t.id.as_str(), t.prompt, now],
            )?;
            ctx.emit(&t.id, EventBody::Status(StatusEvent { status: TaskStatus::Queued, message: None }))?;
            ctx.emit(&t.id, EventBody::UserMessage(UserMessageEvent { text: t.prompt.clone() }))?;
            load(ctx.conn(), &t.id)?.ok_or_else(|| StoreError::NotFound(format!("task {}", t.id)))
        })
        .await
    }

    /// A task row.
    pub fn get_task(&self, id: &TaskId) -> Result<Option<TaskRow>> {
        self.read(|c| load(c, id))
    }

    /// Tasks newest first, `limit` per page, with the cursor of the next page.
    pub fn list_tasks(
        &self,
        filter: &TaskFilter,
        before: Option<&TaskCursor>,
        limit: usize,
    ) -> Result<(Vec<TaskRow>, Option<TaskCursor>)> {
        self.read(|c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tasks \
                 WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR repo = ?3) \
                   AND (?4 IS NULL OR created_at < ?4 OR (created_at = ?4 AND id < ?5)) \
                 ORDER BY created_at DESC, id DESC LIMIT ?6"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    filter.user_id,
                    filter.status.map(|s| s.as_str()),
                    filter.repo,
                    before.map(|b| b.created_at),
                    before.map(|b| b.id.as_str()),
                    (limit + 1) as i64
                ],
                row_to_task,
            )?;
            let mut tasks = rows.collect::<Result<Vec<_>, _>>()?;
            let next = if tasks.len() > limit {
                tasks.truncate(limit);
                tasks.last().map(|t| TaskCursor {
                    created_at: t.created_at,
                    id: t.id.as_str().to_owned(),
                })
            } else {
                None
            };
            Ok((tasks, next))
        })
    }

    /// How many tasks are in each status.
    pub fn count_by_status(&self) -> Result<Vec<StatusCount>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (s, n) = row?;
                if let Some(status) = TaskStatus::parse(&s) {
                    out.push(StatusCount {
                        status,
                        tasks: n as u64,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Tasks a runner owned when the coordinator stopped (provisioning, running, publishing).
    pub fn active_tasks(&self) -> Result<Vec<TaskRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tasks WHERE status IN ('provisioning', 'running', 'publishing') ORDER BY queue_pos"
            ))?;
            let rows = stmt.query_map([], row_to_task)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Moves the oldest queued task to `provisioning` and returns it.
    pub async fn claim_next(&self) -> Result<Option<TaskRow>> {
        self.transact(|ctx| {
            let id: Option<String> = ctx
                .conn()
                .query_row(
                    "SELECT id FROM tasks WHERE status = 'queued' ORDER BY queue_pos LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id.map(TaskId::from_stored) else {
                return Ok(None);
            };
            transition(
                ctx,
                &id,
                &[TaskStatus::Queued],
                TaskStatus::Provisioning,
                None,
            )?;
            load(ctx.conn(), &id)
        })
        .await
    }

    /// Sets the status if the status machine ([`TaskStatus::can_go_to`]) allows it
    /// from the current one; returns whether it changed.
    pub async fn set_status(
        &self,
        id: &TaskId,
        to: TaskStatus,
        message: Option<String>,
    ) -> Result<bool> {
        let id = id.clone();
        let from = TaskStatus::sources_of(to);
        self.transact(move |ctx| transition(ctx, &id, &from, to, message))
            .await
    }

    /// Queues a follow-up message; a finished task goes back to `queued`.
    pub async fn follow_up(&self, id: &TaskId, text: String) -> Result<FollowUpOutcome> {
        let id = id.clone();
        self.transact(move |ctx| {
            let now = ctx.now();
            let status: String = ctx
                .conn()
                .query_row(
                    "SELECT status FROM tasks WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
            ctx.conn().execute(
                "INSERT INTO inbox (task_id, text, created_at) VALUES (?1, ?2, ?3)",
                params![id.as_str(), text, now],
            )?;
            ctx.emit(&id, EventBody::UserMessage(UserMessageEvent { text }))?;
            let finished = TaskStatus::parse(&status).is_some_and(TaskStatus::is_terminal);
            if finished {
                let from = TaskStatus::sources_of(TaskStatus::Queued);
                transition(
                    ctx,
                    &id,
                    &from,
                    TaskStatus::Queued,
                    Some("follow-up".into()),
                )?;
                Ok(FollowUpOutcome::Requeued)
            } else {
                Ok(FollowUpOutcome::Delivered)
            }
        })
        .await
    }

    /// Cancels a queued task at once, or marks an owned one for its runner to stop.
    pub async fn cancel(&self, id: &TaskId, message: String) -> Result<CancelOutcome> {
        let id = id.clone();
        self.transact(move |ctx| {
            if transition(
                ctx,
                &id,
                &[TaskStatus::Queued],
                TaskStatus::Cancelled,
                Some(message),
            )? {
                ctx.conn()
                    .execute("DELETE FROM inbox WHERE task_id = ?1", [id.as_str()])?;
                return Ok(CancelOutcome::Cancelled);
            }
            let changed = ctx.conn().execute(
                "UPDATE tasks SET cancel_requested = 1 \
                 WHERE id = ?1 AND status IN ('provisioning', 'running', 'publishing')",
                [id.as_str()],
            )?;
            Ok(if changed > 0 {
                CancelOutcome::Requested
            } else {
                CancelOutcome::AlreadyFinished
            })
        })
        .await
    }

    /// Records what the workspace was cloned from.
    pub async fn set_base(&self, id: &TaskId, base_ref: String, base_commit: String) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET base_ref = ?2, base_commit = ?3, updated_at = ?4 WHERE id = ?1",
                params![id.as_str(), base_ref, base_commit, ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the sandbox serving a task.
    pub async fn set_sandbox(&self, id: &TaskId, sandbox: Option<SandboxRef>) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET sandbox_backend = ?2, sandbox_id = ?3, updated_at = ?4 WHERE id = ?1",
                params![
                    id.as_str(),
                    sandbox.as_ref().map(|s| s.backend.as_str()),
                    sandbox.as_ref().map(|s| s.id.as_str()),
                    ctx.now()
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Adds one turn's usage to the task and emits a `usage` event; returns the total.
    pub async fn record_usage(&self, id: &TaskId, turn: TokenUsage) -> Result<TokenUsage> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET input_tokens = input_tokens + ?2, output_tokens = output_tokens + ?3, \
                   cache_creation_tokens = cache_creation_tokens + ?4, cache_read_tokens = cache_read_tokens + ?5, \
                   turns = turns + 1, updated_at = ?6 WHERE id = ?1",
                params![
                    id.as_str(),
                    turn.input_tokens as i64,
                    turn.output_tokens as i64,
                    turn.cache_creation_input_tokens as i64,
                    turn.cache_read_input_tokens as i64,
                    ctx.now()
                ],
            )?;
            let total = load(ctx.conn(), &id)?
                .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?
                .usage;
            ctx.emit(&id, EventBody::Usage(UsageEvent { turn, total }))?;
            Ok(total)
        })
        .await
    }
}
