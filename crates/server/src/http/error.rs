//! API errors: a few client-meaningful kinds, each with its status, rendered as
//! `{"error": {"code", "message", "fields"?}}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use dockhand_protocol::ErrorBody;
use dockhand_protocol::ErrorResponse;
use dockhand_store::StoreError;

use crate::auth::AuthError;
use crate::tasks::TaskError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or invalid input.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// Per-field problems.
        fields: BTreeMap<String, String>,
    },
    /// 401: missing or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: signed in, but not allowed to do this (operator-only routes).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing, or not yours.
    #[error("{0}")]
    NotFound(String),
    /// 409: the thing is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// 413: too large.
    #[error("{message}")]
    TooLarge {
        /// What is too large.
        message: String,
        /// Per-field problems.
        fields: BTreeMap<String, String>,
    },
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: too many requests; try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// 502: GitHub (or another upstream) failed or refused.
    #[error("{0}")]
    BadGateway(String),
    /// 500: our fault; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut fields = BTreeMap::new();
        fields.insert(field.to_owned(), message.clone());
        ApiError::BadRequest {
            message: format!("{field}: {message}"),
            fields,
        }
    }

    /// A 413 about one field.
    pub fn field_too_large(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut fields = BTreeMap::new();
        fields.insert(field.to_owned(), message.clone());
        ApiError::TooLarge {
            message: format!("{field}: {message}"),
            fields,
        }
    }

    /// The standard 404 for a task.
    pub fn task_not_found() -> Self {
        ApiError::NotFound("no such task".into())
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error answering a request");
                "internal error; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        let fields = match self {
            ApiError::BadRequest { fields, .. } | ApiError::TooLarge { fields, .. }
                if !fields.is_empty() =>
            {
                Some(fields)
            }
            _ => None,
        };
        let body = ErrorResponse {
            error: ErrorBody {
                code: code.to_owned(),
                message,
                fields,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(msg) => ApiError::Conflict(msg),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "the body must be JSON, sent with content-type: application/json".into(),
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge {
                    message:
                        "the request body is larger than the server accepts (limits.max_body_bytes)"
                            .into(),
                    fields: BTreeMap::new(),
                }
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                message: format!("the body is not valid JSON: {}", source_text(&e)),
                fields: BTreeMap::new(),
            },
            JsonRejection::JsonDataError(e) => ApiError::BadRequest {
                message: format!(
                    "the body does not match the request schema: {}",
                    source_text(&e)
                ),
                fields: BTreeMap::new(),
            },
            other => ApiError::BadRequest {
                message: other.body_text(),
                fields: BTreeMap::new(),
            },
        }
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    let mut err: &dyn std::error::Error = e;
    while let Some(src) = err.source() {
        err = src;
    }
    err.to_string()
}

/// `Json` whose rejections are [`ApiError`]s.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid { field, message } => ApiError::field(field, message),
            TaskError::TooLarge { field, message } => ApiError::field_too_large(field, message),
            TaskError::NotFound => ApiError::task_not_found(),
            TaskError::Conflict(m) => ApiError::Conflict(m),
            TaskError::RateLimited {
                message,
                retry_after,
            } => ApiError::RateLimited {
                message,
                retry_after,
            },
            TaskError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => ApiError::Unauthorized(m),
            AuthError::Forbidden(m) => ApiError::Forbidden(m),
            AuthError::NotConfigured => ApiError::NotFound(e.to_string()),
            AuthError::RateLimited {
                message,
                retry_after,
            } => ApiError::RateLimited {
                message,
                retry_after,
            },
            AuthError::Upstream(m) => ApiError::BadGateway(m),
            AuthError::Store(e) => e.into(),
            AuthError::Internal(m) => ApiError::Internal(m),
        }
    }
}
