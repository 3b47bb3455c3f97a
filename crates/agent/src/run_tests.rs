//! The loop against a real store, a scripted model and a sandbox whose shell
//! answers from a table, so everything but the network is exercised.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dockhand_model::TurnResponse;
use dockhand_protocol::TokenUsage;
use dockhand_store::NewTask;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;
use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::AgentConfig;
use crate::fakes::Deltas;
use crate::fakes::Discard;
use crate::fakes::FakeSandbox;
use crate::fakes::ScriptedModel;

/// One answer of the scripted model.
fn answer(content: Vec<ContentBlock>, stop_reason: StopReason, tokens: u64) -> TurnResponse {
    TurnResponse {
        content,
        stop_reason,
        usage: TokenUsage {
            input_tokens: tokens,
            ..TokenUsage::default()
        },
        request_id: None,
    }
}

fn text(text: &str) -> ContentBlock {
    ContentBlock::Text { text: text.into() }
}

fn bash(id: &str, command: &str) -> ContentBlock {
    ContentBlock::ToolUse {
        id: id.into(),
        name: "bash".into(),
        input: json!({ "command": command }),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    ctx: AgentCtx,
    model: Arc<ScriptedModel>,
    sandbox: Arc<FakeSandbox>,
    deltas: Arc<Deltas>,
    /// The shell's commands, in arrival order.
    commands: mpsc::UnboundedReceiver<String>,
}

impl Harness {
    /// A task whose prompt waits in the inbox.
    async fn new(model: ScriptedModel, replies: &[(&'static str, (&'static str, i32))]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            StoreOptions::new(dir.path().join("t.db")),
            Arc::new(Discard),
        )
        .unwrap();
        let user = store.ensure_user("u", UserRole::User).await.unwrap();
        let task = TaskId::generate();
        store
            .create_task(NewTask {
                id: task.clone(),
                user_id: user.id,
                repo: "/tmp/repo".into(),
                prompt: "fix it".into(),
                title: "fix it".into(),
                base_branch: None,
                branch: "dockhand/t".into(),
                model: "m".into(),
                image: None,
                origin_issue: None,
            })
            .await
            .unwrap();
        let (tx, commands) = mpsc::unbounded_channel();
        let sandbox = Arc::new(FakeSandbox {
            replies: replies.iter().copied().collect(),
            commands: tx,
            kill_alls: AtomicUsize::new(0),
            log: Arc::default(),
        });
        let model = Arc::new(model);
        let deltas = Arc::new(Deltas::default());
        let ctx = AgentCtx {
            task,
            store,
            live: deltas.clone(),
            model: model.clone(),
            sandbox: sandbox.clone(),
            config: AgentConfig::new("m"),
            cancel: CancellationToken::new(),
            checkpointer: None,
        };
        Harness {
            _dir: dir,
            ctx,
            model,
            sandbox,
            deltas,
            commands,
        }
    }

    async fn run(&self) -> Result<RunSummary, AgentError> {
        bounded(run(&self.ctx)).await
    }

    fn stored(&self) -> Vec<Message> {
        Conversation::load(&self.ctx.store, &self.ctx.task)
            .unwrap()
            .messages
    }

    /// Stores the inbox prompt as message 0, as a run would have.
    async fn store_prompt(&self) {
        let inbox = self.ctx.store.inbox(&self.ctx.task).unwrap();
        let content = serde_json::to_string(&[text(&inbox[0].text)]).unwrap();
        let (store, task) = (&self.ctx.store, &self.ctx.task);
        store
            .append_message(
                task,
                0,
                MessageRole::User,
                content,
                vec![inbox[0].id],
                vec![],
            )
            .await
            .unwrap();
    }
}

/// Fails the test rather than hanging when a run never ends.
async fn bounded<T>(run: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ended")
}

fn result(id: &str, content: &str, is_error: bool) -> ContentBlock {
    ContentBlock::ToolResult {
        tool_use_id: id.into(),
        content: content.into(),
        is_error,
    }
}

#[test]
fn tool_uses_come_out_in_order_as_structs() {
    let content = vec![
        text("looking"),
        bash("toolu_1", "ls"),
        ContentBlock::Other(json!({"type": "thinking", "thinking": "hm"})),
        ContentBlock::ToolUse {
            id: "toolu_2".into(),
            name: "str_replace_based_edit_tool".into(),
            input: json!({"command": "view", "path": "/workspace"}),
        },
    ];
    assert_eq!(
        tool_uses(&content),
        [
            ToolUse {
                id: "toolu_1".into(),
                name: "bash".into(),
                input: json!({"command": "ls"}),
            },
            ToolUse {
                id: "toolu_2".into(),
                name: "str_replace_based_edit_tool".into(),
                input: json!({"command": "view", "path": "/workspace"}),
            },
        ]
    );
    assert_eq!(texts(&content), "looking");
}

#[test]
fn roles_convert_both_ways() {
    for (stored, model) in [
        (MessageRole::User, Role::User),
        (MessageRole::Assistant, Role::Assistant),
    ] {
        assert_eq!(model_role(stored), model);
        assert_eq!(stored_role(model), stored);
    }
}

#[test]
fn consecutive_messages_of_one_role_are_sent_as_one() {
    let message = |role, content| Message { role, content };
    let conv = Conversation {
        messages: vec![
            message(Role::User, vec![text("p")]),
            message(Role::Assistant, vec![bash("t1", "ls")]),
            message(Role::User, vec![result("t1", "a", false)]),
            message(Role::User, vec![text("and then?")]),
        ],
    };
    assert_eq!(
        conv.request_messages(),
        [
            message(Role::User, vec![text("p")]),
            message(Role::Assistant, vec![bash("t1", "ls")]),
            message(
                Role::User,
                vec![result("t1", "a", false), text("and then?")]
            ),
        ]
    );
    assert_eq!(conv.messages.len(), 4, "the stored messages stay apart");
}

#[tokio::test]
async fn tool_calls_run_in_order_and_their_results_go_back() {
    let model = ScriptedModel::new(vec![
        answer(
            vec![
                text("let me look"),
                bash("t1", "echo hi"),
                ContentBlock::ToolUse {
                    id: "t2".into(),
                    name: "teleport".into(),
                    input: json!({}),
                },
            ],
            StopReason::ToolUse,
            5,
        ),
        answer(vec![text("done")], StopReason::EndTurn, 7),
    ]);
    let h = Harness::new(model, &[("echo hi", ("hi", 0))]).await;
    let summary = h.run().await.unwrap();
    assert_eq!(
        summary,
        RunSummary {
            final_text: "done".into(),
            turns: 2
        }
    );

    let requests = h.model.requests();
    assert_eq!(requests.len(), 2);
    let results = &requests[1].messages.last().unwrap().content;
    assert_eq!(results[0], result("t1", "hi", false));
    let ContentBlock::ToolResult {
        tool_use_id,
        content,
        is_error: true,
    } = &results[1]
    else {
        panic!("{:?}", results[1]);
    };
    assert_eq!(tool_use_id, "t2");
    assert!(content.starts_with("unknown tool `teleport`"), "{content}");

    let roles: Vec<Role> = h.stored().iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::User, Role::Assistant]
    );
    let (store, task) = (&h.ctx.store, &h.ctx.task);
    let calls = store.tool_calls(task).unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.state == ToolCallState::Done));
    assert_eq!(calls[0].exit_code, Some(0));
    store.flush().await.unwrap();
    assert_eq!(store.streamed_output(task, "t1", 100).unwrap(), "hi");
    let row = store.get_task(task).unwrap().unwrap();
    assert_eq!((row.turns, row.usage.input_tokens), (2, 12));
    assert!(
        store.inbox(task).unwrap().is_empty(),
        "the prompt was taken"
    );
    let deltas = h.deltas.0.lock().unwrap().clone();
    assert_eq!(deltas, [(0, "let me look".into()), (0, "done".into())]);
}

#[tokio::test]
async fn a_resumed_run_answers_open_calls_and_never_reruns_a_started_one() {
    let model = ScriptedModel::new(vec![answer(vec![text("ok")], StopReason::EndTurn, 1)]);
    let mut h = Harness::new(model, &[("echo c", ("c", 0))]).await;
    let (store, task) = (&h.ctx.store, &h.ctx.task);
    h.store_prompt().await;
    // The crash came while `b` ran: `a` had finished, `c` had not started.
    let turn = vec![bash("a", "echo a"), bash("b", "make"), bash("c", "echo c")];
    let content = serde_json::to_string(&turn).unwrap();
    store
        .append_message(task, 1, MessageRole::Assistant, content, vec![], vec![])
        .await
        .unwrap();
    store
        .tool_call_started(task, "a", "bash", json!({"command": "echo a"}))
        .await
        .unwrap();
    store
        .tool_call_finished(
            task,
            ToolCallResult {
                tool_use_id: "a".into(),
                name: "bash".into(),
                output: "A".into(),
                is_error: false,
                exit_code: Some(0),
                duration_ms: 1,
            },
        )
        .await
        .unwrap();
    store
        .tool_call_started(task, "b", "bash", json!({"command": "make"}))
        .await
        .unwrap();
    let partial = EventBody::ToolOutput(dockhand_protocol::ToolOutputEvent {
        id: "b".into(),
        text: "compiling".into(),
    });
    store.append_durable(task, partial).await.unwrap();

    assert_eq!(h.run().await.unwrap().final_text, "ok");

    let sent = h.model.requests()[0].messages.clone();
    assert_eq!(sent.len(), 3, "prompt, the interrupted turn, its results");
    let results = &sent[2].content;
    assert_eq!(results[0], result("a", "A", false));
    let ContentBlock::ToolResult {
        content,
        is_error: true,
        ..
    } = &results[1]
    else {
        panic!("{:?}", results[1]);
    };
    assert!(
        content.starts_with("interrupted: Dockhand restarted")
            && content.ends_with("Output captured before the interruption:\ncompiling"),
        "{content}"
    );
    assert_eq!(results[2], result("c", "c", false));
    assert_eq!(h.commands.recv().await.as_deref(), Some("echo c"));
    assert!(h.commands.try_recv().is_err(), "only `c` ran");
    let calls = h.ctx.store.tool_calls(&h.ctx.task).unwrap();
    assert!(calls.iter().all(|c| c.state == ToolCallState::Done));
    assert_eq!(calls[1].output.as_deref(), Some(content.as_str()));
}

#[tokio::test]
async fn a_cancel_while_a_tool_runs_interrupts_it_and_skips_the_rest() {
    let model = ScriptedModel::new(vec![answer(
        vec![bash("t1", "sleep 1000"), bash("t2", "echo never")],
        StopReason::ToolUse,
        1,
    )]);
    let mut h = Harness::new(model, &[("echo never", ("never", 0))]).await;
    let (ctx, commands) = (&h.ctx, &mut h.commands);
    let (result_of_run, ()) = tokio::join!(bounded(run(ctx)), async {
        assert_eq!(commands.recv().await.as_deref(), Some("sleep 1000"));
        ctx.cancel.cancel();
    });
    assert!(matches!(result_of_run, Err(AgentError::Cancelled)));
    assert_eq!(h.sandbox.kill_alls.load(Ordering::SeqCst), 1);
    let last = h.stored().pop().unwrap();
    assert_eq!(last.role, Role::User);
    assert_eq!(
        last.content,
        [
            result(
                "t1",
                "interrupted: the task was cancelled while this was running",
                true
            ),
            result("t2", "not run: the task was cancelled", true),
        ]
    );
    let calls = h.ctx.store.tool_calls(&h.ctx.task).unwrap();
    assert_eq!(calls.len(), 1, "t2 never started");
    assert!(calls[0].is_error);
    assert!(h.commands.try_recv().is_err());
}

#[tokio::test]
async fn a_cancel_stops_the_run_before_or_during_a_turn() {
    let h = Harness::new(ScriptedModel::default(), &[]).await;
    h.ctx.cancel.cancel();
    assert!(matches!(h.run().await, Err(AgentError::Cancelled)));
    assert!(h.model.requests().is_empty(), "no turn was asked for");
    assert_eq!(h.stored().len(), 1, "the prompt is in the conversation");

    let (asked, mut turns) = mpsc::unbounded_channel();
    let h = Harness::new(ScriptedModel::telling(asked), &[]).await;
    let (result_of_run, ()) = tokio::join!(h.run(), async {
        turns.recv().await.unwrap();
        h.ctx.cancel.cancel();
    });
    assert!(matches!(result_of_run, Err(AgentError::Cancelled)));
    let row = h.ctx.store.get_task(&h.ctx.task).unwrap().unwrap();
    assert_eq!(row.turns, 0, "the cut turn is not counted");
}

#[tokio::test]
async fn budgets_end_the_run_before_the_next_turn() {
    let unknown_tool = || {
        answer(
            vec![ContentBlock::ToolUse {
                id: "t".into(),
                name: "nope".into(),
                input: json!({}),
            }],
            StopReason::ToolUse,
            600,
        )
    };
    let mut h = Harness::new(ScriptedModel::new(vec![unknown_tool()]), &[]).await;
    h.ctx.config.budgets.max_turns = 1;
    let err = h.run().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "budget exhausted: turns: 1 model turns used (agent.max_turns = 1)"
    );
    assert_eq!(h.model.requests().len(), 1);

    let mut h = Harness::new(ScriptedModel::new(vec![unknown_tool()]), &[]).await;
    h.ctx.config.budgets.max_tokens = 500;
    let err = h.run().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "budget exhausted: tokens: 600 tokens used (agent.max_tokens = 500)"
    );
    assert_eq!(h.model.requests().len(), 1);
}

#[tokio::test]
async fn a_tool_call_cut_by_max_tokens_is_not_run() {
    let model = ScriptedModel::new(vec![answer(
        vec![bash("t1", "echo hi")],
        StopReason::MaxTokens,
        1,
    )]);
    let mut h = Harness::new(model, &[("echo hi", ("hi", 0))]).await;
    assert!(matches!(h.run().await, Err(AgentError::TruncatedToolCall)));
    assert!(h.ctx.store.tool_calls(&h.ctx.task).unwrap().is_empty());
    assert!(h.commands.try_recv().is_err());
}

#[tokio::test]
async fn a_paused_turn_is_sent_again_and_a_refusal_ends_the_run() {
    let model = ScriptedModel::new(vec![
        answer(vec![text("searching")], StopReason::PauseTurn, 1),
        answer(vec![text("I won't")], StopReason::Refusal, 1),
    ]);
    let h = Harness::new(model, &[]).await;
    let err = h.run().await.unwrap_err();
    assert!(
        matches!(&err, AgentError::Refusal(text) if text == "I won't"),
        "{err:?}"
    );
    let requests = h.model.requests();
    assert_eq!(requests.len(), 2);
    let resent = requests[1].messages.last().unwrap();
    assert_eq!(
        (resent.role, &resent.content),
        (Role::Assistant, &vec![text("searching")])
    );
}

#[tokio::test]
async fn a_follow_up_after_a_finished_run_starts_the_next_turn() {
    let model = ScriptedModel::new(vec![answer(vec![text("again")], StopReason::EndTurn, 1)]);
    let h = Harness::new(model, &[]).await;
    let (store, task) = (&h.ctx.store, &h.ctx.task);
    h.store_prompt().await;
    let done = serde_json::to_string(&[text("done")]).unwrap();
    store
        .append_message(task, 1, MessageRole::Assistant, done, vec![], vec![])
        .await
        .unwrap();
    store.follow_up(task, "one more".into()).await.unwrap();

    assert_eq!(h.run().await.unwrap().final_text, "again");
    assert_eq!(
        h.model.requests()[0].messages.last().unwrap().content,
        [text("one more")]
    );
    assert!(store.inbox(task).unwrap().is_empty());
    assert_eq!(h.stored().len(), 4);
}

#[tokio::test]
async fn retries_become_retry_events() {
    let h = Harness::new(ScriptedModel::default(), &[]).await;
    let mut observer = Observer { ctx: &h.ctx };
    observer.retry(&RetryNotice {
        reason: "model API returned 529: Overloaded".into(),
        attempt: 2,
        wait: Duration::from_millis(1500),
    });
    h.ctx.store.flush().await.unwrap();
    let events = h.ctx.store.events_after(&h.ctx.task, 0, 100).unwrap();
    let Some(EventBody::Retry(retry)) = events.last().map(|e| &e.body) else {
        panic!("{events:?}");
    };
    assert_eq!(
        (retry.reason.as_str(), retry.attempt, retry.wait_ms),
        ("model API returned 529: Overloaded", 2, 1500)
    );
}

#[path = "checkpoint_tests.rs"]
mod checkpoints;
