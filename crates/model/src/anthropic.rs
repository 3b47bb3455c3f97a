//! The Anthropic Messages API client: one streaming `POST /v1/messages` per
//! attempt, assembled into a [`TurnResponse`], with the SDK's retry policy.

mod assemble;
mod request;
mod sse;

use std::fmt;
use std::time::Duration;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::Model;
use crate::ModelError;
use crate::Result;
use crate::RetryNotice;
use crate::RetryPolicy;
use crate::TurnObserver;
use crate::TurnRequest;
use crate::TurnResponse;
use crate::retry::RetryHints;
use assemble::Assembler;
use sse::SseParser;

/// The API version this client speaks (the SDK hard-codes the same).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Refuse single stream events larger than this (a runaway or hostile stream).
const MAX_EVENT_BYTES: usize = 16 << 20;
/// Read at most this much of an error body.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Keep at most this much of a non-JSON error body in the message.
const MAX_ERROR_TEXT: usize = 300;

/// How to reach the API.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// Scheme, host and optional path prefix, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    /// Sent as `x-api-key`; never logged, printed or put in an error.
    pub api_key: String,
    /// Retry limits and backoff.
    pub retry: RetryPolicy,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed while waiting for response headers or for the
    /// next chunk of a stream (the API sends pings, so silence means trouble).
    pub idle_timeout: Duration,
}

impl AnthropicConfig {
    /// The public API with default retry and timeouts.
    pub fn new(api_key: impl Into<String>) -> Self {
        AnthropicConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A [`Model`] backed by the Anthropic Messages API.
pub struct AnthropicClient {
    http: reqwest::Client,
    /// `{base}/v1/messages`.
    url: Url,
    /// `host[:port]` of the base URL, for error messages.
    host: String,
    /// Marked sensitive so HTTP-level debug output hides it.
    api_key: HeaderValue,
    retry: RetryPolicy,
    idle_timeout: Duration,
}

impl fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// A failed attempt and what its response headers said about retrying.
struct Failure {
    error: ModelError,
    hints: RetryHints,
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Failure {
            error,
            hints: RetryHints::default(),
        }
    }
}

impl AnthropicClient {
    /// Checks the configuration and builds the HTTP client.
    pub fn new(config: AnthropicConfig) -> Result<Self> {
        let base = Url::parse(config.base_url.trim_end_matches('/')).map_err(|e| {
            ModelError::Config(format!("base URL {:?} is not a URL: {e}", config.base_url))
        })?;
        let host = match (base.scheme(), base.host_str()) {
            ("http" | "https", Some(host)) => match base.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            _ => {
                return Err(ModelError::Config(format!(
                    "base URL {:?} is not an http(s) URL",
                    config.base_url
                )));
            }
        };
        let url = Url::parse(&format!(
            "{}/v1/messages",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| ModelError::Config(format!("base URL {:?}: {e}", config.base_url)))?;
        let mut api_key = HeaderValue::from_str(&config.api_key).map_err(|_| {
            ModelError::Config("the API key contains characters not allowed in a header".into())
        })?;
        api_key.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| {
                ModelError::Config(format!("cannot build the HTTP client: {}", cause_chain(e)))
            })?;
        Ok(AnthropicClient {
            http,
            url,
            host,
            api_key,
            retry: config.retry,
            idle_timeout: config.idle_timeout,
        })
    }

    /// One request: send, then read the stream to `message_stop`.
    async fn attempt(
        &self,
        body: Bytes,
        observer: &mut dyn TurnObserver,
    ) -> Result<TurnResponse, Failure> {
        let send = self
            .http
            .post(self.url.clone())
            .header("x-api-key", self.api_key.clone())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send();
        let transport = |cause: String| ModelError::Transport {
            host: self.host.clone(),
            cause,
        };
        let mut response = match tokio::time::timeout(self.idle_timeout, send).await {
            Err(_) => {
                return Err(
                    transport(format!("no response within {}", secs(self.idle_timeout))).into(),
                );
            }
            Ok(Err(e)) => return Err(transport(cause_chain(e)).into()),
            Ok(Ok(response)) => response,
        };
        let request_id = header(&response, "request-id");
        let status = response.status();
        if !status.is_success() {
            let hints = RetryHints::from_headers(response.headers(), SystemTime::now());
            let body = read_bounded(&mut response, MAX_ERROR_BODY).await;
            return Err(Failure {
                error: api_error(status, &body, request_id),
                hints,
            });
        }
        let content_type = header(&response, CONTENT_TYPE.as_str()).unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(ModelError::Protocol(format!(
                "expected an event stream, got {content_type:?}"
            ))
            .into());
        }

        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        let mut assembler = Assembler::new(request_id);
        loop {
            let chunk = match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Err(_) => {
                    return Err(ModelError::Stream(format!(
                        "no data for {}",
                        secs(self.idle_timeout)
                    ))
                    .into());
                }
                Ok(Err(e)) => return Err(ModelError::Stream(cause_chain(e)).into()),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            for event in parser.feed(&chunk)? {
                if assembler.handle(&event, observer)? {
                    // Done; whatever follows `message_stop` is not ours to wait for.
                    return Ok(assembler.finish()?);
                }
            }
        }
        Ok(assembler.finish()?)
    }
}

#[async_trait]
impl Model for AnthropicClient {
    async fn turn(
        &self,
        req: &TurnRequest,
        observer: &mut dyn TurnObserver,
    ) -> Result<TurnResponse> {
        let body = serde_json::to_vec(&request::request_body(req))
            .map_err(|e| ModelError::Protocol(format!("cannot serialize the request: {e}")))?;
        let body = Bytes::from(body);
        let mut attempt = 1;
        loop {
            let Failure { error, hints } = match self.attempt(body.clone(), observer).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let Some(wait) = self.retry.next_wait(&error, &hints, attempt) else {
                return Err(error);
            };
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "model request failed; retrying");
            observer.retry(&RetryNotice {
                reason: error.to_string(),
                attempt,
                wait,
            });
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// The API's error envelope: `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Builds the error for a non-2xx answer, from the API's JSON if it is that,
/// else from the body's text (a proxy's page) or the status' reason.
fn api_error(status: StatusCode, body: &[u8], header_request_id: Option<String>) -> ModelError {
    let status_code = status.as_u16();
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return ModelError::Api {
            status: status_code,
            error_type: envelope.error.kind,
            message: envelope.error.message,
            request_id: envelope.request_id.or(header_request_id),
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned()
    } else {
        match text.char_indices().nth(MAX_ERROR_TEXT) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    };
    ModelError::Api {
        status: status_code,
        error_type: String::new(),
        message,
        request_id: header_request_id,
    }
}

/// Reads up to `limit` bytes of a body; a failed read just ends it, since the
/// status already says what went wrong.
async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The error and its sources, without the URL (which the host already names).
fn cause_chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_key() {
        let config = AnthropicConfig::new("sk-ant-secret");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("sk-ant-secret") && shown.contains("[redacted]"),
            "{shown}"
        );
        let client = AnthropicClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("sk-ant-secret"));
    }

    #[test]
    fn base_urls_are_checked_and_joined() {
        let client = |url: &str| {
            let mut config = AnthropicConfig::new("k");
            config.base_url = url.to_owned();
            AnthropicClient::new(config)
        };
        assert_eq!(
            client("https://api.anthropic.com").unwrap().url.as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        let proxied = client("http://proxy:8080/anthropic/").unwrap();
        assert_eq!(
            (proxied.url.as_str(), proxied.host.as_str()),
            ("http://proxy:8080/anthropic/v1/messages", "proxy:8080")
        );
        assert!(matches!(
            client("ftp://x").unwrap_err(),
            ModelError::Config(_)
        ));
        assert!(matches!(
            client("not a url").unwrap_err(),
            ModelError::Config(_)
        ));
    }

    #[test]
    fn error_bodies_that_are_not_json_are_bounded() {
        let err = api_error(
            StatusCode::BAD_GATEWAY,
            "x".repeat(10_000).as_bytes(),
            Some("req_9".into()),
        );
        let ModelError::Api {
            status: 502,
            message,
            request_id,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (message.chars().count(), request_id.as_deref()),
            (MAX_ERROR_TEXT + 1, Some("req_9"))
        );
        let err = api_error(StatusCode::SERVICE_UNAVAILABLE, b"", None);
        assert_eq!(
            err.to_string(),
            "model API returned 503: Service Unavailable"
        );
    }
}
