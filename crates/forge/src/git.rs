use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::ForgeError;
use crate::Result;
use crate::remote::Reach;

/// Most of git's stderr kept in an error message.
const STDERR_CAP: usize = 2000;

/// Runs host git with no user or system config, no prompts and no hooks.
pub(crate) async fn git(what: &str, cwd: Option<&Path>, args: &[&str]) -> Result<String> {
    git_with(what, cwd, args, None).await
}

/// Like [`git`], for a command that talks to a remote as `reach` says: no
/// redirects, the checked address pinned, and the GitHub token (when allowed) as
/// an HTTP header through the environment, never on the command line, in a URL
/// or in any config file.
pub(crate) async fn git_with(
    what: &str,
    cwd: Option<&Path>,
    args: &[&str],
    reach: Option<&Reach>,
) -> Result<String> {
    let out = git_raw(what, cwd, args, reach).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// Runs git as [`git_with`] does and returns its stdout as it is.
pub(crate) async fn git_raw(
    what: &str,
    cwd: Option<&Path>,
    args: &[&str],
    reach: Option<&Reach>,
) -> Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    if let Some(reach) = reach {
        let mut config = vec![("http.followRedirects".to_owned(), "false".to_owned())];
        if let Some(pin) = &reach.pin {
            config.push(("http.curloptResolve".into(), pin.clone()));
        }
        if let Some(token) = &reach.token {
            use base64::Engine;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            config.push((
                "http.extraHeader".into(),
                format!("Authorization: Basic {basic}"),
            ));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.into_iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
    }
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "core.fsmonitor=false",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_CONFIG_NOSYSTEM", "1")
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_ASKPASS", "/bin/false")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd.output().await.map_err(|e| ForgeError::Io {
        what: format!("{what}: running git (is it installed?)"),
        source: e,
    })?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if stderr.len() > STDERR_CAP {
            let mut cut = STDERR_CAP;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push('…');
        }
        if stderr.is_empty() {
            stderr = format!("git exited with {}", out.status);
        }
        return Err(ForgeError::Git {
            what: what.to_owned(),
            stderr,
        });
    }
    Ok(out.stdout)
}

/// The refs a bundle file holds, as `(commit, ref)` pairs.
pub async fn bundle_heads(bundle: &Path) -> Result<Vec<(String, String)>> {
    let path = bundle.to_string_lossy().into_owned();
    let scratch = bundle.parent().unwrap_or(Path::new("/"));
    let out = git(
        "reading the task's bundle",
        Some(scratch),
        &["bundle", "list-heads", &path],
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(c, r)| (c.to_owned(), r.to_owned()))
        .collect())
}

/// Fetches `branch` from a bundle into the repository at `repo` as
/// `refs/heads/<branch>`, after checking the bundle holds exactly that branch.
pub async fn fetch_bundle(bundle: &Path, repo: &Path, branch: &str) -> Result<String> {
    fetch_bundle_to(bundle, repo, branch, &format!("refs/heads/{branch}")).await
}

/// Like [`fetch_bundle`], into any ref (`+`: a private ref may be rewritten).
pub(crate) async fn fetch_bundle_to(
    bundle: &Path,
    repo: &Path,
    branch: &str,
    target: &str,
) -> Result<String> {
    let want = format!("refs/heads/{branch}");
    let heads = bundle_heads(bundle).await?;
    let commit = match heads.as_slice() {
        [(commit, r)] if *r == want => commit.clone(),
        _ => {
            let refs: Vec<&str> = heads.iter().map(|(_, r)| r.as_str()).collect();
            return Err(ForgeError::BadBundle(format!(
                "expected exactly {want}, found {refs:?}"
            )));
        }
    };
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ForgeError::BadBundle(format!("bad commit id {commit:?}")));
    }
    let force = if target.starts_with("refs/dockhand/") {
        "+"
    } else {
        ""
    };
    let refspec = format!("{force}{want}:{target}");
    let what = format!("fetching {branch} into {}", repo.display());
    fetch_checked(&what, repo, bundle, &refspec).await?;
    Ok(commit)
}

/// Fetches `refspec` from `bundle` into `repo`, checking every object it brings.
pub(crate) async fn fetch_checked(
    what: &str,
    repo: &Path,
    bundle: &Path,
    refspec: &str,
) -> Result<()> {
    let path = bundle.to_string_lossy().into_owned();
    let args = [
        "-c",
        "transfer.fsckObjects=true",
        "fetch",
        "--quiet",
        "--no-tags",
        &path,
        refspec,
    ];
    git(what, Some(repo), &args).await?;
    Ok(())
}
