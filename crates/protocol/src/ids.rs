use std::fmt;

use serde::Deserialize;
use serde::Serialize;

/// Alphabet for generated ids: lowercase, no look-alikes, safe in branch names and URLs.
const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of a task id, not counting its `t` prefix.
const TASK_ID_LEN: usize = 11;

/// A task's id: `t` followed by 11 characters of a lowercase base-32 alphabet.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh random id (55 bits of entropy).
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut s = String::with_capacity(TASK_ID_LEN + 1);
        s.push('t');
        for _ in 0..TASK_ID_LEN {
            s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
        }
        TaskId(s)
    }

    /// Parses an id from a URL or the command line; `None` when it cannot be one.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == TASK_ID_LEN + 1
            && s.starts_with('t')
            && s.bytes().skip(1).all(|b| ALPHABET.contains(&b));
        ok.then(|| TaskId(s.to_owned()))
    }

    /// Wraps a string read back from the store, which only holds valid ids.
    pub fn from_stored(s: String) -> Self {
        TaskId(s)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase words of `text` joined by `-`, at most `max` bytes, for branch names.
pub fn slugify(text: &str, max: usize) -> String {
    let mut slug = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let extra = if slug.is_empty() {
            word.len()
        } else {
            word.len() + 1
        };
        if slug.len() + extra > max {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        slug.push_str("task");
    }
    slug
}

/// The branch a task works on: `dockhand/<task-id>-<slug>`.
pub fn task_branch(id: &TaskId, prompt: &str) -> String {
    format!("dockhand/{id}-{}", slugify(prompt, 40))
}
