//! A fake Anthropic Messages API on loopback. It plays a [`Scenario`], speaks
//! the real SSE, JSON and error shapes (PROTOCOLS.md 1a), makes the checks the
//! real API makes (key, version, required fields, `tool_use` / `tool_result`
//! pairing) and records every request so tests can assert on what the model saw.
//!
//! Each conversation plays the scenario from its start, unless the scenario
//! counts globally (see [`Counting`]). `"stream": true` gets SSE; otherwise the
//! answer is one `message` body, and a stream fault becomes the matching HTTP
//! error (`stream_error`) or a body cut short (`cut_after_events`).
//!
//! Recording: every request whose body parses as JSON is recorded, in arrival
//! order, including those then rejected (bad key, a 400) and those answered
//! with a scripted fault, because a test asserting on retries or rejections
//! needs to see them. Bodies that are not JSON are not recorded. Rejected
//! requests do not consume turns.

mod checks;
mod errors;
mod playback;
mod reply;
mod scenario;
mod validate;

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
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::FakeError;
use errors::error_response;
use playback::Pick;
use playback::Playback;
use reply::Frame;
use reply::ReplyContext;
pub use scenario::Counting;
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
    requests: Vec<Value>,
    playback: Playback,
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
        let (listener, addr) = crate::listen::bind(options.listen).await?;
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

    /// How many scenario entries (answers and faults) have been used up,
    /// summed over conversations.
    pub fn turns_consumed(&self) -> usize {
        self.state.lock().playback.consumed()
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
        if let Ok(value) = &parsed {
            inner.requests.push(value.clone());
            state.recorded.send_replace(inner.requests.len());
        }
        inner.playback.next_id("req")
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

    let pick = state
        .lock()
        .playback
        .pick(&state.scenario, &body_json, body.len());
    match pick {
        Pick::Exhausted(n) => reject(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("the fake's scenario is exhausted: all {n} turns were played"),
        ),
        Pick::Status { status, fault } => errors::status_fault(status, fault, &request_id),
        Pick::Answer { turn, fault, ctx } if body_json["stream"] == true => {
            let delay = Duration::from_millis(state.scenario.token_delay_ms);
            streamed(turn, fault, &ctx, delay, request_id)
        }
        Pick::Answer { turn, fault, ctx } => whole(turn, fault, &ctx, request_id),
    }
}

/// A streamed answer, cut short or ended with `event: error` by a fault.
fn streamed(
    turn: &Turn,
    fault: Option<&Fault>,
    ctx: &ReplyContext,
    delay: Duration,
    request_id: String,
) -> Response {
    let mut frames: VecDeque<Frame> = reply::frames(turn, ctx).into();
    let mut cut = false;
    if let Some(fault) = fault {
        if let Some(n) = fault.cut_after_events {
            frames.truncate(n);
            cut = true;
        } else if let Some(error_type) = &fault.stream_error {
            frames.truncate(fault.after_events.unwrap_or(0));
            let message = errors::fault_message(fault, error_type);
            frames.push_back(reply::error_frame(error_type, &message));
        }
    }
    let body = Body::from_stream(event_stream(frames, delay, cut));
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (StatusCode::OK, headers, [("request-id", request_id)], body).into_response()
}

/// A non-streaming answer. With no stream to break, a `stream_error` fault
/// is the HTTP error it stands for, and a cut drops the connection half-way
/// through the body.
fn whole(turn: &Turn, fault: Option<&Fault>, ctx: &ReplyContext, request_id: String) -> Response {
    if let Some(fault) = fault
        && let Some(error_type) = fault.stream_error.as_deref()
    {
        let message = errors::fault_message(fault, error_type);
        let status = errors::status_for(error_type);
        return error_response(status, error_type, &message, &request_id, None);
    }
    let bytes = match serde_json::to_vec(&reply::message(turn, ctx)) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return error_response(status, "api_error", &e.to_string(), &request_id, None);
        }
    };
    // Any fault left is a cut.
    let body = match fault {
        None => Body::from(bytes),
        Some(_) => {
            let half = bytes.slice(..bytes.len() / 2);
            let cut = futures_util::stream::once(async {
                // Let hyper send the first half before the cut.
                tokio::task::yield_now().await;
                Err(io::Error::other("scenario fault: connection cut"))
            });
            Body::from_stream(futures_util::stream::once(async { Ok(half) }).chain(cut))
        }
    };
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (StatusCode::OK, headers, [("request-id", request_id)], body).into_response()
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
