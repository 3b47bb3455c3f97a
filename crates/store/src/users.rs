//! Users and API tokens. Tokens are stored as SHA-256 hashes only.

use rusqlite::OptionalExtension;
use rusqlite::params;

use crate::Result;
use crate::Store;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserRole {
    /// Sees their own tasks.
    User,
    /// Sees every task and may use operator-only routes.
    Operator,
}

impl UserRole {
    fn as_str(self) -> &'static str {
        match self {
            UserRole::User => "user",
            UserRole::Operator => "operator",
        }
    }

    fn parse(s: &str) -> UserRole {
        if s == "operator" {
            UserRole::Operator
        } else {
            UserRole::User
        }
    }
}

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

/// Kinds of stored token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The local-auth admin token.
    Admin,
    /// A personal API token.
    Personal,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Personal => "personal",
        }
    }
}

impl Store {
    /// The user with `login`, created with `role` if missing.
    pub async fn ensure_user(&self, login: &str, role: UserRole) -> Result<User> {
        let login = login.to_owned();
        self.transact(move |ctx| {
            ctx.conn().execute(
                "INSERT INTO users (login, role, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (login) DO NOTHING",
                params![login, role.as_str(), ctx.now()],
            )?;
            let (id, role): (i64, String) = ctx.conn().query_row(
                "SELECT id, role FROM users WHERE login = ?1",
                [&login],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(User {
                id,
                login,
                role: UserRole::parse(&role),
            })
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
                params![user_id, name, kind.as_str(), hash, ctx.now()],
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
                params![kind.as_str(), ctx.now()],
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
                [kind.as_str()],
                |r| r.get(0),
            )?;
            Ok(n > 0)
        })
    }

    /// The user owning the unrevoked token with this hash.
    pub fn user_by_token_hash(&self, hash: &str) -> Result<Option<User>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT u.id, u.login, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.hash = ?1 AND t.revoked_at IS NULL",
                [hash],
                |r| {
                    Ok(User {
                        id: r.get(0)?,
                        login: r.get(1)?,
                        role: UserRole::parse(&r.get::<_, String>(2)?),
                    })
                },
            )
            .optional()?)
        })
    }
}
