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
use crate::UserRole;
use crate::tasks::COLUMNS;
use crate::tasks::row_to_task;
use crate::users::user_from_row;

/// Who a user is, for speaking of them on GitHub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIdentity {
    /// Their login.
    pub login: String,
    /// Their GitHub account id; `None` for local users.
    pub github_id: Option<i64>,
}

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

    /// Records a webhook delivery by id and by a hash of its signed body; false
    /// when either was seen before (a replay under a new id included).
    pub async fn first_delivery(&self, id: &str, body_hash: &str) -> Result<bool> {
        let (id, body_hash) = (id.to_owned(), body_hash.to_owned());
        self.transact(move |ctx| {
            let n = ctx.conn().execute(
                "INSERT INTO webhook_deliveries (id, body_hash, received_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![id, body_hash, ctx.now()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Forgets webhook deliveries received before `before` (ms), and sessions
    /// that expired or were revoked before it, with their refresh tokens.
    /// Returns how many rows went.
    pub async fn prune(&self, before: i64) -> Result<usize> {
        self.transact(move |ctx| {
            let c = ctx.conn();
            let mut n = c.execute(
                "DELETE FROM webhook_deliveries WHERE received_at < ?1",
                [before],
            )?;
            let dead = "SELECT id FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1";
            n += c.execute(
                &format!("DELETE FROM refresh_tokens WHERE session_id IN ({dead})"),
                [before],
            )?;
            n += c.execute(
                &format!("DELETE FROM sessions WHERE id IN ({dead})"),
                [before],
            )?;
            Ok(n)
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
    pub fn user_identity(&self, user_id: i64) -> Result<Option<UserIdentity>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT login, github_id FROM users WHERE id = ?1",
                [user_id],
                |r| {
                    Ok(UserIdentity {
                        login: r.get(0)?,
                        github_id: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    /// Some operator with a stored GitHub token (to reply to people who have none).
    pub fn operator_with_github_token(&self) -> Result<Option<i64>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id FROM users WHERE role = ?1 AND github_token IS NOT NULL ORDER BY last_login_at DESC LIMIT 1",
                [UserRole::Operator],
                |r| r.get(0),
            )
            .optional()?)
        })
    }
}
