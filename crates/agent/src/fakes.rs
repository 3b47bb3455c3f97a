//! Test doubles for the agent loop: a scripted model, and a sandbox whose
//! shell answers from a table.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use dockhand_model::ContentBlock;
use dockhand_model::Model;
use dockhand_model::TurnObserver;
use dockhand_model::TurnRequest;
use dockhand_model::TurnResponse;
use dockhand_protocol::TaskId;
use dockhand_sandbox::ExecOutput;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::OutputSink;
use dockhand_sandbox::ProcessControl;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxInfo;
use dockhand_sandbox::ShellProcess;
use dockhand_store::Committed;
use dockhand_store::Publish;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::sync::mpsc;

use crate::LiveSink;

/// Answers turns from a script, recording each request. With the script used
/// up, a turn waits for ever (until the run is cancelled).
#[derive(Default)]
pub(crate) struct ScriptedModel {
    answers: Mutex<VecDeque<TurnResponse>>,
    requests: Mutex<Vec<TurnRequest>>,
    /// Told each time a turn is asked for.
    asked: Option<mpsc::UnboundedSender<()>>,
}

impl ScriptedModel {
    pub(crate) fn new(answers: Vec<TurnResponse>) -> Self {
        ScriptedModel {
            answers: Mutex::new(answers.into()),
            ..ScriptedModel::default()
        }
    }

    /// A model with no answers that tells `asked` of each turn asked for.
    pub(crate) fn telling(asked: mpsc::UnboundedSender<()>) -> Self {
        ScriptedModel {
            asked: Some(asked),
            ..ScriptedModel::default()
        }
    }

    /// A model answering from `answers` that tells `asked` of each turn asked for.
    pub(crate) fn answering_and_telling(
        answers: Vec<TurnResponse>,
        asked: mpsc::UnboundedSender<()>,
    ) -> Self {
        ScriptedModel {
            asked: Some(asked),
            ..ScriptedModel::new(answers)
        }
    }

    pub(crate) fn requests(&self) -> Vec<TurnRequest> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait]
impl Model for ScriptedModel {
    async fn turn(
        &self,
        req: &TurnRequest,
        observer: &mut dyn TurnObserver,
    ) -> dockhand_model::Result<TurnResponse> {
        self.requests.lock().unwrap().push(req.clone());
        if let Some(asked) = &self.asked {
            let _ = asked.send(());
        }
        let next = self.answers.lock().unwrap().pop_front();
        let Some(answer) = next else {
            return std::future::pending().await;
        };
        for (i, block) in answer.content.iter().enumerate() {
            if let ContentBlock::Text { text } = block {
                observer.text_delta(i as u32, text);
            }
        }
        Ok(answer)
    }
}

/// A sandbox whose persistent shell prints `replies[command]` and exits with
/// its code; any other command runs until the shell is killed. Test commands
/// are plain printable words, so the tool's `$'…'` quoting is just stripped.
pub(crate) struct FakeSandbox {
    pub(crate) replies: HashMap<&'static str, (&'static str, i32)>,
    /// Each command the shell receives, as it arrives.
    pub(crate) commands: mpsc::UnboundedSender<String>,
    /// Calls of `kill_all`.
    pub(crate) kill_alls: AtomicUsize,
    /// `run <command>` for each command, in a log tests may share.
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

struct FakeControl(tokio::task::AbortHandle);

#[async_trait]
impl ProcessControl for FakeControl {
    async fn kill(&self) {
        // Ends the shell task, which drops its end of the output: EOF.
        self.0.abort();
    }

    async fn killed_reason(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl Sandbox for FakeSandbox {
    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: "fake".into(),
            id: "fake-1".into(),
            task_id: None,
        }
    }

    async fn exec(
        &self,
        _: ExecRequest,
        _: OutputSink<'_>,
    ) -> dockhand_sandbox::Result<ExecOutput> {
        Err(SandboxError::Unsupported("exec in the fake sandbox".into()))
    }

    async fn spawn_shell(&self, _: Vec<String>) -> dockhand_sandbox::Result<ShellProcess> {
        let (stdin, shell_in) = tokio::io::duplex(64 << 10);
        let (output, mut shell_out) = tokio::io::duplex(64 << 10);
        let (replies, commands) = (self.replies.clone(), self.commands.clone());
        let log = self.log.clone();
        let shell = tokio::spawn(async move {
            let mut lines = BufReader::new(shell_in).lines();
            let mut command = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(quoted) = line.strip_prefix("eval $'") {
                    command = quoted.strip_suffix("' </dev/null").map(str::to_owned);
                    continue;
                }
                let (Some(command), Some(rest)) = (
                    command.take(),
                    line.strip_prefix(r"printf '\n__DOCKHAND_%s_%s__\n' "),
                ) else {
                    continue;
                };
                let nonce = rest.split(' ').next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(format!("run {command}"));
                let _ = commands.send(command.clone());
                let Some((out, code)) = replies.get(command.as_str()) else {
                    return std::future::pending().await;
                };
                let reply = format!("{out}\n__DOCKHAND_{nonce}_{code}__\n");
                let _ = shell_out.write_all(reply.as_bytes()).await;
            }
        });
        Ok(ShellProcess {
            stdin: Box::new(stdin),
            output: Box::new(output),
            control: Box::new(FakeControl(shell.abort_handle())),
        })
    }

    async fn kill_all(&self) -> dockhand_sandbox::Result<()> {
        self.kill_alls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn destroy(&self) -> dockhand_sandbox::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
/// The live text deltas seen.
pub(crate) struct Deltas(pub(crate) Mutex<Vec<(u32, String)>>);

impl LiveSink for Deltas {
    fn assistant_delta(&self, _: &TaskId, index: u32, text: &str) {
        self.0.lock().unwrap().push((index, text.to_owned()));
    }
}

/// A publisher nobody listens to.
pub(crate) struct Discard;

impl Publish for Discard {
    fn publish(&self, _: Vec<Committed>) {}
}
