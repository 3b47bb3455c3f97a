//! Taking a snapshot inside the sandbox with git plumbing: every tracked and
//! untracked (not ignored) file goes into a private index, the tree is written,
//! and when it differs from the previous checkpoint's a commit object on no branch
//! is made, kept reachable by `refs/dockhand/checkpoint`, and sent back on stdout
//! as an incremental bundle. The agent's index, `HEAD` and branches are untouched.

use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;

use super::error::CheckpointError;
use crate::text::clip;

/// Runs in the sandbox. `$1` is the previous checkpoint (or the base commit),
/// `$2` its tree as stored (empty for the base), `$3` the base commit, `$4` the
/// turn. A workspace that lacks the previous checkpoint (a sandbox seeded afresh)
/// starts the commits again from the base, and the bundle then holds everything
/// since the base. The private index persists between checkpoints, so `git add
/// -A` hashes only what changed; the first one, or one after a failure, starts
/// from the agent's index.
const SCRIPT: &str = r#"set -eu
prev="$1"; prev_tree="$2"; base="$3"; turn="$4"
cd /workspace
if found=$(git rev-parse --absolute-git-dir "$prev^{tree}" 2>/dev/null); then
  parent=$prev; prev_tree=${found#*
}
else
  found=$(git rev-parse --absolute-git-dir "$base^{tree}") || {
    echo "no repository, or neither checkpoint $prev nor the base $base is in it" >&2; exit 3; }
  parent=$base
fi
git_dir=${found%
*}
[ -d "$git_dir/dockhand" ] || mkdir -p "$git_dir/dockhand"
index="$git_dir/dockhand/checkpoint.index"
fresh() { rm -f "$index"; [ ! -f "$git_dir/index" ] || cp "$git_dir/index" "$index"; }
[ -f "$index" ] || fresh
export GIT_INDEX_FILE="$index"
# An index naming objects that are gone (a gc after the ref was removed) starts afresh.
tree=$(git add -A && git write-tree) || { fresh; tree=$(git add -A && git write-tree); }
if [ "$tree" = "$prev_tree" ]; then
  echo "UNCHANGED $tree"
  exit 0
fi
commit=$(echo "Dockhand checkpoint after turn $turn" | git commit-tree "$tree" -p "$parent")
git update-ref refs/dockhand/checkpoint "$commit"
echo "CHECKPOINT $commit $tree"
exec git bundle create - refs/dockhand/checkpoint "^$parent"
"#;

/// What a snapshot found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Snapshot {
    /// The work tree is the previous checkpoint's: nothing to store.
    Unchanged,
    /// A new checkpoint, with its bundle.
    Taken {
        /// The checkpoint commit.
        commit: String,
        /// Its tree.
        tree: String,
        /// The incremental bundle.
        bundle: Vec<u8>,
    },
    /// A new checkpoint whose bundle is over the cap (`bytes` or more); not kept.
    TooBig {
        /// The checkpoint commit.
        commit: String,
        /// The bundle's size, at least.
        bytes: u64,
    },
}

/// Who the checkpoint commits name as author and committer.
pub(crate) struct Author<'a> {
    pub(crate) name: &'a str,
    pub(crate) email: &'a str,
}

/// Longest a snapshot may take.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Room for the script's first line beside the bundle.
const HEADER: usize = 200;

/// What a snapshot follows.
pub(crate) struct Previous<'a> {
    /// The newest stored checkpoint's commit, or the base commit.
    pub(crate) commit: &'a str,
    /// That checkpoint's tree; empty for the base.
    pub(crate) tree: &'a str,
    /// The task's base commit.
    pub(crate) base: &'a str,
}

/// Snapshots the sandbox's work tree after `turn`.
pub(crate) async fn take(
    sandbox: &dyn Sandbox,
    prev: &Previous<'_>,
    turn: u32,
    max_bytes: u64,
    author: &Author<'_>,
) -> Result<Snapshot, CheckpointError> {
    let turn = turn.to_string();
    let args = [prev.commit, prev.tree, prev.base, turn.as_str()];
    let mut req = ExecRequest::new(["sh", "-c", SCRIPT, "dockhand-checkpoint"]);
    req.argv.extend(args.iter().map(|a| (*a).to_owned()));
    req.env = ["AUTHOR", "COMMITTER"]
        .into_iter()
        .flat_map(|who| {
            [
                (format!("GIT_{who}_NAME"), author.name.to_owned()),
                (format!("GIT_{who}_EMAIL"), author.email.to_owned()),
            ]
        })
        .collect();
    req.timeout = TIMEOUT;
    req.output_cap = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(HEADER);
    let out = sandbox.exec(req, &mut |_, _| {}).await?;
    if out.exit_code != Some(0) {
        let why = if out.timed_out {
            format!("timed out after {} s", TIMEOUT.as_secs())
        } else {
            clip(String::from_utf8_lossy(&out.stderr).trim(), 2000)
        };
        return Err(CheckpointError::Script(why));
    }
    parse(out.stdout, out.dropped_bytes, max_bytes)
}

/// Reads the script's first line and the bundle after it.
fn parse(stdout: Vec<u8>, dropped: u64, max_bytes: u64) -> Result<Snapshot, CheckpointError> {
    let end = stdout
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| CheckpointError::Script("the snapshot printed no report".into()))?;
    let line = String::from_utf8_lossy(&stdout[..end]).into_owned();
    let words: Vec<&str> = line.split(' ').collect();
    let is_id = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match words.as_slice() {
        ["UNCHANGED", tree] if is_id(tree) => Ok(Snapshot::Unchanged),
        ["CHECKPOINT", commit, tree] if is_id(commit) && is_id(tree) => {
            let bundle = stdout[end + 1..].to_vec();
            let bytes = bundle.len() as u64 + dropped;
            if dropped > 0 || bytes > max_bytes {
                return Ok(Snapshot::TooBig {
                    commit: (*commit).to_owned(),
                    bytes,
                });
            }
            Ok(Snapshot::Taken {
                commit: (*commit).to_owned(),
                tree: (*tree).to_owned(),
                bundle,
            })
        }
        _ => Err(CheckpointError::Script(format!(
            "the snapshot printed {:?}",
            clip(&line, 200)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";
    const T: &str = "89abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_report_and_the_bundle_come_apart() {
        let out = format!("CHECKPOINT {C} {T}\n# v2 git bundle\n").into_bytes();
        assert_eq!(
            parse(out, 0, 1 << 20).unwrap(),
            Snapshot::Taken {
                commit: C.into(),
                tree: T.into(),
                bundle: b"# v2 git bundle\n".to_vec(),
            }
        );
        let out = format!("UNCHANGED {T}\n").into_bytes();
        assert_eq!(parse(out, 0, 1 << 20).unwrap(), Snapshot::Unchanged);
    }

    #[test]
    fn a_bundle_over_the_cap_is_too_big() {
        let out = format!("CHECKPOINT {C} {T}\n0123456789").into_bytes();
        assert_eq!(
            parse(out.clone(), 0, 9).unwrap(),
            Snapshot::TooBig {
                commit: C.into(),
                bytes: 10
            }
        );
        assert_eq!(
            parse(out, 5, 100).unwrap(),
            Snapshot::TooBig {
                commit: C.into(),
                bytes: 15
            }
        );
    }

    #[test]
    fn anything_else_is_an_error() {
        for out in ["", "CHECKPOINT abc def\n", "hello\n", "UNCHANGED\n"] {
            assert!(parse(out.as_bytes().to_vec(), 0, 100).is_err(), "{out:?}");
        }
    }
}
