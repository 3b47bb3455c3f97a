//! When to retry a failed model request and how long to wait, following the
//! Anthropic SDK (`_base_client._should_retry` and `_calculate_retry_timeout`).

use std::time::Duration;
use std::time::SystemTime;

use reqwest::header::HeaderMap;

use crate::ModelError;

/// The longest server-requested wait we honour; longer (or zero) hints fall
/// back to our own backoff, as in the SDK.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Retry limits and backoff for model requests.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included, for transient errors other than
    /// overload (408, 409, 5xx, transport failures, broken streams).
    pub max_attempts: u32,
    /// Attempts in total when the API is rate limited or overloaded (429, 529):
    /// these clear up on their own, so they are worth waiting out longer.
    pub max_attempts_overloaded: u32,
    /// The first backoff; doubled per retry.
    pub base: Duration,
    /// The backoff cap (before jitter).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_attempts_overloaded: 8,
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// What the response headers say about retrying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryHints {
    /// `x-should-retry: true|false`, which overrides the status rules.
    pub should_retry: Option<bool>,
    /// `retry-after-ms` or `retry-after`, kept only when 0 < wait <= 60 s.
    pub retry_after: Option<Duration>,
}

impl RetryHints {
    /// Reads `x-should-retry`, `retry-after-ms` and `retry-after` (seconds or
    /// an HTTP date, measured from `now`).
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let should_retry = match header("x-should-retry") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let from_ms = header("retry-after-ms")
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
        let retry_after = from_ms
            .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, now)))
            .filter(|d| !d.is_zero() && *d <= MAX_RETRY_AFTER);
        RetryHints {
            should_retry,
            retry_after,
        }
    }
}

/// `retry-after` is either (fractional) seconds or an HTTP date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    at.duration_since(now).ok()
}

impl RetryPolicy {
    /// Whether to try again after attempt number `attempt` (1-based) failed
    /// with `err`, and if so how long to wait first.
    pub fn next_wait(
        &self,
        err: &ModelError,
        hints: &RetryHints,
        attempt: u32,
    ) -> Option<Duration> {
        if !hints.should_retry.unwrap_or_else(|| err.is_retryable()) {
            return None;
        }
        let limit = if err.is_overloaded() {
            self.max_attempts_overloaded
        } else {
            self.max_attempts
        };
        if attempt >= limit {
            return None;
        }
        let retries_so_far = attempt.saturating_sub(1);
        Some(
            hints
                .retry_after
                .unwrap_or_else(|| self.backoff(retries_so_far, rand::random::<f64>())),
        )
    }

    /// `min(base * 2^n, max_backoff) * (1 - 0.25 * jitter)`, with `jitter` in
    /// `[0, 1)`; `n` counts the retries already made.
    pub fn backoff(&self, retries_so_far: u32, jitter: f64) -> Duration {
        let factor = 1u32.checked_shl(retries_so_far).unwrap_or(u32::MAX);
        let capped = self.base.saturating_mul(factor).min(self.max_backoff);
        capped.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
