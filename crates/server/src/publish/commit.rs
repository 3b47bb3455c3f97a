//! Committing inside the sandbox: everything on the task branch, with the
//! head, the diff stat against the base, and a bundle of the new commits.

use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use dockhand_store::TaskRow;

use super::PublishError;
use crate::config::GitConfig;
use crate::text::clip;

/// Where the sandbox writes the bundle, relative to the workspace.
pub const BUNDLE: &str = ".git/dockhand/result.bundle";

/// Runs in the sandbox: commit everything on the task branch, print the head
/// and the diff stat against the base, and write a bundle when asked.
pub const SCRIPT: &str = r#"set -eu
branch="$1"; base="$2"; name="$3"; email="$4"; want_bundle="$5"
cd /workspace
git -c core.hooksPath=/dev/null add -A
if ! git diff --cached --quiet; then
  git -c core.hooksPath=/dev/null -c commit.gpgsign=false -c user.name="$name" -c user.email="$email" \
    commit --quiet --no-verify -F -
fi
head=$(git rev-parse HEAD)
if [ "$(git rev-parse -q --verify "refs/heads/$branch" || true)" != "$head" ]; then
  git update-ref "refs/heads/$branch" "$head"
fi
echo "HEAD $head"
echo "SHORTSTAT $(git diff --shortstat "$base" "$head")"
if [ "$want_bundle" = yes ] && [ "$head" != "$base" ]; then
  mkdir -p .git/dockhand
  rm -f .git/dockhand/result.bundle
  git bundle create --quiet .git/dockhand/result.bundle "refs/heads/$branch" "^$base"
  echo BUNDLE
fi
echo STAT
git diff --stat=100 "$base" "$head" | tail -n 60
"#;

/// What the commit left.
pub(super) struct Committed {
    /// The task branch's head.
    pub head: String,
    /// (files changed, insertions, deletions) against the base.
    pub shortstat: (u32, u32, u32),
    /// `git diff --stat`, at most 60 lines.
    pub stat: String,
    /// Whether a bundle was written (there were new commits).
    pub bundle: bool,
}

/// Commits the workspace on the task branch with `message`.
pub(super) async fn commit(
    sandbox: &dyn Sandbox,
    task: &TaskRow,
    base: &str,
    git: &GitConfig,
    message: String,
) -> Result<Committed, PublishError> {
    let mut req = ExecRequest::new([
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "dockhand-publish".to_owned(),
        task.branch.clone(),
        base.to_owned(),
        git.author_name.clone(),
        git.author_email.clone(),
        "yes".to_owned(),
    ]);
    req.stdin = Some(message.into_bytes());
    req.timeout = Duration::from_secs(600);
    req.output_cap = 64 * 1024;
    let out = sandbox
        .exec(req, &mut |_, _| {})
        .await
        .map_err(|e| PublishError::Commit(e.to_string()))?;
    if out.exit_code != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = if out.timed_out {
            "timed out".to_owned()
        } else {
            clip(stderr.trim(), 2000)
        };
        return Err(PublishError::Commit(why));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the script's report.
fn parse(stdout: &str) -> Result<Committed, PublishError> {
    let mut head = String::new();
    let mut shortstat = String::new();
    let mut bundle = false;
    let mut stat = String::new();
    let mut in_stat = false;
    for line in stdout.lines() {
        if in_stat {
            stat.push_str(line);
            stat.push('\n');
        } else if let Some(h) = line.strip_prefix("HEAD ") {
            head = h.trim().to_owned();
        } else if let Some(s) = line.strip_prefix("SHORTSTAT ") {
            shortstat = s.to_owned();
        } else if line == "BUNDLE" {
            bundle = true;
        } else if line == "STAT" {
            in_stat = true;
        }
    }
    let valid_sha = head.len() == 40 && head.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_sha {
        return Err(PublishError::Commit(
            "the sandbox did not report a commit".into(),
        ));
    }
    Ok(Committed {
        head,
        shortstat: parse_shortstat(&shortstat),
        stat,
        bundle,
    })
}

fn parse_shortstat(s: &str) -> (u32, u32, u32) {
    let mut out = (0, 0, 0);
    for part in s.split(',') {
        let mut words = part.split_whitespace();
        let n = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        match words.next() {
            Some(w) if w.starts_with("file") => out.0 = n,
            Some(w) if w.starts_with("insertion") => out.1 = n,
            Some(w) if w.starts_with("deletion") => out.2 = n,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn shortstat_parses() {
        assert_eq!(
            super::parse_shortstat(" 3 files changed, 10 insertions(+), 2 deletions(-)"),
            (3, 10, 2)
        );
        assert_eq!(
            super::parse_shortstat(" 1 file changed, 1 deletion(-)"),
            (1, 0, 1)
        );
        assert_eq!(super::parse_shortstat(""), (0, 0, 0));
    }
}
