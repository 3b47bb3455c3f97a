//! Short-lived sign-in state kept in memory (OAuth states, device flows,
//! WebSocket tickets): losing it on a restart only means signing in again.
//! Bounded twice: in all, and per owner (a user, or a client address before
//! anyone is signed in), so one client cannot crowd out everyone else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// Why an item was not kept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// This owner holds its share already.
    Owner,
    /// Everyone together holds the global cap.
    All,
}

struct Entry<T> {
    expires: Instant,
    owner: String,
    value: T,
}

struct Items<T> {
    by_key: HashMap<String, Entry<T>>,
    per_owner: HashMap<String, usize>,
}

/// Items that expire, capped in all and per owner.
pub(crate) struct Pending<T> {
    items: Mutex<Items<T>>,
    max: usize,
    per_owner: usize,
}

impl<T> Items<T> {
    fn forget(&mut self, owner: &str) {
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(owner);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<Entry<T>> {
        let entry = self.by_key.remove(key)?;
        self.forget(&entry.owner);
        Some(entry)
    }

    fn purge(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .by_key
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }
}

impl<T> Pending<T> {
    /// At most `max` items in all and `per_owner` for any one owner.
    pub(crate) fn new(max: usize, per_owner: usize) -> Pending<T> {
        Pending {
            items: Mutex::new(Items {
                by_key: HashMap::new(),
                per_owner: HashMap::new(),
            }),
            max,
            per_owner,
        }
    }

    /// Keeps `value` under `key` for `ttl`, on `owner`'s account.
    pub(crate) fn put(
        &self,
        key: String,
        owner: &str,
        ttl: Duration,
        value: T,
    ) -> Result<(), Full> {
        let mut items = self.items.lock().map_err(|_| Full::All)?;
        let now = Instant::now();
        let full = |items: &Items<T>| {
            if items.per_owner.get(owner).copied().unwrap_or(0) >= self.per_owner {
                Some(Full::Owner)
            } else if items.by_key.len() >= self.max {
                Some(Full::All)
            } else {
                None
            }
        };
        if full(&items).is_some() {
            // Only when near a cap does it pay to look for expired items.
            items.purge(now);
            if let Some(why) = full(&items) {
                return Err(why);
            }
        }
        items.remove(&key);
        *items.per_owner.entry(owner.to_owned()).or_default() += 1;
        let entry = Entry {
            expires: now + ttl,
            owner: owner.to_owned(),
            value,
        };
        items.by_key.insert(key, entry);
        Ok(())
    }

    /// Takes the live item under `key`, with its owner.
    pub(crate) fn take(&self, key: &str) -> Option<(String, T)> {
        let mut items = self.items.lock().ok()?;
        let entry = items.remove(key)?;
        (entry.expires > Instant::now()).then_some((entry.owner, entry.value))
    }

    /// Drops expired items (on a schedule, so memory follows what is live).
    pub(crate) fn purge(&self) {
        if let Ok(mut items) = self.items.lock() {
            items.purge(Instant::now());
        }
    }

    /// How many items are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.lock().map(|i| i.by_key.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn each_owner_gets_a_share_and_everyone_a_total() {
        let p = Pending::new(5, 2);
        assert_eq!(p.put("a1".into(), "alice", MINUTE, ()), Ok(()));
        assert_eq!(p.put("a2".into(), "alice", MINUTE, ()), Ok(()));
        assert_eq!(p.put("a3".into(), "alice", MINUTE, ()), Err(Full::Owner));
        for (k, o) in [("b1", "bob"), ("c1", "carol"), ("d1", "dave")] {
            assert_eq!(p.put(k.into(), o, MINUTE, ()), Ok(()));
        }
        assert_eq!(p.put("e1".into(), "erin", MINUTE, ()), Err(Full::All));
        // Taking one frees alice's share.
        assert_eq!(p.take("a1"), Some(("alice".to_owned(), ())));
        assert_eq!(p.take("a1"), None, "single use");
        assert_eq!(p.put("a3".into(), "alice", MINUTE, ()), Ok(()));
    }

    #[test]
    fn expired_items_are_not_given_out_and_make_room() {
        let p = Pending::new(2, 2);
        p.put("x".into(), "o", Duration::ZERO, ()).unwrap();
        assert_eq!(p.take("x"), None);
        p.put("y".into(), "o", Duration::ZERO, ()).unwrap();
        p.put("z".into(), "o", Duration::ZERO, ()).unwrap();
        assert_eq!(
            p.put("w".into(), "o", MINUTE, ()),
            Ok(()),
            "expired ones made room"
        );
        p.purge();
        assert_eq!(p.len(), 1);
    }
}
