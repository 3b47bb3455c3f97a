//! One run of the loop. Flow: load the conversation → answer tool calls left
//! open by a crash (never re-running one that had started) → then repeat: take
//! waiting user messages, check budgets, one model turn, record it, run its
//! tools — until the model ends its turn with nothing left in the inbox.

use std::sync::Arc;
use std::time::Instant;

use dockhand_model::ContentBlock;
use dockhand_model::Message;
use dockhand_model::Model;
use dockhand_model::RetryNotice;
use dockhand_model::Role;
use dockhand_model::StopReason;
use dockhand_model::TurnObserver;
use dockhand_model::TurnRequest;
use dockhand_protocol::AssistantTextEvent;
use dockhand_protocol::EventBody;
use dockhand_protocol::RetryEvent;
use dockhand_protocol::TaskId;
use dockhand_sandbox::Sandbox;
use dockhand_store::MessageRole;
use dockhand_store::Store;
use dockhand_store::StoreError;
use dockhand_store::ToolCallResult;
use dockhand_store::ToolCallState;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::AgentConfig;
use crate::AgentError;
use crate::LiveSink;
use crate::checkpoint::Checkpointer;
use crate::checkpoint::InFlight;
use crate::tools::OutputStreamer;
use crate::tools::ToolOutcome;
use crate::tools::Tools;

/// Everything a run needs.
pub struct AgentCtx {
    /// The task.
    pub task: TaskId,
    /// Where the conversation and events go.
    pub store: Store,
    /// Where live deltas go.
    pub live: Arc<dyn LiveSink>,
    /// The model.
    pub model: Arc<dyn Model>,
    /// The task's sandbox.
    pub sandbox: Arc<dyn Sandbox>,
    /// Settings.
    pub config: AgentConfig,
    /// Fires when a person cancels the task.
    pub cancel: CancellationToken,
    /// Snapshots the workspace after each turn's tool calls; none when `None`.
    pub checkpointer: Option<Arc<dyn Checkpointer>>,
}

/// How a run ended well.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The model's final text.
    pub final_text: String,
    /// Model turns taken in this run.
    pub turns: u32,
}

/// Runs the loop until the model ends its turn, a budget runs out, or the task is cancelled.
pub async fn run(ctx: &AgentCtx) -> Result<RunSummary, AgentError> {
    let mut tools = Tools::new(ctx.sandbox.clone(), ctx.config.tools.clone());
    let mut checkpoint = InFlight::default();
    let deadline = tokio::time::Instant::now() + ctx.config.budgets.max_wall;
    let inner = run_inner(ctx, &mut tools, &mut checkpoint);
    let result = match tokio::time::timeout_at(deadline, inner).await {
        Ok(r) => r,
        Err(_) => Err(AgentError::Budget(format!(
            "wall time: the run took longer than {} s (agent.max_wall_secs)",
            ctx.config.budgets.max_wall.as_secs()
        ))),
    };
    // However the run ended, its last turn's checkpoint completes first.
    checkpoint.finish().await;
    tools.shutdown().await;
    result
}

struct Conversation {
    messages: Vec<Message>,
}

impl Conversation {
    fn load(store: &Store, task: &TaskId) -> Result<Self, AgentError> {
        let mut messages = Vec::new();
        for m in store.messages(task)? {
            let content: Vec<ContentBlock> =
                serde_json::from_str(&m.content).map_err(StoreError::from)?;
            messages.push(Message {
                role: model_role(m.role),
                content,
            });
        }
        Ok(Conversation { messages })
    }

    async fn push(
        &mut self,
        ctx: &AgentCtx,
        msg: Message,
        consumed: Vec<i64>,
        events: Vec<EventBody>,
    ) -> Result<(), AgentError> {
        let role = stored_role(msg.role);
        let content = serde_json::to_string(&msg.content).map_err(StoreError::from)?;
        let idx = self.messages.len() as u32;
        ctx.store
            .append_message(&ctx.task, idx, role, content, consumed, events)
            .await?;
        self.messages.push(msg);
        Ok(())
    }

    fn last(&self) -> Option<&Message> {
        self.messages.last()
    }

    /// The messages to send, with consecutive same-role messages merged (a
    /// follow-up after tool results, for example), as the API expects.
    fn request_messages(&self) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::with_capacity(self.messages.len());
        for m in &self.messages {
            match out.last_mut() {
                Some(prev) if prev.role == m.role => prev.content.extend(m.content.iter().cloned()),
                _ => out.push(m.clone()),
            }
        }
        out
    }
}

fn model_role(role: MessageRole) -> Role {
    match role {
        MessageRole::User => Role::User,
        MessageRole::Assistant => Role::Assistant,
    }
}

fn stored_role(role: Role) -> MessageRole {
    match role {
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
    }
}

/// A tool call the model wrote.
#[derive(Clone, Debug, PartialEq)]
struct ToolUse {
    /// The `tool_use` id its result must name.
    id: String,
    /// Tool name.
    name: String,
    /// Tool input.
    input: Value,
}

fn tool_uses(content: &[ContentBlock]) -> Vec<ToolUse> {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, name, input } => Some(ToolUse {
                id: id.clone(),
                name: name.clone(),
                input: input.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn texts(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn run_inner(
    ctx: &AgentCtx,
    tools: &mut Tools,
    checkpoint: &mut InFlight,
) -> Result<RunSummary, AgentError> {
    let mut conv = Conversation::load(&ctx.store, &ctx.task)?;
    let mut turns = 0u32;
    let mut tokens = 0u64;

    // A crash (or cancel) may have left the last turn's tool calls unanswered.
    if let Some(last) = conv.last().filter(|m| m.role == Role::Assistant) {
        let open = tool_uses(&last.content);
        if !open.is_empty() {
            let (results, cancelled) = recover_tool_results(ctx, tools, open).await?;
            let turn = conv.messages.len() as u32;
            conv.push(
                ctx,
                Message {
                    role: Role::User,
                    content: results,
                },
                vec![],
                vec![],
            )
            .await?;
            checkpoint.start(ctx.checkpointer.as_ref(), turn);
            if cancelled {
                return Err(AgentError::Cancelled);
            }
        }
    }

    let mut resend = false;
    loop {
        let inbox = ctx.store.inbox(&ctx.task)?;
        if !inbox.is_empty() {
            let consumed = inbox.iter().map(|i| i.id).collect();
            let content = inbox
                .into_iter()
                .map(|i| ContentBlock::Text { text: i.text })
                .collect();
            conv.push(
                ctx,
                Message {
                    role: Role::User,
                    content,
                },
                consumed,
                vec![],
            )
            .await?;
        }
        match conv.last() {
            Some(m) if m.role == Role::User || resend => {}
            Some(m) => {
                return Ok(RunSummary {
                    final_text: texts(&m.content),
                    turns,
                });
            }
            None => return Err(StoreError::Corrupt("the task has no prompt".into()).into()),
        }
        resend = false;
        check_budgets(ctx, turns, tokens)?;
        if ctx.cancel.is_cancelled() {
            return Err(AgentError::Cancelled);
        }

        let req = TurnRequest {
            model: ctx.config.model.clone(),
            system: ctx.config.system_prompt.clone(),
            tools: tools.specs(),
            messages: conv.request_messages(),
            max_tokens: ctx.config.max_tokens,
        };
        let mut observer = Observer { ctx };
        let resp = tokio::select! {
            r = ctx.model.turn(&req, &mut observer) => r?,
            _ = ctx.cancel.cancelled() => return Err(AgentError::Cancelled),
        };
        turns += 1;
        tokens += resp.usage.total();
        ctx.store.record_usage(&ctx.task, resp.usage).await?;

        let text_events = resp
            .content
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                ContentBlock::Text { text } if !text.is_empty() => {
                    Some(EventBody::AssistantText(AssistantTextEvent {
                        text: text.clone(),
                        index: i as u32,
                    }))
                }
                _ => None,
            })
            .collect();
        let calls = tool_uses(&resp.content);
        conv.push(
            ctx,
            Message {
                role: Role::Assistant,
                content: resp.content,
            },
            vec![],
            text_events,
        )
        .await?;

        if !calls.is_empty() {
            if resp.stop_reason == StopReason::MaxTokens {
                return Err(AgentError::TruncatedToolCall);
            }
            // The previous turn's checkpoint completes before this turn's tools run.
            checkpoint.finish().await;
            let (results, cancelled) = run_tools(ctx, tools, calls).await?;
            let turn = conv.messages.len() as u32;
            conv.push(
                ctx,
                Message {
                    role: Role::User,
                    content: results,
                },
                vec![],
                vec![],
            )
            .await?;
            // It runs while the model thinks about the results.
            checkpoint.start(ctx.checkpointer.as_ref(), turn);
            if cancelled {
                return Err(AgentError::Cancelled);
            }
            continue;
        }
        match resp.stop_reason {
            StopReason::EndTurn
            | StopReason::StopSequence
            | StopReason::MaxTokens
            | StopReason::ToolUse => {}
            StopReason::PauseTurn => resend = true,
            StopReason::Refusal => {
                let last = conv.last().map(|m| texts(&m.content)).unwrap_or_default();
                return Err(AgentError::Refusal(last));
            }
            StopReason::ModelContextWindowExceeded => return Err(AgentError::ContextWindow),
            StopReason::Other(s) => return Err(AgentError::UnknownStop(s)),
        }
    }
}

fn check_budgets(ctx: &AgentCtx, turns: u32, tokens: u64) -> Result<(), AgentError> {
    let b = &ctx.config.budgets;
    if turns >= b.max_turns {
        return Err(AgentError::Budget(format!(
            "turns: {turns} model turns used (agent.max_turns = {})",
            b.max_turns
        )));
    }
    if tokens >= b.max_tokens {
        return Err(AgentError::Budget(format!(
            "tokens: {tokens} tokens used (agent.max_tokens = {})",
            b.max_tokens
        )));
    }
    Ok(())
}

fn result_block(id: String, outcome: &ToolOutcome) -> ContentBlock {
    ContentBlock::ToolResult {
        tool_use_id: id,
        content: outcome.text.clone(),
        is_error: outcome.is_error,
    }
}

/// Runs a turn's tool calls in order. Returns the results, and whether a cancel
/// stopped them (the calls not reached are answered as not run).
async fn run_tools(
    ctx: &AgentCtx,
    tools: &mut Tools,
    calls: Vec<ToolUse>,
) -> Result<(Vec<ContentBlock>, bool), AgentError> {
    let mut results = Vec::with_capacity(calls.len());
    let mut cancelled = false;
    for ToolUse { id, name, input } in calls {
        if cancelled || ctx.cancel.is_cancelled() {
            cancelled = true;
            let outcome = ToolOutcome::error("not run: the task was cancelled");
            results.push(result_block(id, &outcome));
            continue;
        }
        ctx.store
            .tool_call_started(&ctx.task, &id, &name, input.clone())
            .await?;
        let started = Instant::now();
        let mut out = OutputStreamer::new(
            ctx.store.clone(),
            ctx.task.clone(),
            id.clone(),
            ctx.config.tools.stream_cap,
        );
        let outcome = tokio::select! {
            o = tools.call(&name, &input, &mut out) => o,
            _ = ctx.cancel.cancelled() => {
                cancelled = true;
                ToolOutcome::error("interrupted: the task was cancelled while this was running")
            }
        };
        if cancelled {
            tools.shutdown().await;
            if let Err(e) = ctx.sandbox.kill_all().await {
                tracing::warn!(task = %ctx.task, error = %e, "killing sandbox processes after cancel");
            }
        }
        out.finish();
        ctx.store
            .tool_call_finished(
                &ctx.task,
                ToolCallResult {
                    tool_use_id: id.clone(),
                    name,
                    output: outcome.text.clone(),
                    is_error: outcome.is_error,
                    exit_code: outcome.exit_code,
                    duration_ms: started.elapsed().as_millis() as u64,
                },
            )
            .await?;
        results.push(result_block(id, &outcome));
    }
    Ok((results, cancelled))
}

/// Answers the tool calls of the last stored turn after a restart: a call that
/// finished keeps its result; one that had started is reported as interrupted
/// (it is never run twice); one that never started runs now.
async fn recover_tool_results(
    ctx: &AgentCtx,
    tools: &mut Tools,
    calls: Vec<ToolUse>,
) -> Result<(Vec<ContentBlock>, bool), AgentError> {
    let rows = ctx.store.tool_calls(&ctx.task)?;
    let mut results = Vec::with_capacity(calls.len());
    let mut not_started = Vec::new();
    for call in calls {
        let id = call.id.clone();
        match rows.iter().find(|r| r.tool_use_id == id) {
            Some(row) if row.state == ToolCallState::Done => {
                let outcome = ToolOutcome {
                    text: row.output.clone().unwrap_or_default(),
                    is_error: row.is_error,
                    exit_code: row.exit_code,
                };
                results.push((id, Some(outcome)));
            }
            Some(row) => {
                let captured =
                    ctx.store
                        .streamed_output(&ctx.task, &id, ctx.config.tools.result_cap)?;
                let mut text = String::from(
                    "interrupted: Dockhand restarted while this call was running, so it did not finish \
                     and was not run again. Check its effects before repeating it.",
                );
                if !captured.is_empty() {
                    text.push_str("\nOutput captured before the interruption:\n");
                    text.push_str(&captured);
                }
                let outcome = ToolOutcome::error(text);
                ctx.store
                    .tool_call_finished(
                        &ctx.task,
                        ToolCallResult {
                            tool_use_id: id.clone(),
                            name: row.name.clone(),
                            output: outcome.text.clone(),
                            is_error: true,
                            exit_code: None,
                            duration_ms: (dockhand_store::now_ms() - row.started_at).max(0) as u64,
                        },
                    )
                    .await?;
                results.push((id, Some(outcome)));
            }
            None => {
                not_started.push(call);
                results.push((id, None));
            }
        }
    }
    let (ran, cancelled) = run_tools(ctx, tools, not_started).await?;
    let mut ran = ran.into_iter();
    let blocks = results
        .into_iter()
        .map(|(id, outcome)| match outcome {
            Some(o) => result_block(id, &o),
            None => ran.next().unwrap_or_else(|| {
                result_block(id, &ToolOutcome::error("not run: the task was cancelled"))
            }),
        })
        .collect();
    Ok((blocks, cancelled))
}

struct Observer<'a> {
    ctx: &'a AgentCtx,
}

impl TurnObserver for Observer<'_> {
    fn text_delta(&mut self, index: u32, text: &str) {
        self.ctx.live.assistant_delta(&self.ctx.task, index, text);
    }

    fn retry(&mut self, notice: &RetryNotice) {
        let body = EventBody::Retry(RetryEvent {
            reason: notice.reason.clone(),
            attempt: notice.attempt,
            wait_ms: notice.wait.as_millis() as u64,
        });
        if let Err(e) = self.ctx.store.append(&self.ctx.task, body) {
            tracing::warn!(task = %self.ctx.task, error = %e, "dropping retry event");
        }
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
