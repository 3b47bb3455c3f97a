//! What GitHub integration keeps: pull requests of tasks, and webhook deliveries seen.

use dockhand_protocol::EventBody;
use dockhand_protocol::PullRequestEvent;
use dockhand_protocol::TaskId;
use rusqlite::OptionalExtension;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::TaskRow;
use crate::User;
use crate::tasks::COLUMNS;
use crate::tasks::row_to_task;
use crate::users::user_from_row;

impl Store {
    /// Records a task's pull request, with its `pull_request` event.
    pub async fn set_pull_request(
        &self,
        id: &TaskId,
        url: String,
        number: u64,
        updated: bool,
    ) -> Result<()> {
        let id = id.clone();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE tasks SET pr_url = ?2, pr_number = ?3, updated_at = ?4 WHERE id = ?1",
                params![id.as_str(), url, number as i64, ctx.now()],
            )?;
            ctx.emit(
                &id,
                EventBody::PullRequest(PullRequestEvent {
                    url,
                    number,
                    updated,
                }),
            )?;
            Ok(())
        })
        .await
    }

    /// The task whose pull request is `number` on `repo` (as the task named the repository).
    pub fn task_by_pull_request(&self, repos: &[String], number: u64) -> Result<Option<TaskRow>> {
        self.read(|c| {
            for repo in repos {
                let found = c
                    .query_row(
                        &format!("SELECT {COLUMNS} FROM tasks WHERE repo = ?1 AND pr_number = ?2 ORDER BY created_at DESC LIMIT 1"),
                        params![repo, number as i64],
                        row_to_task,
                    )
                    .optional()?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            Ok(None)
        })
    }

    /// Records a webhook delivery id; false when it was seen before.
    pub async fn first_delivery(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.transact(move |ctx| {
            let n = ctx.conn().execute(
                "INSERT INTO webhook_deliveries (id, received_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![id, ctx.now()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// The user signed in with GitHub account `github_id`.
    pub fn user_by_github_id(&self, github_id: i64) -> Result<Option<User>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id, login, role FROM users WHERE github_id = ?1",
                [github_id],
                |r| user_from_row(r, 0),
            )
            .optional()?)
        })
    }

    /// A user's login and GitHub id.
    pub fn user_identity(&self, user_id: i64) -> Result<Option<(String, Option<i64>)>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT login, github_id FROM users WHERE id = ?1",
                [user_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
    }

    /// Some operator with a stored GitHub token (to reply to people who have none).
    pub fn operator_with_github_token(&self) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id FROM users WHERE role = 'operator' AND github_token IS NOT NULL ORDER BY last_login_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
    }
}
