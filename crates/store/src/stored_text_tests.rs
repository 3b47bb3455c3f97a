//! Enum columns keep the text they had when they were strings: rows written
//! before the enums existed read back as them, and what the store writes now
//! is the same text (which SQL elsewhere may still compare against).

use std::path::Path;
use std::sync::Arc;

use dockhand_protocol::TaskId;
use rusqlite::Connection;
use rusqlite::params;

use crate::*;

struct Discard;

impl Publish for Discard {
    fn publish(&self, _: Vec<Committed>) {}
}

fn open(path: &Path) -> Store {
    Store::open(StoreOptions::new(path), Arc::new(Discard)).unwrap()
}

/// A plain connection beside the store's, as an older Dockhand's writes would be.
fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

fn text(c: &Connection, sql: &str, param: impl rusqlite::ToSql) -> Vec<String> {
    let mut stmt = c.prepare(sql).unwrap();
    stmt.query_map([param], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn task(store: &Store, user_id: i64) -> TaskId {
    let id = TaskId::generate();
    store
        .create_task(NewTask {
            branch: "dockhand/t".into(),
            id: id.clone(),
            user_id,
            repo: "/tmp/repo".into(),
            prompt: "p".into(),
            title: "p".into(),
            base_branch: None,
            model: "m".into(),
            image: None,
            origin_issue: None,
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn rows_written_as_text_read_back_as_enums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let store = open(&path);
    let owner = store.ensure_user("owner", UserRole::User).await.unwrap();
    let id = task(&store, owner.id).await;
    let c = raw(&path);
    c.execute_batch(
        "INSERT INTO users (id, login, role, created_at, github_token, last_login_at) \
           VALUES (100, 'op', 'operator', 1, 'sealed', 5);
         INSERT INTO users (id, login, role, created_at, github_token, last_login_at) \
           VALUES (101, 'plain', 'user', 1, 'sealed2', 9);
         INSERT INTO api_tokens (user_id, name, kind, hash, created_at) VALUES (100, 'laptop', 'personal', 'h-op', 1);
         INSERT INTO api_tokens (user_id, name, kind, hash, created_at) VALUES (100, 'boot', 'admin', 'h-admin', 1);
         INSERT INTO sessions (id, user_id, kind, cookie_hash, created_at, expires_at) \
           VALUES ('s-old', 101, 'web', 'c-old', 1, 9999999999999);",
    )
    .unwrap();
    c.execute(
        "INSERT INTO messages (task_id, idx, role, content, created_at) VALUES \
           (?1, 0, 'user', '[]', 1), (?1, 1, 'assistant', '[]', 2)",
        [id.as_str()],
    )
    .unwrap();
    c.execute(
        "INSERT INTO tool_calls (task_id, tool_use_id, name, input, state, output, is_error, started_at) VALUES \
           (?1, 'toolu_a', 'bash', '{}', 'done', 'ok', 0, 1), (?1, 'toolu_b', 'bash', '{}', 'running', NULL, NULL, 2)",
        [id.as_str()],
    )
    .unwrap();

    let roles: Vec<MessageRole> = store
        .messages(&id)
        .unwrap()
        .iter()
        .map(|m| m.role)
        .collect();
    assert_eq!(roles, [MessageRole::User, MessageRole::Assistant]);
    let states: Vec<ToolCallState> = store
        .tool_calls(&id)
        .unwrap()
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(states, [ToolCallState::Done, ToolCallState::Running]);
    let op = store.user_by_token_hash("h-op").unwrap().unwrap();
    assert_eq!((op.login.as_str(), op.role), ("op", UserRole::Operator));
    assert_eq!(
        store.operator_with_github_token().unwrap(),
        Some(100),
        "the operator, though `plain` signed in later"
    );
    let tokens = store.list_tokens(100).unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["laptop"],
        "personal tokens only"
    );
    assert!(store.has_token_of_kind(TokenKind::Admin).unwrap());
    let (session, user) = store.session_by_cookie("c-old", now_ms()).unwrap().unwrap();
    assert_eq!((session.as_str(), user.role), ("s-old", UserRole::User));
}

#[tokio::test]
async fn what_the_store_writes_is_the_old_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = open(&path);
    let op = store.ensure_user("op", UserRole::Operator).await.unwrap();
    let plain = store
        .upsert_github_user(7, "plain", UserRole::User)
        .await
        .unwrap();
    let id = task(&store, op.id).await;
    for (idx, role) in [MessageRole::User, MessageRole::Assistant]
        .into_iter()
        .enumerate()
    {
        store
            .append_message(&id, idx as u32, role, "[]".into(), vec![], vec![])
            .await
            .unwrap();
    }
    for tool_use_id in ["toolu_a", "toolu_b"] {
        store
            .tool_call_started(&id, tool_use_id, "bash", serde_json::Value::Null)
            .await
            .unwrap();
    }
    let c = raw(&path);
    let states = "SELECT state FROM tool_calls WHERE task_id = ?1 ORDER BY tool_use_id";
    assert_eq!(text(&c, states, id.as_str()), ["running", "running"]);
    store
        .tool_call_finished(
            &id,
            ToolCallResult {
                tool_use_id: "toolu_a".into(),
                name: "bash".into(),
                output: String::new(),
                is_error: false,
                exit_code: Some(0),
                duration_ms: 1,
            },
        )
        .await
        .unwrap();
    store
        .insert_token(op.id, "laptop", TokenKind::Personal, "h1".into())
        .await
        .unwrap();
    store
        .insert_token(op.id, "boot", TokenKind::Admin, "h2".into())
        .await
        .unwrap();
    for (sid, kind) in [("s-web", SessionKind::Web), ("s-cli", SessionKind::Cli)] {
        store
            .create_session(sid.into(), plain.id, kind, None, None, now_ms() + 60_000)
            .await
            .unwrap();
    }

    assert_eq!(text(&c, states, id.as_str()), ["done", "running"]);
    let roles = "SELECT role FROM messages WHERE task_id = ?1 ORDER BY idx";
    assert_eq!(text(&c, roles, id.as_str()), ["user", "assistant"]);
    let users = "SELECT role FROM users WHERE id >= ?1 ORDER BY id";
    assert_eq!(text(&c, users, op.id), ["operator", "user"]);
    let kinds = "SELECT kind FROM api_tokens WHERE user_id = ?1 ORDER BY id";
    assert_eq!(text(&c, kinds, op.id), ["personal", "admin"]);
    let sessions = "SELECT kind FROM sessions WHERE user_id = ?1 ORDER BY id";
    assert_eq!(text(&c, sessions, plain.id), ["cli", "web"]);
}

#[tokio::test]
async fn unknown_text_is_an_error_not_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.db");
    let store = open(&path);
    let owner = store.ensure_user("owner", UserRole::User).await.unwrap();
    let id = task(&store, owner.id).await;
    raw(&path)
        .execute(
            "INSERT INTO messages (task_id, idx, role, content, created_at) VALUES (?1, 0, 'system', '[]', 1)",
            params![id.as_str()],
        )
        .unwrap();
    let err = store.messages(&id).unwrap_err();
    assert!(
        matches!(&err, StoreError::Sql(_))
            && err.to_string().contains("unknown MessageRole \"system\""),
        "{err}"
    );
}
