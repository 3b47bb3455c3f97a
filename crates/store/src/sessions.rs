//! Sessions: browser sessions (a cookie, stored hashed) and CLI sessions (short
//! access JWTs plus rotating refresh tokens, stored hashed). Revoking a session
//! revokes everything issued under it; reusing a spent refresh token revokes the
//! session, since it means the token was stolen.

use rusqlite::OptionalExtension;
use rusqlite::params;

use crate::Result;
use crate::Store;
use crate::User;
use crate::column::text_column;
use crate::users::user_from_row;

/// How a session's holder proves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A browser, by cookie.
    Web,
    /// The CLI, by access JWTs and rotating refresh tokens.
    Cli,
}

text_column!(SessionKind {
    Web => "web",
    Cli => "cli",
});

/// What a refresh did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The token was good and is now spent; a new one was stored.
    Rotated {
        /// The session.
        session: String,
        /// Its user.
        user: User,
    },
    /// The token had been used already: the session is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

impl Store {
    /// Starts a session for `user_id`, with its cookie hash (browser) or first refresh
    /// token hash (CLI). Returns the session id.
    pub async fn create_session(
        &self,
        id: String,
        user_id: i64,
        kind: SessionKind,
        cookie_hash: Option<String>,
        refresh_hash: Option<String>,
        expires_at: i64,
    ) -> Result<String> {
        self.transact(move |ctx| {
            let now = ctx.now();
            ctx.conn().execute(
                "INSERT INTO sessions (id, user_id, kind, cookie_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, user_id, kind, cookie_hash, now, expires_at],
            )?;
            if let Some(hash) = refresh_hash {
                ctx.conn().execute(
                    "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)",
                    params![hash, id, now],
                )?;
            }
            ctx.conn().execute("UPDATE users SET last_login_at = ?2 WHERE id = ?1", params![user_id, now])?;
            Ok(id)
        })
        .await
    }

    /// The user of a live browser session with this cookie hash, and the session id.
    pub fn session_by_cookie(&self, cookie_hash: &str, now: i64) -> Result<Option<(String, User)>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT s.id, u.id, u.login, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.cookie_hash = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2",
                params![cookie_hash, now],
                |r| Ok((r.get(0)?, user_from_row(r, 1)?)),
            )
            .optional()?)
        })
    }

    /// The user of a live session `id` (for access JWTs, which name their session).
    pub fn live_session(&self, id: &str, now: i64) -> Result<Option<User>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT u.id, u.login, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2",
                params![id, now],
                |r| user_from_row(r, 0),
            )
            .optional()?)
        })
    }

    /// Spends refresh token `hash` and stores `new_hash` in its place.
    pub async fn rotate_refresh(&self, hash: String, new_hash: String) -> Result<Refresh> {
        self.transact(move |ctx| {
            let now = ctx.now();
            let row: Option<(String, Option<i64>)> = ctx
                .conn()
                .query_row(
                    "SELECT session_id, used_at FROM refresh_tokens WHERE hash = ?1",
                    [&hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((session, used_at)) = row else {
                return Ok(Refresh::Invalid);
            };
            if used_at.is_some() {
                ctx.conn().execute(
                    "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![session, now],
                )?;
                return Ok(Refresh::Reused);
            }
            let user: Option<User> = ctx
                .conn()
                .query_row(
                    "SELECT u.id, u.login, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2",
                    params![session, now],
                    |r| user_from_row(r, 0),
                )
                .optional()?;
            let Some(user) = user else {
                return Ok(Refresh::Invalid);
            };
            ctx.conn().execute(
                "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                params![hash, now],
            )?;
            ctx.conn().execute(
                "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)",
                params![new_hash, session, now],
            )?;
            Ok(Refresh::Rotated { session, user })
        })
        .await
    }

    /// The session a refresh token belongs to, if the token is known.
    pub fn session_of_refresh(&self, hash: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT session_id FROM refresh_tokens WHERE hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Revokes session `id`; true when it was live.
    pub async fn revoke_session(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.transact(move |ctx| {
            let n = ctx.conn().execute(
                "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, ctx.now()],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
