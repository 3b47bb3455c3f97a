//! Per-key token buckets: `n` requests a minute, refilled evenly, with bounded memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// Most keys tracked; past this, full buckets are forgotten.
const MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A rate limiter for several classes of request.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(&'static str, String), Bucket>>,
}

impl RateLimiter {
    /// Takes one request for `key` in `class`, allowed `per_minute`. `Err` says how long to wait.
    pub fn check(&self, class: &'static str, key: &str, per_minute: u32) -> Result<(), Duration> {
        let per_minute = f64::from(per_minute.max(1));
        let rate = per_minute / 60.0;
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate < per_minute
            });
        }
        let b = buckets.entry((class, key.to_owned())).or_insert(Bucket {
            tokens: per_minute,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(per_minute);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - b.tokens) / rate).ceil().max(1.0),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn allows_the_rate_then_says_how_long_to_wait() {
        let l = super::RateLimiter::default();
        for _ in 0..10 {
            assert!(l.check("signin", "1.2.3.4", 10).is_ok());
        }
        let wait = l.check("signin", "1.2.3.4", 10).unwrap_err();
        assert!(wait.as_secs() >= 1 && wait.as_secs() <= 6, "{wait:?}");
        assert!(
            l.check("signin", "5.6.7.8", 10).is_ok(),
            "keys are separate"
        );
        assert!(
            l.check("tasks", "1.2.3.4", 10).is_ok(),
            "classes are separate"
        );
    }
}
