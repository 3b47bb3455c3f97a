//! Importing checkpoints. A task's checkpoints arrive from its sandbox as a chain
//! of incremental bundles, each holding [`CHECKPOINT_REF`]. They are fetched in
//! order into a repository the coordinator owns (its mirror, or a scratch bare
//! repository), with every object checked, as any bundle from a sandbox is.

use std::path::Path;

use crate::ForgeError;
use crate::Result;
use crate::git::fetch_checked;

/// The ref a checkpoint bundle holds, and the ref that keeps the newest
/// checkpoint reachable inside the sandbox (outside `refs/heads`, so the agent's
/// branches and `HEAD` never see it).
pub const CHECKPOINT_REF: &str = "refs/dockhand/checkpoint";

/// Fetches one checkpoint bundle (the file `bundle`, which must hold exactly
/// `commit` as [`CHECKPOINT_REF`]) into the repository at `repo` as `target`, a
/// ref under `refs/dockhand/`, checking its objects (`transfer.fsckObjects`).
/// Its prerequisite, the previous checkpoint or the task's base commit, must
/// already be in `repo`.
pub async fn fetch_checkpoint(
    bundle: &Path,
    repo: &Path,
    commit: &str,
    target: &str,
) -> Result<()> {
    if !target.starts_with("refs/dockhand/") {
        return Err(ForgeError::BadBundle(format!(
            "a checkpoint goes under refs/dockhand/, not {target}"
        )));
    }
    let heads = read_heads(bundle)?;
    match heads.as_slice() {
        [(c, r)] if c == commit && r == CHECKPOINT_REF => {}
        _ => {
            return Err(ForgeError::BadBundle(format!(
                "expected exactly {CHECKPOINT_REF} at {commit}, found {heads:?}"
            )));
        }
    }
    let refspec = format!("+{CHECKPOINT_REF}:{target}");
    let what = format!("fetching checkpoint {commit} into {}", repo.display());
    fetch_checked(&what, repo, bundle, &refspec).await
}

/// Most bytes a bundle's header may take.
const MAX_HEADER: u64 = 64 << 10;

/// The refs a bundle file names in its header, as `(commit, ref)` pairs, read
/// without running git: a `# v2 git bundle` or `# v3 git bundle` line, then
/// capabilities (`@…`, v3), prerequisites (`-…`) and refs, up to a blank line.
fn read_heads(bundle: &Path) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    let bad = |why: &str| ForgeError::BadBundle(format!("{}: {why}", bundle.display()));
    let file = std::fs::File::open(bundle).map_err(|e| ForgeError::Io {
        what: format!("opening {}", bundle.display()),
        source: e,
    })?;
    let mut head = Vec::new();
    file.take(MAX_HEADER)
        .read_to_end(&mut head)
        .map_err(|e| ForgeError::Io {
            what: format!("reading {}", bundle.display()),
            source: e,
        })?;
    let end = head
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| bad("no end of header"))?;
    let text = std::str::from_utf8(&head[..end]).map_err(|_| bad("a header that is not text"))?;
    let mut lines = text.lines();
    match lines.next() {
        Some("# v2 git bundle" | "# v3 git bundle") => {}
        _ => return Err(bad("not a git bundle")),
    }
    let mut heads = Vec::new();
    for line in lines {
        if line.starts_with('@') || line.starts_with('-') {
            continue;
        }
        let (commit, name) = line.split_once(' ').ok_or_else(|| bad("a bad ref line"))?;
        heads.push((commit.to_owned(), name.to_owned()));
    }
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(text: &[u8]) -> Result<Vec<(String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.bundle");
        std::fs::write(&path, text).unwrap();
        read_heads(&path)
    }

    #[test]
    fn bundle_headers_give_their_refs() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let v2 = format!("# v2 git bundle\n-{c} base\n{c} {CHECKPOINT_REF}\n\nPACK");
        assert_eq!(
            heads(v2.as_bytes()).unwrap(),
            [(c.to_owned(), CHECKPOINT_REF.to_owned())]
        );
        let v3 = format!("# v3 git bundle\n@object-format=sha1\n{c} refs/heads/x\n\nPACK");
        assert_eq!(heads(v3.as_bytes()).unwrap()[0].1, "refs/heads/x");
        for bad in [
            &b"# v9 git bundle\n\n"[..],
            b"# v2 git bundle\nnoref\n\n",
            b"# v2 git bundle\n",
        ] {
            assert!(heads(bad).is_err());
        }
    }
}
