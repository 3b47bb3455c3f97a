//! The API's error answers: the body, the `error.type` for each status and
//! back, and the default messages (PROTOCOLS.md 1a, "Errors and retries").

use axum::Json;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Serialize;

use super::scenario::Fault;

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// A scripted HTTP error, for a `status` fault.
pub(crate) fn status_fault(status: u16, fault: &Fault, request_id: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error_type = error_type_for(status);
    let message = fault_message(fault, error_type);
    error_response(status, error_type, &message, request_id, fault.retry_after)
}

/// A fault's message, or the API's usual one for `error_type`.
pub(crate) fn fault_message(fault: &Fault, error_type: &str) -> String {
    fault
        .message
        .clone()
        .unwrap_or_else(|| default_message(error_type).to_owned())
}

/// `error.type` for a status.
pub(crate) fn error_type_for(status: StatusCode) -> &'static str {
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

/// The status a non-streaming request gets for an error the stream would
/// have carried as `event: error`.
pub(crate) fn status_for(error_type: &str) -> StatusCode {
    let code = match error_type {
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
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

/// `{"type": "error", "error": {...}, "request_id": ...}` with the
/// `request-id` header, and `retry-after` when given.
pub(crate) fn error_response(
    status: StatusCode,
    error_type: &str,
    message: &str,
    request_id: &str,
    retry_after: Option<u64>,
) -> Response {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail {
            kind: error_type,
            message,
        },
        request_id,
    };
    let mut response =
        (status, [("request-id", request_id.to_owned())], Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
