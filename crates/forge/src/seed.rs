//! What a workspace starts from: the base branch of a repository the
//! coordinator holds (its mirror, or the user's local repository), resolved to
//! a commit and packed into a git bundle that the sandbox clones from. Only
//! what the base branch reaches goes in: a mirror also holds other tasks'
//! private refs, which this workspace must not see.

use std::path::Path;

use crate::ForgeError;
use crate::Result;
use crate::git::git;

/// The branch a task starts from, and its commit now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    /// The branch name.
    pub branch: String,
    /// Its commit.
    pub commit: String,
}

/// A bundle of `branch` of `repo` (its default branch when `None`), and of the
/// ref `also` when given (a task's own branch, to continue it): all their
/// history and nothing else, at most `max` bytes; with the base it holds.
pub async fn seed_bundle(
    repo: &Path,
    branch: Option<&str>,
    also: Option<&str>,
    max: u64,
) -> Result<(Base, Vec<u8>)> {
    let what = format!("bundling {}", repo.display());
    let refused = |stderr: String| ForgeError::Git {
        what: what.clone(),
        stderr,
    };
    let branch = match branch {
        Some(b) => b.to_owned(),
        None => git(&what, Some(repo), &["symbolic-ref", "--short", "HEAD"])
            .await
            .map_err(|_| {
                refused("the repository has no default branch; name a base branch".into())
            })?,
    };
    let tip = format!("refs/heads/{branch}");
    let spec = format!("{tip}^{{commit}}");
    git(
        &what,
        Some(repo),
        &["rev-parse", "--verify", "--quiet", &spec],
    )
    .await
    .map_err(|_| refused(format!("branch {branch} not found")))?;
    if let Some(also) = also {
        let spec = format!("{also}^{{commit}}");
        git(
            &what,
            Some(repo),
            &["rev-parse", "--verify", "--quiet", &spec],
        )
        .await
        .map_err(|_| refused(format!("{also} not found")))?;
    }
    let io = |source| ForgeError::Io {
        what: what.clone(),
        source,
    };
    let dir = tempfile::tempdir().map_err(io)?;
    let file = dir.path().join("seed.bundle");
    let file_s = file.to_string_lossy().into_owned();
    let mut args = vec!["bundle", "create", "--quiet", &file_s, &tip];
    args.extend(also);
    git(&what, Some(repo), &args).await?;
    let size = std::fs::metadata(&file).map_err(io)?.len();
    if size > max {
        return Err(refused(format!(
            "branch {branch} bundles to {} MiB, over the {} MiB limit (git.max_bundle_bytes)",
            size >> 20,
            max >> 20
        )));
    }
    // The base is what the bundle holds, even if the branch moved meanwhile.
    let heads = crate::git::bundle_heads(&file).await?;
    let commit = heads
        .into_iter()
        .find(|(_, name)| *name == tip)
        .map(|(commit, _)| commit)
        .ok_or_else(|| refused(format!("the bundle does not hold {tip}")))?;
    let bundle = std::fs::read(&file).map_err(io)?;
    Ok((Base { branch, commit }, bundle))
}
