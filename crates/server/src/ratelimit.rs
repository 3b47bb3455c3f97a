//! Per-key token buckets: `n` requests a minute, refilled evenly, in bounded
//! memory and constant time per request.
//!
//! Buckets live in two generations. Every minute the older one is dropped and
//! the current one becomes the older: a bucket untouched for a minute is full
//! again, so forgetting it changes nothing. A key seen again is moved back into
//! the current generation. Under a flood of new keys the generations also turn
//! over when the current one is full, which bounds memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::Ipv6Addr;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// Most keys held in one generation.
const MAX_KEYS: usize = 50_000;
/// How long a generation lasts; a bucket refills completely in this time.
const GENERATION: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    at: Instant,
}

type Key = (&'static str, String);

struct Generations {
    current: HashMap<Key, Bucket>,
    previous: HashMap<Key, Bucket>,
    started: Instant,
}

/// A rate limiter for several classes of request.
pub struct RateLimiter {
    buckets: Mutex<Generations>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                started: Instant::now(),
            }),
        }
    }
}

/// The key for a client address: an IPv6 address by its /64, since one host or
/// home network usually holds a whole /64; IPv4 (mapped ones too) as it is.
pub(crate) fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
        Ok(IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

impl RateLimiter {
    /// Takes one request for `key` in `class`, allowed `per_minute`. `Err` says how long to wait.
    pub fn check(&self, class: &'static str, key: &str, per_minute: u32) -> Result<(), Duration> {
        let per_minute = f64::from(per_minute.max(1));
        let rate = per_minute / 60.0;
        let now = Instant::now();
        let Ok(mut g) = self.buckets.lock() else {
            return Ok(());
        };
        if now.duration_since(g.started) >= GENERATION || g.current.len() >= MAX_KEYS {
            g.previous = std::mem::take(&mut g.current);
            g.started = now;
        }
        let Generations {
            current, previous, ..
        } = &mut *g;
        let b = current
            .entry((class, key.to_owned()))
            .or_insert_with_key(|k| {
                previous.remove(k).unwrap_or(Bucket {
                    tokens: per_minute,
                    at: now,
                })
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

    /// [`check`](Self::check) keyed by client address ([`ip_key`]).
    pub fn check_ip(&self, class: &'static str, ip: &str, per_minute: u32) -> Result<(), Duration> {
        self.check(class, &ip_key(ip), per_minute)
    }

    /// Keys held, in both generations.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buckets
            .lock()
            .map(|g| g.current.len() + g.previous.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_rate_then_says_how_long_to_wait() {
        let l = RateLimiter::default();
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

    #[test]
    fn ipv6_addresses_share_their_64() {
        let l = RateLimiter::default();
        for i in 0..5 {
            assert!(
                l.check_ip("signin", &format!("2001:db8:1:2::{i:x}"), 5)
                    .is_ok()
            );
        }
        assert!(
            l.check_ip("signin", "2001:db8:1:2:ffff::9", 5).is_err(),
            "same /64"
        );
        assert!(
            l.check_ip("signin", "2001:db8:1:3::1", 5).is_ok(),
            "another /64"
        );
        assert_eq!(ip_key("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(ip_key("10.1.2.3"), "10.1.2.3");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let l = RateLimiter::default();
        for i in 0..(3 * MAX_KEYS) {
            let _ = l.check("signin", &i.to_string(), 10);
        }
        assert!(l.held() <= 2 * MAX_KEYS, "{}", l.held());
        // A key seen in the previous generation keeps its bucket.
        let l = RateLimiter::default();
        for _ in 0..3 {
            l.check("x", "k", 3).unwrap();
        }
        {
            let mut g = l.buckets.lock().unwrap();
            g.previous = std::mem::take(&mut g.current);
        }
        assert!(
            l.check("x", "k", 3).is_err(),
            "still empty after moving back"
        );
    }
}
