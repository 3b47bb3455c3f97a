//! The checkpoint hook's ordering: a turn's checkpoint runs beside the next
//! model request and ends before the next tool call, and before the run ends.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::Checkpointer;

/// Logs `checkpoint N start` and `checkpoint N end` into the sandbox's command
/// log. The checkpoint of a turn in `wait_for_asks` ends only once the model has
/// been asked for that many turns in all; with `cancel`, it then cancels the run.
/// With `commands` (the sandbox's), it then watches them for a while, so that a
/// loop that did not wait for it would run its next command first.
struct Recording {
    log: Arc<Mutex<Vec<String>>>,
    wait_for_asks: HashMap<u32, usize>,
    asked: tokio::sync::Mutex<(mpsc::UnboundedReceiver<()>, usize)>,
    cancel: Option<CancellationToken>,
    commands: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl Recording {
    fn new(
        h: &Harness,
        asked: mpsc::UnboundedReceiver<()>,
        wait_for_asks: &[(u32, usize)],
        cancel: Option<CancellationToken>,
    ) -> Arc<Self> {
        Arc::new(Recording {
            log: h.sandbox.log.clone(),
            wait_for_asks: wait_for_asks.iter().copied().collect(),
            asked: tokio::sync::Mutex::new((asked, 0)),
            cancel,
            commands: tokio::sync::Mutex::new(None),
        })
    }

    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

#[async_trait]
impl Checkpointer for Recording {
    async fn checkpoint(&self, turn: u32) {
        self.log(format!("checkpoint {turn} start"));
        if let Some(&asks) = self.wait_for_asks.get(&turn) {
            let mut asked = self.asked.lock().await;
            while asked.1 < asks {
                asked.0.recv().await.expect("the model is still there");
                asked.1 += 1;
            }
            if let Some(commands) = self.commands.lock().await.as_mut() {
                // Not synchronisation: a bound on how long a wrong loop gets to
                // show itself. A right one runs nothing until this returns.
                let watch = async { while commands.recv().await.is_some() {} };
                let _ = tokio::time::timeout(Duration::from_millis(300), watch).await;
            }
        }
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
            // Give a run that did not wait every chance to end first.
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        }
        self.log(format!("checkpoint {turn} end"));
    }
}

fn log(h: &Harness) -> Vec<String> {
    h.sandbox.log.lock().unwrap().clone()
}

#[tokio::test]
async fn a_checkpoint_runs_while_the_model_thinks_and_ends_before_the_next_tool_call() {
    let (asked, asks) = mpsc::unbounded_channel();
    let model = ScriptedModel::answering_and_telling(
        vec![
            answer(vec![bash("t1", "one")], StopReason::ToolUse, 1),
            answer(vec![bash("t2", "two")], StopReason::ToolUse, 1),
            answer(vec![text("done")], StopReason::EndTurn, 1),
        ],
        asked,
    );
    let mut h = Harness::new(model, &[("one", ("1", 0)), ("two", ("2", 0))]).await;
    // The first checkpoint cannot end before the second model request has gone
    // out: a loop that waited for it before asking would never finish.
    let recording = Recording::new(&h, asks, &[(2, 2)], None);
    let (_, none) = mpsc::unbounded_channel();
    *recording.commands.lock().await = Some(std::mem::replace(&mut h.commands, none));
    h.ctx.checkpointer = Some(recording);
    assert_eq!(h.run().await.unwrap().final_text, "done");
    // Messages: 0 prompt, 1 turn, 2 results, 3 turn, 4 results, 5 final text;
    // the text-only turn changes nothing and takes no checkpoint.
    assert_eq!(
        log(&h),
        [
            "run one",
            "checkpoint 2 start",
            "checkpoint 2 end",
            "run two",
            "checkpoint 4 start",
            "checkpoint 4 end",
        ]
    );
}

#[tokio::test]
async fn a_cancelled_run_ends_after_its_last_checkpoint() {
    let (asked, asks) = mpsc::unbounded_channel();
    // After the first turn the model never answers: the task is cancelled while
    // it thinks, during the checkpoint.
    let model = ScriptedModel::answering_and_telling(
        vec![answer(vec![bash("t1", "one")], StopReason::ToolUse, 1)],
        asked,
    );
    let mut h = Harness::new(model, &[("one", ("1", 0))]).await;
    let cancel = h.ctx.cancel.clone();
    h.ctx.checkpointer = Some(Recording::new(&h, asks, &[(2, 2)], Some(cancel)));
    let err = h.run().await.unwrap_err();
    assert!(matches!(err, AgentError::Cancelled), "{err:?}");
    assert_eq!(
        log(&h),
        ["run one", "checkpoint 2 start", "checkpoint 2 end"]
    );
}

#[tokio::test]
async fn a_resumed_run_checkpoints_the_turn_it_completes() {
    let (asked, asks) = mpsc::unbounded_channel();
    let model = ScriptedModel::answering_and_telling(
        vec![answer(vec![text("ok")], StopReason::EndTurn, 1)],
        asked,
    );
    let mut h = Harness::new(model, &[("echo c", ("c", 0))]).await;
    h.store_prompt().await;
    // A crash came before the turn's call started.
    let content = serde_json::to_string(&[bash("c", "echo c")]).unwrap();
    let (store, task) = (&h.ctx.store, &h.ctx.task);
    store
        .append_message(task, 1, MessageRole::Assistant, content, vec![], vec![])
        .await
        .unwrap();
    h.ctx.checkpointer = Some(Recording::new(&h, asks, &[(2, 1)], None));
    assert_eq!(h.run().await.unwrap().final_text, "ok");
    assert_eq!(
        log(&h),
        ["run echo c", "checkpoint 2 start", "checkpoint 2 end"]
    );
}
