use std::sync::Arc;
use std::sync::Mutex;

use dockhand_protocol::*;

use crate::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<Committed>>);

impl Publish for Recorder {
    fn publish(&self, batch: Vec<Committed>) {
        self.0.lock().unwrap().extend(batch);
    }
}

fn open(dir: &tempfile::TempDir) -> (Store, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let store = Store::open(StoreOptions::new(dir.path().join("t.db")), rec.clone()).unwrap();
    (store, rec)
}

fn new_task(user_id: i64, prompt: &str) -> NewTask {
    let id = TaskId::generate();
    NewTask {
        branch: task_branch(&id, prompt),
        id,
        user_id,
        repo: "/tmp/repo".into(),
        prompt: prompt.into(),
        title: prompt.into(),
        base_branch: None,
        model: "m".into(),
        image: None,
        origin_issue: None,
    }
}

fn err(text: &str) -> EventBody {
    EventBody::Error(ErrorEvent {
        message: text.into(),
    })
}

#[tokio::test]
async fn seqs_are_per_task_gapless_and_published_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, rec) = open(&dir);
    let user = store
        .ensure_user("admin", UserRole::Operator)
        .await
        .unwrap();
    let a = store.create_task(new_task(user.id, "a")).await.unwrap();
    let b = store.create_task(new_task(user.id, "b")).await.unwrap();
    for i in 0..500 {
        store.append(&a.id, err(&format!("a{i}"))).unwrap();
        store.append(&b.id, err(&format!("b{i}"))).unwrap();
    }
    store.flush().await.unwrap();
    for t in [&a.id, &b.id] {
        let evs = store.events_after(t, 0, 10_000).unwrap();
        let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=502).collect::<Vec<_>>());
        assert_eq!(store.last_seq(t).unwrap(), 502);
    }
    // Everything published was committed, in per-task order.
    let published = rec.0.lock().unwrap().clone();
    assert_eq!(published.len(), 1004);
    for t in [&a.id, &b.id] {
        let seqs: Vec<u64> = published
            .iter()
            .filter(|c| &c.task_id == t)
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, (1..=502).collect::<Vec<_>>());
    }
    let after = store.events_after(&a.id, 500, 10).unwrap();
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![501, 502]
    );
}

#[tokio::test]
async fn a_failed_job_rolls_back_its_rows_events_and_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (store, rec) = open(&dir);
    let user = store
        .ensure_user("admin", UserRole::Operator)
        .await
        .unwrap();
    let t = store.create_task(new_task(user.id, "a")).await.unwrap();
    let id = t.id.clone();
    let res: Result<()> = store
        .transact(move |ctx| {
            ctx.emit(&id, err("doomed"))?;
            Err(StoreError::Conflict("nope".into()))
        })
        .await;
    assert!(matches!(res, Err(StoreError::Conflict(_))));
    let seq = store.append_durable(&t.id, err("kept")).await.unwrap();
    assert_eq!(seq, 3, "the rolled-back event must not take a seq");
    let published = rec.0.lock().unwrap();
    assert!(!published.iter().any(|c| c.json.contains("doomed")));
}

#[tokio::test]
async fn lifecycle_queue_order_follow_up_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let user = store
        .ensure_user("admin", UserRole::Operator)
        .await
        .unwrap();
    let first = store.create_task(new_task(user.id, "first")).await.unwrap();
    let second = store
        .create_task(new_task(user.id, "second"))
        .await
        .unwrap();
    let claimed = store.claim_next().await.unwrap().unwrap();
    assert_eq!(claimed.id, first.id);
    assert_eq!(claimed.status, TaskStatus::Provisioning);
    assert_eq!(
        store.cancel(&second.id, "by test".into()).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert!(store.claim_next().await.unwrap().is_none());
    assert_eq!(
        store.cancel(&first.id, "stop".into()).await.unwrap(),
        CancelOutcome::Requested
    );
    assert!(store.get_task(&first.id).unwrap().unwrap().cancel_requested);
    store
        .set_status(&first.id, TaskStatus::Cancelled, Some("stopped".into()))
        .await
        .unwrap();
    let row = store.get_task(&first.id).unwrap().unwrap();
    assert_eq!(row.error.as_deref(), Some("stopped"));
    assert!(row.finished_at.is_some());
    // A follow-up re-queues a finished task and lands in its inbox.
    assert_eq!(
        store.follow_up(&first.id, "more".into()).await.unwrap(),
        FollowUpOutcome::Requeued
    );
    let inbox = store.inbox(&first.id).unwrap();
    assert_eq!(
        inbox.iter().map(|i| i.text.as_str()).collect::<Vec<_>>(),
        vec!["first", "more"]
    );
    let again = store.claim_next().await.unwrap().unwrap();
    assert_eq!(again.id, first.id);
    assert!(!again.cancel_requested);
    let kinds: Vec<String> = store
        .events_after(&first.id, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| match e.body {
            EventBody::Status(s) => s.status.to_string(),
            other => other.kind().to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "queued",
            "user_message",
            "provisioning",
            "cancelled",
            "user_message",
            "queued",
            "provisioning"
        ]
    );
}

#[tokio::test]
async fn conversation_and_tool_calls_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let user = store
        .ensure_user("admin", UserRole::Operator)
        .await
        .unwrap();
    let t = store.create_task(new_task(user.id, "p")).await.unwrap();
    let inbox = store.inbox(&t.id).unwrap();
    store
        .append_message(
            &t.id,
            0,
            MessageRole::User,
            r#"[{"type":"text","text":"p"}]"#.into(),
            vec![inbox[0].id],
            vec![],
        )
        .await
        .unwrap();
    assert!(store.inbox(&t.id).unwrap().is_empty());
    store
        .tool_call_started(
            &t.id,
            "toolu_1",
            "bash",
            serde_json::json!({"command": "ls"}),
        )
        .await
        .unwrap();
    store
        .append(
            &t.id,
            EventBody::ToolOutput(ToolOutputEvent {
                id: "toolu_1".into(),
                text: "a\n".into(),
            }),
        )
        .unwrap();
    store
        .append(
            &t.id,
            EventBody::ToolOutput(ToolOutputEvent {
                id: "toolu_1".into(),
                text: "b\n".into(),
            }),
        )
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        store.streamed_output(&t.id, "toolu_1", 100).unwrap(),
        "a\nb\n"
    );
    assert_eq!(store.streamed_output(&t.id, "toolu_1", 2).unwrap(), "b\n");
    let calls = store.tool_calls(&t.id).unwrap();
    assert_eq!(calls[0].state, ToolCallState::Running);
    store
        .tool_call_finished(
            &t.id,
            ToolCallResult {
                tool_use_id: "toolu_1".into(),
                name: "bash".into(),
                output: "a\nb".into(),
                is_error: false,
                exit_code: Some(0),
                duration_ms: 5,
            },
        )
        .await
        .unwrap();
    let calls = store.tool_calls(&t.id).unwrap();
    assert_eq!(calls[0].state, ToolCallState::Done);
    assert_eq!(calls[0].exit_code, Some(0));
    assert_eq!(calls[0].input["command"], "ls");
    let msgs = store.messages(&t.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].role, MessageRole::User);
}

#[tokio::test]
async fn data_survives_reopen_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (store, _) = open(&dir);
        let user = store
            .ensure_user("admin", UserRole::Operator)
            .await
            .unwrap();
        let t = store.create_task(new_task(user.id, "p")).await.unwrap();
        store.append(&t.id, err("x")).unwrap();
        store.flush().await.unwrap();
        t.id
    };
    let (store, _) = open(&dir);
    assert_eq!(store.append_durable(&id, err("y")).await.unwrap(), 4);
    let mode: String = store
        .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn task_list_pages_newest_first_and_filters_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let a = store.ensure_user("a", UserRole::User).await.unwrap();
    let b = store.ensure_user("b", UserRole::User).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_task(new_task(a.id, &format!("t{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    store.create_task(new_task(b.id, "other")).await.unwrap();
    let filter = TaskFilter {
        user_id: Some(a.id),
        ..Default::default()
    };
    let (page1, next) = store.list_tasks(&filter, None, 3).unwrap();
    let next = next.unwrap();
    let cursor = TaskCursor::decode(&next.encode()).unwrap();
    let (page2, end) = store.list_tasks(&filter, Some(&cursor), 3).unwrap();
    assert!(end.is_none());
    let got: Vec<TaskId> = page1
        .iter()
        .chain(page2.iter())
        .map(|t| t.id.clone())
        .collect();
    let mut expected_sorted = page1
        .iter()
        .chain(page2.iter())
        .map(|t| (t.created_at, t.id.clone()))
        .collect::<Vec<_>>();
    expected_sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(
        got,
        expected_sorted
            .into_iter()
            .map(|(_, id)| id)
            .collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 5);
    for id in &ids {
        assert!(got.contains(id));
    }
    assert!(TaskCursor::decode("junk").is_none());
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let u = store
        .upsert_github_user(42, "alice", UserRole::User)
        .await
        .unwrap();
    let far = now_ms() + 60_000;
    store
        .create_session(
            "s1".into(),
            u.id,
            SessionKind::Cli,
            None,
            Some("r1".into()),
            far,
        )
        .await
        .unwrap();
    assert!(store.live_session("s1", now_ms()).unwrap().is_some());
    assert!(matches!(
        store
            .rotate_refresh("r1".into(), "r2".into())
            .await
            .unwrap(),
        Refresh::Rotated { .. }
    ));
    assert_eq!(
        store
            .rotate_refresh("nope".into(), "r3".into())
            .await
            .unwrap(),
        Refresh::Invalid
    );
    // Using r1 again means it was stolen: the whole session goes.
    assert_eq!(
        store
            .rotate_refresh("r1".into(), "r4".into())
            .await
            .unwrap(),
        Refresh::Reused
    );
    assert!(store.live_session("s1", now_ms()).unwrap().is_none());
    assert_eq!(
        store
            .rotate_refresh("r2".into(), "r5".into())
            .await
            .unwrap(),
        Refresh::Invalid
    );
    // A renamed GitHub account keeps its user.
    let again = store
        .upsert_github_user(42, "alice2", UserRole::Operator)
        .await
        .unwrap();
    assert_eq!(again.id, u.id);
    assert_eq!(again.role, UserRole::Operator);
}

#[tokio::test]
async fn cookie_sessions_expire_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let u = store
        .upsert_github_user(7, "bob", UserRole::User)
        .await
        .unwrap();
    store
        .create_session(
            "w1".into(),
            u.id,
            SessionKind::Web,
            Some("c1".into()),
            None,
            now_ms() + 1_000,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_cookie("c1", now_ms())
            .unwrap()
            .unwrap()
            .1
            .login,
        "bob"
    );
    assert!(
        store
            .session_by_cookie("c1", now_ms() + 2_000)
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(store.revoke_session("w1").await.unwrap());
    assert!(store.session_by_cookie("c1", now_ms()).unwrap().is_none());
    assert!(!store.revoke_session("w1").await.unwrap());
}

#[tokio::test]
async fn personal_tokens_list_revoke_and_stay_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let a = store
        .upsert_github_user(1, "a", UserRole::User)
        .await
        .unwrap();
    let b = store
        .upsert_github_user(2, "b", UserRole::User)
        .await
        .unwrap();
    let t = store
        .insert_token(a.id, "laptop", TokenKind::Personal, "h1".into())
        .await
        .unwrap();
    assert_eq!(store.list_tokens(a.id).unwrap()[0].name, "laptop");
    assert!(store.list_tokens(b.id).unwrap().is_empty());
    assert!(!store.revoke_token(b.id, t).await.unwrap(), "not b's token");
    assert_eq!(store.user_by_token_hash("h1").unwrap().unwrap().login, "a");
    store.flush().await.unwrap();
    assert!(store.list_tokens(a.id).unwrap()[0].last_used_at.is_some());
    assert!(store.revoke_token(a.id, t).await.unwrap());
    assert!(store.user_by_token_hash("h1").unwrap().is_none());
}

#[tokio::test]
async fn deliveries_dedupe_by_id_and_body_and_old_state_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    assert!(store.first_delivery("d1", "h1").await.unwrap());
    assert!(!store.first_delivery("d1", "h2").await.unwrap(), "same id");
    assert!(
        !store.first_delivery("d2", "h1").await.unwrap(),
        "same body, new id"
    );
    assert!(store.first_delivery("d3", "h3").await.unwrap());
    let u = store
        .upsert_github_user(8, "carol", UserRole::User)
        .await
        .unwrap();
    let long = now_ms() + 3_600_000;
    for (id, expires) in [("old", now_ms() - 1), ("live", long)] {
        store
            .create_session(
                id.into(),
                u.id,
                SessionKind::Cli,
                None,
                Some(format!("r-{id}")),
                expires,
            )
            .await
            .unwrap();
    }
    let pruned = store.prune(now_ms() + 1).await.unwrap();
    // Both deliveries, the expired session and its refresh token.
    assert_eq!(pruned, 4);
    assert!(store.first_delivery("d1", "h1").await.unwrap(), "forgotten");
    assert!(store.live_session("live", now_ms()).unwrap().is_some());
    assert_eq!(store.session_of_refresh("r-old").unwrap(), None);
    assert_eq!(
        store.session_of_refresh("r-live").unwrap().as_deref(),
        Some("live")
    );
}
