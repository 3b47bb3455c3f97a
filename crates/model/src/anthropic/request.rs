//! The JSON body of `POST /v1/messages`, with prompt-caching breakpoints.

use serde::Serialize;
use serde_json::Value;

use crate::ContentBlock;
use crate::Message;
use crate::Role;
use crate::ToolSpec;
use crate::TurnRequest;

/// The API accepts at most this many `cache_control` breakpoints.
const MAX_BREAKPOINTS: usize = 4;

/// The request body (`MessageCreateParams`), with the fields this client sends.
#[derive(Debug, Serialize)]
pub(crate) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition>,
    messages: Vec<RequestMessage<'a>>,
    stream: bool,
}

/// A block of the system prompt: `{"type":"text","text",…}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "text")]
struct SystemBlock<'a> {
    text: &'a str,
    cache_control: CacheControl,
}

/// A prompt-caching breakpoint: the prefix up to here is cached.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CacheControl {
    /// `{"type":"ephemeral"}`: the default lifetime.
    Ephemeral,
}

/// An entry of `tools`.
#[derive(Debug, Serialize)]
struct ToolDefinition {
    #[serde(flatten)]
    tool: AnthropicTool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

/// The Anthropic-defined tools offered, by type. Their names are fixed by the API
/// and they take no `input_schema`.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
enum AnthropicTool {
    #[serde(rename = "bash_20250124")]
    Bash { name: &'static str },
    #[serde(rename = "text_editor_20250728")]
    TextEditor {
        name: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_characters: Option<u32>,
    },
}

impl From<&ToolSpec> for AnthropicTool {
    fn from(spec: &ToolSpec) -> Self {
        match spec {
            ToolSpec::Bash => AnthropicTool::Bash { name: "bash" },
            ToolSpec::TextEditor { max_characters } => AnthropicTool::TextEditor {
                name: "str_replace_based_edit_tool",
                max_characters: *max_characters,
            },
        }
    }
}

/// A message as sent: the caller's blocks, borrowed, one of them perhaps marked.
#[derive(Debug, Serialize)]
struct RequestMessage<'a> {
    role: Role,
    content: Vec<RequestBlock<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum RequestBlock<'a> {
    /// The block exactly as stored.
    Plain(&'a ContentBlock),
    /// The block's fields plus a breakpoint. Only blocks that serialize as an
    /// object without one of their own are marked (see [`cacheable`]).
    Marked {
        #[serde(flatten)]
        block: &'a ContentBlock,
        cache_control: CacheControl,
    },
}

/// Builds the streaming request body. Breakpoints go on the last tool, the
/// system prompt and the newest cacheable block of the last message, so each
/// turn reads the previous turn's prefix from the cache. The caller's messages
/// are borrowed, never changed.
pub(crate) fn request_body(req: &TurnRequest) -> MessagesRequest<'_> {
    // The API rejects empty text blocks, so an empty prompt is left out.
    let system: Vec<SystemBlock<'_>> = (!req.system.is_empty())
        .then_some(SystemBlock {
            text: &req.system,
            cache_control: CacheControl::Ephemeral,
        })
        .into_iter()
        .collect();
    let mut tools: Vec<ToolDefinition> = req
        .tools
        .iter()
        .map(|spec| ToolDefinition {
            tool: spec.into(),
            cache_control: None,
        })
        .collect();
    if let Some(last) = tools.last_mut() {
        last.cache_control = Some(CacheControl::Ephemeral);
    }
    let used = system.len() + usize::from(!tools.is_empty());
    MessagesRequest {
        model: &req.model,
        max_tokens: req.max_tokens,
        system,
        tools,
        messages: with_breakpoint(&req.messages, used),
        stream: true,
    }
}

/// The messages, with a breakpoint on the newest block of the last message that
/// can carry one, unless the blocks replayed verbatim already use up the allowance.
fn with_breakpoint(messages: &[Message], used: usize) -> Vec<RequestMessage<'_>> {
    let existing = messages
        .iter()
        .flat_map(|m| &m.content)
        .filter(|b| has_breakpoint(b))
        .count();
    let marked = messages
        .last()
        .filter(|_| used + existing < MAX_BREAKPOINTS)
        .and_then(|m| m.content.iter().rposition(cacheable))
        .map(|block| (messages.len() - 1, block));
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| RequestMessage {
            role: m.role,
            content: m
                .content
                .iter()
                .enumerate()
                .map(|(j, block)| match marked {
                    Some(at) if at == (i, j) && !has_breakpoint(block) => RequestBlock::Marked {
                        block,
                        cache_control: CacheControl::Ephemeral,
                    },
                    // A replayed block that is a breakpoint already keeps its own.
                    _ => RequestBlock::Plain(block),
                })
                .collect(),
        })
        .collect()
}

/// Thinking blocks cannot carry `cache_control`, nor can empty text blocks.
fn cacheable(block: &ContentBlock) -> bool {
    match block {
        ContentBlock::Text { text } => !text.is_empty(),
        ContentBlock::ToolUse { .. } | ContentBlock::ToolResult { .. } => true,
        ContentBlock::Other(block) => match block.get("type").and_then(Value::as_str) {
            Some("thinking" | "redacted_thinking") | None => false,
            Some("text") => block
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty()),
            Some(_) => true,
        },
    }
}

/// Only blocks replayed verbatim can arrive with a breakpoint.
fn has_breakpoint(block: &ContentBlock) -> bool {
    matches!(block, ContentBlock::Other(b) if b.get("cache_control").is_some())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
