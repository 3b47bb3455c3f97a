use std::path::Path;
use std::path::PathBuf;

use crate::ForgeError;
use crate::Result;

/// Where a task's repository comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoSource {
    /// A repository on the coordinator's disk (allowed only with `allow_local_repos`).
    Local {
        /// Absolute path of the repository.
        path: PathBuf,
    },
    /// A git URL (`http(s)://...`), or `owner/name` turned into the GitHub URL.
    Remote {
        /// The clone URL, without credentials.
        url: String,
    },
}

/// Parses the `repo` argument of a task.
///
/// `owner/name` means GitHub (`{github_web_url}/{owner}/{name}.git`); `http(s)://`
/// URLs are cloned as they are; an absolute path or `file://` URL names a local
/// repository, allowed only when `allow_local` is on.
pub fn resolve_repo(repo: &str, allow_local: bool, github_web_url: &str) -> Result<RepoSource> {
    let repo = repo.trim();
    let invalid = |msg: &str| Err(ForgeError::InvalidRepo(msg.to_owned()));
    if repo.is_empty() {
        return invalid("must not be empty");
    }
    if repo.len() > 2048 || repo.chars().any(char::is_control) {
        return invalid("is not a repository: too long or contains control characters");
    }
    if let Some(rest) = repo
        .strip_prefix("https://")
        .or_else(|| repo.strip_prefix("http://"))
    {
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.contains('@') || !rest.contains('/') {
            return invalid("must be a URL like https://host/owner/name.git, without credentials");
        }
        return Ok(RepoSource::Remote {
            url: repo.to_owned(),
        });
    }
    let local = repo
        .strip_prefix("file://")
        .map(Path::new)
        .or_else(|| repo.starts_with('/').then(|| Path::new(repo)));
    if let Some(path) = local {
        if !allow_local {
            return invalid(
                "local repositories are disabled on this server (allow_local_repos = false); use owner/name or an https URL",
            );
        }
        if !path.is_absolute() {
            return invalid("a local repository must be an absolute path");
        }
        let is_repo = path.join(".git").exists() || path.join("HEAD").is_file();
        if !path.is_dir() {
            return invalid(&format!(
                "{} is not a directory on the server",
                path.display()
            ));
        }
        if !is_repo {
            return invalid(&format!("{} is not a git repository", path.display()));
        }
        return Ok(RepoSource::Local {
            path: path.to_path_buf(),
        });
    }
    let valid_part = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if let Some((owner, name)) = repo.split_once('/') {
        let name = name.strip_suffix(".git").unwrap_or(name);
        if valid_part(owner) && valid_part(name) {
            let base = github_web_url.trim_end_matches('/');
            return Ok(RepoSource::Remote {
                url: format!("{base}/{owner}/{name}.git"),
            });
        }
    }
    invalid("must be owner/name, an http(s) git URL, or an absolute path to a local repository")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_name_and_urls() {
        assert_eq!(
            resolve_repo("rust-lang/cargo", false, "https://github.com/").unwrap(),
            RepoSource::Remote {
                url: "https://github.com/rust-lang/cargo.git".into()
            }
        );
        assert_eq!(
            resolve_repo("https://example.com/a/b.git", false, "").unwrap(),
            RepoSource::Remote {
                url: "https://example.com/a/b.git".into()
            }
        );
        for bad in [
            "",
            "a",
            "a/b/c",
            "../x",
            "https://user:pw@host/a/b",
            "ssh://h/x",
            "a/..",
            "C:\\x",
        ] {
            assert!(
                resolve_repo(bad, true, "https://github.com").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn local_paths_need_permission_and_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_str().unwrap().to_owned();
        let err = resolve_repo(&p, false, "").unwrap_err().to_string();
        assert!(err.contains("allow_local_repos"), "{err}");
        let err = resolve_repo(&p, true, "").unwrap_err().to_string();
        assert!(err.contains("not a git repository"), "{err}");
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        assert!(matches!(
            resolve_repo(&format!("file://{p}"), true, "").unwrap(),
            RepoSource::Local { .. }
        ));
    }
}
