//! Handing the work back: commit inside the sandbox, record the diff stat, then
//! bring the branch out through a sandbox-written bundle, checked and size-bounded:
//! fetched into the user's own repository (local), or into the coordinator's mirror
//! and pushed from there, with a pull request (remote). The host never runs git in
//! the workspace, so nothing the agent wrote (hooks, filters, config) runs on the host.

mod github;

pub(crate) use github::MARKER;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use dockhand_forge::RepoSource;
use dockhand_protocol::DiffEvent;
use dockhand_protocol::EventBody;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use dockhand_store::TaskRow;

use crate::services::Services;

/// Where the sandbox writes the bundle, relative to the workspace.
const BUNDLE: &str = ".git/dockhand/result.bundle";

/// Runs in the sandbox: commit everything on the task branch, print the head
/// and the diff stat against the base, and write a bundle when asked.
const SCRIPT: &str = r#"set -eu
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

/// Errors while publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Committing or bundling inside the sandbox failed.
    #[error("committing the task's changes failed: {0}")]
    Commit(String),
    /// Bringing the branch back failed.
    #[error(transparent)]
    Forge(#[from] dockhand_forge::ForgeError),
    /// GitHub refused or could not be reached.
    #[error("{0}")]
    GitHub(String),
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

/// Commits and hands the branch back; returns a one-line note for the person.
pub async fn publish(
    deps: &Services,
    task: &TaskRow,
    sandbox: &dyn Sandbox,
    summary: &str,
    source: &RepoSource,
) -> Result<String, PublishError> {
    let base = task
        .base_commit
        .clone()
        .ok_or_else(|| PublishError::Commit("the task has no base commit".into()))?;
    let git = &deps.config.git;
    let mut message = format!("{}\n\n", task.title);
    message.push_str(&crate::text::clip(summary.trim(), 8000));
    message.push_str(&format!("\n\nDockhand-Task: {}\n", task.id));
    // The person who asked is a co-author; GitHub links the noreply address to them.
    if let Ok(Some((login, Some(id)))) = deps.store.user_identity(task.user_id) {
        message.push_str(&format!(
            "Co-authored-by: {login} <{id}+{login}@users.noreply.github.com>\n"
        ));
    }
    let mut req = ExecRequest::new([
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "dockhand-publish".to_owned(),
        task.branch.clone(),
        base.clone(),
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.exit_code != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = if out.timed_out {
            "timed out".to_owned()
        } else {
            crate::text::clip(stderr.trim(), 2000)
        };
        return Err(PublishError::Commit(why));
    }
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
    let (files, ins, del) = parse_shortstat(&shortstat);
    let changed = head != base;
    deps.store
        .append(
            &task.id,
            EventBody::Diff(DiffEvent {
                branch: task.branch.clone(),
                commit: changed.then(|| head.clone()),
                files_changed: files,
                insertions: ins,
                deletions: del,
                stat: crate::text::clip(&stat, 8000),
            }),
        )
        .map_err(|e| PublishError::Commit(e.to_string()))?;
    if !changed {
        return Ok("no changes to hand back".to_owned());
    }
    if !bundle {
        return Err(PublishError::Commit(
            "the sandbox did not write the bundle".into(),
        ));
    }
    let copy = copy_bundle(deps, task)?;
    let result = match source {
        RepoSource::Local { path } => fetch_back(&copy, task, path, &head)
            .await
            .map(|()| format!("branch {} is in {}", task.branch, path.display())),
        RepoSource::Remote { url } => {
            github::push_and_open_pr(deps, task, url, &copy, summary, &stat).await
        }
    };
    let _ = std::fs::remove_file(&copy);
    result
}

/// Copies the bundle out of the workspace (no symlinks, size bounded) into the
/// coordinator's own directory.
fn copy_bundle(deps: &Services, task: &TaskRow) -> Result<std::path::PathBuf, PublishError> {
    let ws = task
        .workspace
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| deps.workspace_dir(&task.id));
    let dir = deps.config.data_dir.join("bundles");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| dockhand_forge::ForgeError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
    let copy = dir.join(format!("{}.bundle", task.id));
    let max = deps.config.git.max_bundle_bytes;
    dockhand_forge::copy_beneath(&ws, BUNDLE, &copy, max).map_err(|e| match e {
        dockhand_forge::ForgeError::Unsafe { reason, .. } if reason.contains("limit") => PublishError::Commit(format!(
            "the task's changes are too large to hand back ({reason}; git.max_bundle_bytes = {} MiB). \
             The work is committed in the task's workspace; remove large or generated files with a follow-up, \
             or raise git.max_bundle_bytes",
            max >> 20
        )),
        other => PublishError::Forge(other),
    })?;
    Ok(copy)
}

async fn fetch_back(
    copy: &Path,
    task: &TaskRow,
    repo: &Path,
    head: &str,
) -> Result<(), PublishError> {
    let commit = dockhand_forge::fetch_bundle(copy, repo, &task.branch).await?;
    if commit != head {
        return Err(PublishError::Commit(format!(
            "the bundle holds {commit}, not the committed head {head}"
        )));
    }
    Ok(())
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
