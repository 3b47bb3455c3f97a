//! Migrations, applied in order at start-up; `PRAGMA user_version` records how far.
//! Keep the SQL portable (no SQLite-only types) so it can later run on PostgreSQL.

use rusqlite::Connection;

use crate::Result;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema. Times are milliseconds since the Unix epoch.
    r#"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        login TEXT NOT NULL UNIQUE,
        github_id INTEGER UNIQUE,
        name TEXT,
        role TEXT NOT NULL DEFAULT 'user',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        repo TEXT NOT NULL,
        prompt TEXT NOT NULL,
        title TEXT NOT NULL,
        base_branch TEXT,
        branch TEXT NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER,
        queue_pos INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        sandbox_backend TEXT,
        sandbox_id TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        turns INTEGER NOT NULL DEFAULT 0,
        pr_url TEXT,
        pr_number INTEGER,
        base_ref TEXT,
        base_commit TEXT
    );
    CREATE INDEX tasks_by_status ON tasks(status, queue_pos);
    CREATE INDEX tasks_by_user ON tasks(user_id, created_at);
    CREATE TABLE messages (
        task_id TEXT NOT NULL REFERENCES tasks(id),
        idx INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (task_id, idx)
    );
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks(id),
        text TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX inbox_by_task ON inbox(task_id, id);
    CREATE TABLE tool_calls (
        task_id TEXT NOT NULL REFERENCES tasks(id),
        tool_use_id TEXT NOT NULL,
        name TEXT NOT NULL,
        input TEXT NOT NULL,
        state TEXT NOT NULL,
        output TEXT,
        is_error INTEGER,
        exit_code INTEGER,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (task_id, tool_use_id)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ts INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_task ON events(task_id, seq);
    "#,
    // 2: workspaces and environments (issue: Docker sandboxes).
    r#"
    ALTER TABLE tasks ADD COLUMN workspace TEXT;
    ALTER TABLE tasks ADD COLUMN environment TEXT;
    ALTER TABLE tasks ADD COLUMN prepared INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN workspace_dirty INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN published_at INTEGER;
    ALTER TABLE tasks ADD COLUMN workspace_removed_at INTEGER;
    ALTER TABLE tasks ADD COLUMN image TEXT;
    CREATE TABLE env_images (
        image TEXT PRIMARY KEY,
        last_used INTEGER NOT NULL
    );
    "#,
    // 3: accounts: GitHub identities, sessions and refresh tokens.
    r#"
    ALTER TABLE users ADD COLUMN github_token TEXT;
    ALTER TABLE users ADD COLUMN github_scopes TEXT;
    ALTER TABLE users ADD COLUMN last_login_at INTEGER;
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL,
        cookie_hash TEXT UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE refresh_tokens (
        hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        created_at INTEGER NOT NULL,
        used_at INTEGER
    );
    CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
    "#,
    // 4: pull requests and GitHub triggers.
    r#"
    ALTER TABLE tasks ADD COLUMN origin_issue TEXT;
    CREATE INDEX tasks_by_pr ON tasks(repo, pr_number);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
    );
    "#,
    // 5: a replayed delivery under a new id is the same delivery.
    r#"
    ALTER TABLE webhook_deliveries ADD COLUMN body_hash TEXT;
    CREATE UNIQUE INDEX webhook_deliveries_by_body ON webhook_deliveries(body_hash);
    CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries(received_at);
    CREATE INDEX sessions_by_expiry ON sessions(expires_at);
    "#,
    // 6: checkpoints of a task's workspace, one per turn that changed files, each an
    // incremental git bundle kept in `blobs` (BLOB is BYTEA on PostgreSQL).
    r#"
    CREATE TABLE blobs (
        id INTEGER PRIMARY KEY,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks(id),
        turn INTEGER NOT NULL,
        commit_id TEXT NOT NULL,
        tree_id TEXT NOT NULL,
        parent_id INTEGER REFERENCES checkpoints(id),
        blob_id INTEGER NOT NULL REFERENCES blobs(id),
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX checkpoints_by_task ON checkpoints(task_id, id);
    "#,
];

/// Brings the schema up to date.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(crate::StoreError::TooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
