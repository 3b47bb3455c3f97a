//! Org membership answers, remembered for at most ten minutes, so the
//! allowlist check at every request does not ask GitHub every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// Longest an org membership answer is trusted.
pub(crate) const MAX_MEMBERSHIP_TTL: Duration = Duration::from_secs(600);
/// Users whose membership is remembered at once; past this the oldest half goes.
const MAX_CACHED: usize = 10_000;

/// Org membership answers, by Dockhand user id.
#[derive(Default)]
pub(crate) struct Memberships {
    answers: Mutex<HashMap<i64, (Instant, bool)>>,
}

impl Memberships {
    pub(crate) fn get(&self, user: i64, ttl: Duration) -> Option<bool> {
        let answers = self.answers.lock().ok()?;
        let (at, member) = answers.get(&user)?;
        (at.elapsed() < ttl).then_some(*member)
    }

    pub(crate) fn put(&self, user: i64, member: bool) {
        let Ok(mut answers) = self.answers.lock() else {
            return;
        };
        if answers.len() >= MAX_CACHED {
            let mut ages: Vec<Instant> = answers.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            answers.retain(|_, (at, _)| *at > cut);
        }
        answers.insert(user, (Instant::now(), member));
    }
}
