//! Users and API tokens. Tokens are stored as SHA-256 hashes only.

use rusqlite::OptionalExtension;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::column::text_column;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    /// Sees their own tasks.
    User,
    /// Sees every task and may use operator-only routes.
    Operator,
}

text_column!(UserRole {
    User => "user",
    Operator => "operator",
});

/// A user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Role.
    pub role: UserRole,
}

/// Reads `id, login, role` starting at column `at`.
pub(crate) fn user_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(at)?,
        login: r.get(at + 1)?,
        role: r.get(at + 2)?,
    })
}

/// A personal API token as listed (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Created, ms.
    pub created_at: i64,
    /// Last used, ms.
    pub last_used_at: Option<i64>,
}

/// Kinds of stored token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The local-auth admin token.
    Admin,
    /// A personal API token.
    Personal,
}

text_column!(TokenKind {
    Admin => "admin",
    Personal => "personal",
});

/// A user's GitHub token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGitHubToken {
    /// The token, encrypted by the coordinator's keys.
    pub sealed: String,
    /// The scopes GitHub granted, as GitHub listed them (empty when unknown).
    pub scopes: String,
}

impl Store {
    /// The user with `login`, created with `role` if missing.
    pub async fn ensure_user(&self, login: &str, role: UserRole) -> Result<User> {
        let login = login.to_owned();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO users (login, role, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (login) DO NOTHING",
                params![login, role, ctx.now()],
            )?;
            let (id, role) = ctx.conn().query_row(
                "SELECT id, role FROM users WHERE login = ?1",
                [&login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(User { id, login, role })
        })
        .await
    }

    /// Stores a token hash; returns the token's id.
    pub async fn insert_token(
        &self,
        user_id: i64,
        name: &str,
        kind: TokenKind,
        hash: String,
    ) -> Result<i64> {
        let name = name.to_owned();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO api_tokens (user_id, name, kind, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, name, kind, hash, ctx.now()],
            )?;
            Ok(ctx.conn().last_insert_rowid())
        })
        .await
    }

    /// Revokes every token of `kind`.
    pub async fn revoke_tokens_of_kind(&self, kind: TokenKind) -> Result<()> {
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE kind = ?1 AND revoked_at IS NULL",
                params![kind, ctx.now()],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether an unrevoked token of `kind` exists.
    pub fn has_token_of_kind(&self, kind: TokenKind) -> Result<bool> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM api_tokens WHERE kind = ?1 AND revoked_at IS NULL",
                [kind],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        })
    }

    /// The user owning the unrevoked token with this hash, and the token's id. Records
    /// the use (at most once a minute, to spare the writer).
    pub fn user_by_token_hash(&self, hash: &str) -> Result<Option<User>> {
        let found: Option<(User, i64, Option<i64>)> = self.read(|c| {
            Ok(c.query_row(
                "SELECT u.id, u.login, u.role, t.id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.hash = ?1 AND t.revoked_at IS NULL",
                [hash],
                |r| Ok((user_from_row(r, 0)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?)
        })?;
        let Some((user, token_id, last)) = found else {
            return Ok(None);
        };
        let now = crate::now_ms();
        if last.is_none_or(|l| now - l > 60_000) {
            // Fire and forget: a lost update only makes "last used" a minute stale.
            let _ = self.touch_token(token_id, now);
        }
        Ok(Some(user))
    }

    /// The user signed in with GitHub account `github_id`, created or updated.
    pub async fn upsert_github_user(
        &self,
        github_id: i64,
        login: &str,
        role: UserRole,
    ) -> Result<User> {
        let login = login.to_owned();
        self.transact(move |ctx| {
            let now = ctx.now();
            // Logins can change on GitHub; the id cannot. A local user of the same
            // login (none but `admin` exist) is not taken over.
            let existing: Option<i64> = ctx
                .conn()
                .query_row("SELECT id FROM users WHERE github_id = ?1", [github_id], |r| r.get(0))
                .optional()?;
            let id = match existing {
                Some(id) => {
                    ctx.conn().execute(
                        "UPDATE users SET login = ?2, role = ?3 WHERE id = ?1",
                        params![id, login, role],
                    )?;
                    id
                }
                None => {
                    ctx.conn().execute(
                        "INSERT INTO users (login, github_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![login, github_id, role, now],
                    )?;
                    ctx.conn().last_insert_rowid()
                }
            };
            Ok(User { id, login, role })
        })
        .await
    }

    /// Stores a user's GitHub token, already encrypted, and its scopes.
    pub async fn set_github_token(
        &self,
        user_id: i64,
        sealed: String,
        scopes: String,
    ) -> Result<()> {
        self.transact(move |ctx| {
            ctx.conn().execute(
                "UPDATE users SET github_token = ?2, github_scopes = ?3 WHERE id = ?1",
                params![user_id, sealed, scopes],
            )?;
            Ok(())
        })
        .await
    }

    /// A user's encrypted GitHub token and its scopes.
    pub fn github_token(&self, user_id: i64) -> Result<Option<StoredGitHubToken>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT github_token, COALESCE(github_scopes, '') FROM users WHERE id = ?1 AND github_token IS NOT NULL",
                [user_id],
                |r| {
                    Ok(StoredGitHubToken {
                        sealed: r.get(0)?,
                        scopes: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
    }

    /// A user's unrevoked personal tokens, newest first.
    pub fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, name, created_at, last_used_at FROM api_tokens \
                 WHERE user_id = ?1 AND kind = ?2 AND revoked_at IS NULL ORDER BY id DESC",
            )?;
            let rows = stmt.query_map(params![user_id, TokenKind::Personal], |r| {
                Ok(TokenInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                    last_used_at: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Revokes a user's personal token; false when it is not theirs or already revoked.
    pub async fn revoke_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        self.transact(move |ctx| {
            let n = ctx.conn().execute(
                "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND kind = ?4 AND revoked_at IS NULL",
                params![token_id, user_id, ctx.now(), TokenKind::Personal],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Tasks of `user_id` that are queued or running.
    pub fn active_task_count(&self, user_id: i64) -> Result<u64> {
        self.read(|c| {
            let n: i64 = c.query_row(
                "SELECT COUNT(*) FROM tasks WHERE user_id = ?1 AND status IN ('queued', 'provisioning', 'running', 'publishing')",
                [user_id],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }
}
