//! The model crate's one error type, grouped by what the agent loop does with it.
//!
//! No variant ever carries the API key: messages are built from the API's own
//! error text, the URL host and the transport's cause chain (without URLs).

/// Why a model turn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The API answered with an error: a non-2xx status, or an `event: error`
    /// in the middle of a stream (mapped to the status of the matching HTTP
    /// error, e.g. `overloaded_error` → 529).
    ///
    /// Raised by the client for every error body. The client retries 408, 409,
    /// 429 and 5xx itself (see [`crate::RetryPolicy`]); when the loop receives
    /// this variant the attempts are used up or the error is permanent (another
    /// 4xx), and it fails the task with this message.
    #[error("model API returned {status}: {message}")]
    Api {
        /// HTTP status (or the status matching a mid-stream error's type).
        status: u16,
        /// The API's `error.type`, e.g. `overloaded_error`; empty if the body
        /// was not the API's JSON.
        error_type: String,
        /// The API's own `error.message`, or the (bounded) body text.
        message: String,
        /// The API's `request-id`, for support.
        request_id: Option<String>,
    },

    /// The API could not be reached: DNS, connect, TLS, or no response headers
    /// in time. Raised by the client before any response arrived; retried by
    /// the client; the loop fails the task when attempts run out.
    #[error("cannot reach the model API at {host}: {cause}")]
    Transport {
        /// The host of the base URL.
        host: String,
        /// The transport's cause chain, without URLs.
        cause: String,
    },

    /// A 200 stream broke off: the connection dropped, went idle longer than
    /// the idle timeout, or ended without `message_stop`. Raised by the client
    /// while streaming; retried by the client from scratch (there is no resume).
    #[error("model API stream broke off: {0}")]
    Stream(String),

    /// The response could not be understood (bad JSON, a tool input that does
    /// not parse, not an event stream). Raised by the client; not retried; the
    /// loop fails the task with this message.
    #[error("model API response not understood: {0}")]
    Protocol(String),

    /// The client is misconfigured (no API key, an unusable base URL). Raised
    /// when the client is built; never retried.
    #[error("model client misconfigured: {0}")]
    Config(String),
}

impl ModelError {
    /// Whether the error is transient by the SDK's rules, ignoring any
    /// `x-should-retry` header: 408, 409, 429 and 5xx, transport failures and
    /// broken streams.
    pub fn is_retryable(&self) -> bool {
        match self {
            ModelError::Api { status, .. } => matches!(*status, 408 | 409 | 429) || *status >= 500,
            ModelError::Transport { .. } | ModelError::Stream(_) => true,
            ModelError::Protocol(_) | ModelError::Config(_) => false,
        }
    }

    /// Whether the API said it is overloaded or rate limited (429, 529); the
    /// retry policy allows more attempts for these.
    pub fn is_overloaded(&self) -> bool {
        matches!(
            self,
            ModelError::Api {
                status: 429 | 529,
                ..
            }
        )
    }
}

/// The HTTP status the API uses for an `error.type`, for errors that arrive
/// inside a 200 stream. Unknown types count as 500 (a server-side failure).
pub(crate) fn status_for_error_type(error_type: &str) -> u16 {
    match error_type {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "conflict_error" => 409,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_display_is_the_apis_own_message() {
        let err = ModelError::Api {
            status: 401,
            error_type: "authentication_error".into(),
            message: "invalid x-api-key".into(),
            request_id: Some("req_1".into()),
        };
        assert_eq!(err.to_string(), "model API returned 401: invalid x-api-key");
        assert!(!err.is_retryable());
    }

    #[test]
    fn retryable_classification() {
        let api = |status| ModelError::Api {
            status,
            error_type: String::new(),
            message: String::new(),
            request_id: None,
        };
        for status in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(api(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(!api(status).is_retryable(), "{status}");
        }
        assert!(api(529).is_overloaded() && api(429).is_overloaded() && !api(500).is_overloaded());
        assert!(ModelError::Stream("x".into()).is_retryable());
        assert!(
            ModelError::Transport {
                host: "h".into(),
                cause: "c".into()
            }
            .is_retryable()
        );
        assert!(!ModelError::Protocol("x".into()).is_retryable());
        assert!(!ModelError::Config("x".into()).is_retryable());
    }

    #[test]
    fn error_types_map_to_statuses() {
        assert_eq!(status_for_error_type("overloaded_error"), 529);
        assert_eq!(status_for_error_type("api_error"), 500);
        assert_eq!(status_for_error_type("rate_limit_error"), 429);
        assert_eq!(status_for_error_type("invalid_request_error"), 400);
        assert_eq!(status_for_error_type("something_new"), 500);
    }
}
