//! A fake Anthropic Messages API on loopback. It plays a [`Scenario`], speaks
//! the real SSE and error shapes (PROTOCOLS.md 1a), makes the checks the real
//! API makes (key, version, required fields, `tool_use` / `tool_result`
//! pairing) and records every request so tests can assert on what the model saw.
//!
//! Recording: every request whose body parses as JSON is recorded, in arrival
//! order, including those then rejected (bad key, a 400) and those answered
//! with a scripted fault, because a test asserting on retries or rejections
//! needs to see them. Bodies that are not JSON are not recorded. Rejected
//! requests do not consume turns.

mod checks;
mod reply;
mod scenario;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use serde_json::Value;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::FakeError;
use reply::Frame;
use reply::ReplyContext;
use reply::Usage;
pub use scenario::Fault;
pub use scenario::Scenario;
pub use scenario::ToolUse;
pub use scenario::Turn;

/// Request bodies larger than this get 413, like the API's own limit.
const MAX_BODY_BYTES: usize = 32 << 20;

/// How the fake listens and whom it lets in.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// When set, any other key gets 401 `invalid x-api-key`; when unset any
    /// key is accepted (a missing one still gets 401).
    pub api_key: Option<String>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: None,
        }
    }
}

/// A running fake; stops when dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    state: Arc<Shared>,
    recorded: watch::Receiver<usize>,
    server: JoinHandle<()>,
}

struct Shared {
    scenario: Scenario,
    api_key: Option<String>,
    inner: Mutex<Inner>,
    recorded: watch::Sender<usize>,
}

#[derive(Default)]
struct Inner {
    /// Index of the next turn to play.
    next_turn: usize,
    requests: Vec<Value>,
    /// Input tokens of the last request with cache breakpoints: what a real
    /// cache would hold for the next one.
    cached_tokens: u64,
    /// For unique `msg_`, `req_` and `toolu_` ids.
    counter: u64,
}

impl FakeAnthropic {
    /// Starts the fake on a free loopback port with any key accepted.
    ///
    /// # Panics
    /// If the scenario is invalid or no port can be bound: this is for tests,
    /// where that is a bug in the test. Use [`FakeAnthropic::start_with`] to
    /// get the error instead.
    pub async fn start(scenario: Scenario) -> Self {
        match Self::start_with(scenario, FakeOptions::default()).await {
            Ok(fake) => fake,
            Err(e) => panic!("cannot start the fake Anthropic server: {e}"),
        }
    }

    /// Checks the scenario, binds and serves.
    pub async fn start_with(scenario: Scenario, options: FakeOptions) -> Result<Self, FakeError> {
        scenario.validate()?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| FakeError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FakeError::Bind {
            addr: options.listen,
            source,
        })?;
        let (recorded_tx, recorded) = watch::channel(0);
        let state = Arc::new(Shared {
            scenario,
            api_key: options.api_key,
            inner: Mutex::new(Inner::default()),
            recorded: recorded_tx,
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/_fake/requests", get(recorded_requests))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake Anthropic server stopped");
            }
        });
        Ok(FakeAnthropic {
            addr,
            state,
            recorded,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, to use as the client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The recorded request bodies, in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().requests.clone()
    }

    /// How many scenario entries (answers and faults) have been used up.
    pub fn turns_consumed(&self) -> usize {
        self.state.lock().next_turn
    }

    /// Waits until at least `n` requests are recorded, then returns them all.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Value> {
        let mut recorded = self.recorded.clone();
        // The sender lives in `self.state`, so it cannot close while we wait.
        let _ = recorded.wait_for(|count| *count >= n).await;
        self.requests()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `POST /v1/messages`.
async fn messages(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let request_id = {
        let mut inner = state.lock();
        inner.counter += 1;
        if let Ok(value) = &parsed {
            inner.requests.push(value.clone());
            state.recorded.send_replace(inner.requests.len());
        }
        format!("req_fake{:06}", inner.counter)
    };
    let reject = |status, error_type, message: &str| {
        error_response(status, error_type, message, &request_id, None)
    };

    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let key = header("x-api-key")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")));
    match (key, &state.api_key) {
        (None, _) => {
            return reject(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            );
        }
        (Some(key), Some(expected)) if key != expected => {
            return reject(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            );
        }
        _ => {}
    }
    if header("anthropic-version").is_none() {
        return reject(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let body_json = match parsed {
        Ok(value) => value,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("the body is not valid JSON: {e}"),
            );
        }
    };
    let checked = checks::check_fields(&body_json).and_then(|()| {
        checks::check_tool_pairing(
            body_json["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
    });
    if let Err(message) = checked {
        return reject(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
    }
    if body_json["stream"] != true {
        return reject(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "this fake only answers streaming requests; set \"stream\": true",
        );
    }

    // Pick what to play, under the lock so concurrent requests take turns in order.
    let (turn, fault, ctx) = {
        let mut inner = state.lock();
        let turns = &state.scenario.turns;
        let Some(entry) = turns.get(inner.next_turn) else {
            let message = format!(
                "the fake's scenario is exhausted: all {} turns were played",
                turns.len()
            );
            return reject(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        };
        inner.next_turn += 1;
        let (turn, fault) = match &entry.fault {
            None => (entry, None),
            Some(
                fault @ Fault {
                    status: Some(status),
                    ..
                },
            ) => {
                return status_fault(*status, fault, &request_id);
            }
            // Validation guarantees an answer follows a stream fault; it is
            // streamed but not consumed, so the retry gets it whole.
            Some(fault) => match turns.get(inner.next_turn) {
                Some(next) => (next, Some(fault.clone())),
                None => {
                    return reject(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "api_error",
                        "scenario has no turn after a stream fault",
                    );
                }
            },
        };
        let ctx = reply_context(&mut inner, turn, &body_json, body.len());
        (turn.clone(), fault, ctx)
    };

    let mut frames: VecDeque<Frame> = reply::frames(&turn, &ctx).into();
    let mut cut = false;
    if let Some(fault) = fault {
        if let Some(n) = fault.cut_after_events {
            frames.truncate(n);
            cut = true;
        } else if let Some(error_type) = &fault.stream_error {
            frames.truncate(fault.after_events.unwrap_or(0));
            let message = fault
                .message
                .clone()
                .unwrap_or_else(|| default_message(error_type).to_owned());
            frames.push_back(reply::error_frame(error_type, &message));
        }
    }
    let delay = Duration::from_millis(state.scenario.token_delay_ms);
    let body = Body::from_stream(event_stream(frames, delay, cut));
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (StatusCode::OK, headers, [("request-id", request_id)], body).into_response()
}

/// Ids and a deterministic usage for one answer. Input tokens are the body's
/// bytes / 4. With cache breakpoints, whatever the previous breakpointed
/// request held is read from the cache and 90% of the rest is written to it.
fn reply_context(inner: &mut Inner, turn: &Turn, body: &Value, body_len: usize) -> ReplyContext {
    let total = (body_len as u64 / 4).max(1);
    let usage = if checks::has_cache_control(body) {
        let read = inner.cached_tokens.min(total);
        let creation = (total - read) * 9 / 10;
        inner.cached_tokens = total;
        Usage {
            input_tokens: total - read - creation,
            cache_creation_input_tokens: creation,
            cache_read_input_tokens: read,
        }
    } else {
        Usage {
            input_tokens: total,
            ..Usage::default()
        }
    };
    let mut next_id = |prefix: &str| {
        inner.counter += 1;
        format!("{prefix}_fake{:06}", inner.counter)
    };
    ReplyContext {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        message_id: next_id("msg"),
        tool_ids: turn.tool_uses.iter().map(|_| next_id("toolu")).collect(),
        usage,
    }
}

/// The body stream: one chunk per event, yielding between events so hyper
/// flushes each one on its own; on a cut, an error that makes hyper drop the
/// connection mid-body.
fn event_stream(
    frames: VecDeque<Frame>,
    delay: Duration,
    cut: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let state = (frames, /*text_sent*/ false, /*done*/ false);
    futures_util::stream::unfold(state, move |(mut frames, mut text_sent, done)| async move {
        if done {
            return None;
        }
        // Let hyper flush what it has before the next event (or the cut).
        tokio::task::yield_now().await;
        match frames.pop_front() {
            Some(frame) => {
                if frame.is_text_delta() {
                    if text_sent && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    text_sent = true;
                }
                Some((Ok(frame.encode()), (frames, text_sent, false)))
            }
            None if cut => Some((
                Err(io::Error::other("scenario fault: connection cut")),
                (frames, text_sent, true),
            )),
            None => None,
        }
    })
}

/// A scripted HTTP error.
fn status_fault(status: u16, fault: &Fault, request_id: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error_type = error_type_for(status);
    let message = fault
        .message
        .clone()
        .unwrap_or_else(|| default_message(error_type).to_owned());
    error_response(status, error_type, &message, request_id, fault.retry_after)
}

/// `error.type` for a status (PROTOCOLS.md 1a, "Errors and retries").
fn error_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn default_message(error_type: &str) -> &'static str {
    match error_type {
        "authentication_error" => "invalid x-api-key",
        "billing_error" => "Your credit balance is too low to access the Anthropic API.",
        "permission_error" => {
            "Your API key does not have permission to use the specified resource."
        }
        "not_found_error" => "Not found",
        "conflict_error" => "Conflict",
        "request_too_large" => "Request exceeds the maximum allowed number of bytes.",
        "rate_limit_error" => "Number of request tokens has exceeded your per-minute rate limit",
        "timeout_error" => "Request timeout",
        "overloaded_error" => "Overloaded",
        "api_error" => "Internal server error",
        _ => "Invalid request",
    }
}

fn error_response(
    status: StatusCode,
    error_type: &str,
    message: &str,
    request_id: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    });
    let mut response =
        (status, [("request-id", request_id.to_owned())], Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// `GET /_fake/requests`: the recorded bodies as a JSON list.
async fn recorded_requests(State(state): State<Arc<Shared>>) -> Json<Vec<Value>> {
    Json(state.lock().requests.clone())
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "Not found",
        "req_fake_404",
        None,
    )
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
