//! One bare mirror per repository, fetched at the start of each task so repeat
//! clones are fast, and the place results are pushed from: a task's bundle is
//! fetched into a private ref (`refs/dockhand/<task>`) of the mirror, then pushed.
//! The mirror fetches only branches and tags, so private refs survive pruning.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use sha2::Digest;

use crate::ForgeError;
use crate::Result;
use crate::git::git;
use crate::git::git_with;
use crate::remote::RemotePolicy;

/// The mirrors under one directory; serialises work on each.
pub struct Mirrors {
    dir: PathBuf,
    policy: RemotePolicy,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why a push was refused, in words a person can act on.
fn explain_push(stderr: &str, branch: &str, url: &str) -> String {
    let lower = stderr.to_ascii_lowercase();
    let what = if lower.contains("non-fast-forward")
        || lower.contains("fetch first")
        || lower.contains("[rejected]")
    {
        format!(
            "the branch {branch} on {url} has commits this task does not have (non-fast-forward); \
             someone pushed to it. Merge or delete that branch on GitHub, then send a follow-up"
        )
    } else if lower.contains("protected branch")
        || lower.contains("pre-receive hook declined")
        || lower.contains("hook declined")
    {
        format!(
            "{url} refused the push to {branch} (a protected branch or a server-side hook); its message: {}",
            stderr.trim()
        )
    } else if lower.contains("403") || lower.contains("permission") && lower.contains("denied") {
        format!(
            "{url} refused the push: your GitHub token may not write to it (it needs the repo scope, and push access); \
             sign in again to grant the repo scope"
        )
    } else if lower.contains("not found") {
        format!("{url} was not found, or your GitHub account cannot see it")
    } else {
        stderr.trim().to_owned()
    };
    format!(
        "pushing {branch} failed: {what}. The work is kept, committed, in the task's workspace."
    )
}

impl Mirrors {
    /// Mirrors kept under `dir` (created owner-only), reaching remotes as `policy` allows.
    pub fn new(dir: PathBuf, policy: RemotePolicy) -> Mirrors {
        Mirrors {
            dir,
            policy,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, url: &str) -> PathBuf {
        let hash = hex::encode(sha2::Sha256::digest(url.as_bytes()));
        self.dir.join(format!("{}.git", &hash[..24]))
    }

    fn lock(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(path.to_path_buf()).or_default().clone()
    }

    /// Refuses a repository URL whose host the mirrors may not reach (checked again
    /// at every fetch and push).
    pub async fn check(&self, url: &str) -> Result<()> {
        self.policy.check(url).await
    }

    /// Brings the mirror of `url` up to date (creating it the first time) and returns its path.
    pub async fn sync(&self, url: &str, token: Option<&str>) -> Result<PathBuf> {
        let path = self.path(url);
        let lock = self.lock(&path);
        let _held = lock.lock().await;
        let what = format!("fetching {url}");
        let reach = self.policy.reach(url, token).await?;
        if !path.join("HEAD").exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|e| ForgeError::Io {
                    what: format!("creating {}", path.display()),
                    source: e,
                })?;
            let p = path.to_string_lossy().into_owned();
            git(&what, None, &["init", "--quiet", "--bare", &p]).await?;
        }
        let fetch = git_with(
            &what,
            Some(&path),
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--no-tags",
                &reach.url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            Some(&reach),
        )
        .await;
        if let Err(ForgeError::Git { stderr, .. }) = &fetch {
            let lower = stderr.to_ascii_lowercase();
            if lower.contains("not found")
                || lower.contains("authentication failed")
                || lower.contains("403")
            {
                return Err(ForgeError::InvalidRepo(format!(
                    "{url} was not found, or your GitHub account cannot read it (git said: {})",
                    stderr.lines().last().unwrap_or("").trim()
                )));
            }
        }
        fetch?;
        // The remote's default branch becomes the mirror's HEAD, for clones without --branch.
        if let Ok(out) = git_with(
            &what,
            Some(&path),
            &["ls-remote", "--symref", &reach.url, "HEAD"],
            Some(&reach),
        )
        .await
        {
            let default = out
                .lines()
                .find_map(|l| l.strip_prefix("ref: "))
                .and_then(|l| l.split_whitespace().next());
            if let Some(r) = default.filter(|r| r.starts_with("refs/heads/")) {
                git(&what, Some(&path), &["symbolic-ref", "HEAD", r]).await?;
            }
        }
        Ok(path)
    }

    /// Fetches `branch` from the task's bundle into the mirror as `refs/dockhand/<task>`
    /// and pushes it to `url` as `refs/heads/<branch>`. Returns the pushed commit.
    pub async fn push_bundle(
        &self,
        url: &str,
        token: Option<&str>,
        bundle: &Path,
        task: &str,
        branch: &str,
    ) -> Result<String> {
        let path = self.path(url);
        let lock = self.lock(&path);
        let _held = lock.lock().await;
        let reach = self.policy.reach(url, token).await?;
        let private = format!("refs/dockhand/{task}");
        let commit = crate::git::fetch_bundle_to(bundle, &path, branch, &private).await?;
        let refspec = format!("{private}:refs/heads/{branch}");
        let pushed = git_with(
            &format!("pushing {branch}"),
            Some(&path),
            &["push", "--quiet", "--porcelain", &reach.url, &refspec],
            Some(&reach),
        )
        .await;
        match pushed {
            Ok(_) => Ok(commit),
            Err(ForgeError::Git { stderr, .. }) => {
                Err(ForgeError::PushRejected(explain_push(&stderr, branch, url)))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_failures_say_what_to_do() {
        let nff = super::explain_push(
            " ! [rejected] x -> x (non-fast-forward)",
            "dockhand/t1-x",
            "https://h/o/r.git",
        );
        assert!(
            nff.contains("non-fast-forward") && nff.contains("kept"),
            "{nff}"
        );
        let hook = super::explain_push(
            "remote: protected branch\n ! [remote rejected] x (pre-receive hook declined)",
            "b",
            "u",
        );
        assert!(hook.contains("protected branch"), "{hook}");
        let scope = super::explain_push(
            "fatal: unable to access 'u': The requested URL returned error: 403",
            "b",
            "u",
        );
        assert!(scope.contains("repo scope"), "{scope}");
    }
}
