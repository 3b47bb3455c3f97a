use std::time::Duration;
use std::time::SystemTime;

use reqwest::header::HeaderMap;
use reqwest::header::HeaderValue;

use super::*;

fn api(status: u16) -> ModelError {
    ModelError::Api {
        status,
        error_type: String::new(),
        message: String::new(),
        request_id: None,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(500),
        max_backoff: Duration::from_secs(8),
        ..RetryPolicy::default()
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = policy();
    let ms = |n| p.backoff(n, 0.0).as_millis();
    assert_eq!(
        [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)],
        [500, 1000, 2000, 4000, 8000, 8000]
    );
    // Huge retry counts must not overflow.
    assert_eq!(p.backoff(200, 0.0), Duration::from_secs(8));
}

#[test]
fn jitter_takes_off_at_most_a_quarter() {
    let p = policy();
    assert_eq!(p.backoff(1, 1.0), Duration::from_millis(750));
    assert_eq!(p.backoff(1, 0.5), Duration::from_millis(875));
    for _ in 0..100 {
        let wait = p.next_wait(&api(500), &RetryHints::default(), 1).unwrap();
        assert!(
            wait > Duration::from_millis(375) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }
}

#[test]
fn classification_follows_the_sdk() {
    let p = policy();
    let none = RetryHints::default();
    for status in [408, 409, 429, 500, 502, 503, 504, 529] {
        assert!(p.next_wait(&api(status), &none, 1).is_some(), "{status}");
    }
    for status in [400, 401, 403, 404, 413] {
        assert!(p.next_wait(&api(status), &none, 1).is_none(), "{status}");
    }
    assert!(
        p.next_wait(&ModelError::Stream("cut".into()), &none, 1)
            .is_some()
    );
    assert!(
        p.next_wait(&ModelError::Protocol("bad".into()), &none, 1)
            .is_none()
    );
}

#[test]
fn x_should_retry_overrides_the_status() {
    let p = policy();
    let yes = RetryHints {
        should_retry: Some(true),
        retry_after: None,
    };
    let no = RetryHints {
        should_retry: Some(false),
        retry_after: None,
    };
    assert!(p.next_wait(&api(400), &yes, 1).is_some());
    assert!(p.next_wait(&api(529), &no, 1).is_none());
}

#[test]
fn overload_gets_more_attempts() {
    let p = policy();
    let none = RetryHints::default();
    assert!(p.next_wait(&api(500), &none, 3).is_some());
    assert!(p.next_wait(&api(500), &none, 4).is_none());
    assert!(p.next_wait(&api(529), &none, 7).is_some());
    assert!(p.next_wait(&api(529), &none, 8).is_none());
    assert!(p.next_wait(&api(429), &none, 7).is_some());
}

#[test]
fn retry_after_is_used_as_the_wait() {
    let p = policy();
    let hints = RetryHints {
        should_retry: None,
        retry_after: Some(Duration::from_secs(3)),
    };
    assert_eq!(
        p.next_wait(&api(429), &hints, 1),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn hints_parse_retry_after_forms() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parse = |pairs: &[(&'static str, &str)]| RetryHints::from_headers(&headers(pairs), now);

    assert_eq!(
        parse(&[("retry-after", "2")]).retry_after,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        parse(&[("retry-after", "1.5")]).retry_after,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        parse(&[("retry-after-ms", "250"), ("retry-after", "9")]).retry_after,
        Some(Duration::from_millis(250)),
        "retry-after-ms wins"
    );
    let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
    assert_eq!(
        parse(&[("retry-after", &in_ten)]).retry_after,
        Some(Duration::from_secs(10))
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(10));
    assert_eq!(parse(&[("retry-after", &past)]).retry_after, None);

    // Honoured only when 0 < d <= 60 s.
    assert_eq!(parse(&[("retry-after", "0")]).retry_after, None);
    assert_eq!(
        parse(&[("retry-after", "60")]).retry_after,
        Some(Duration::from_secs(60))
    );
    assert_eq!(parse(&[("retry-after", "61")]).retry_after, None);
    assert_eq!(parse(&[("retry-after", "-1")]).retry_after, None);
    assert_eq!(parse(&[("retry-after", "soon")]).retry_after, None);

    assert_eq!(
        parse(&[("x-should-retry", "true")]).should_retry,
        Some(true)
    );
    assert_eq!(
        parse(&[("x-should-retry", "false")]).should_retry,
        Some(false)
    );
    assert_eq!(parse(&[("x-should-retry", "maybe")]).should_retry, None);
    assert_eq!(parse(&[]), RetryHints::default());
}
