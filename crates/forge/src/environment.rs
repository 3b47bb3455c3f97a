//! `.dockhand/environment.toml`: how a repository wants its sandbox set up.
//! Read by the host from the fresh clone, beneath the workspace, without
//! following symlinks, size bounded (DESIGN.md, trust boundary).

use std::collections::BTreeMap;
use std::path::Path;

use dockhand_protocol::NetworkLevel;
use serde::Deserialize;
use serde::Serialize;

use crate::ForgeError;
use crate::Result;
use crate::git::git;
use crate::git::git_raw;

/// Where the file lives in a repository.
pub const ENVIRONMENT_FILE: &str = ".dockhand/environment.toml";
/// Largest file accepted.
const MAX_BYTES: u64 = 64 * 1024;

/// Commands given as one script or as a list of lines.
fn script(field: &str, value: Option<toml::Value>) -> Result<Option<String>> {
    let text = match value {
        None => return Ok(None),
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Array(lines)) => lines
            .into_iter()
            .map(|l| match l {
                toml::Value::String(s) => Ok(s),
                _ => Err(invalid(format!(
                    "{field} must be a string or a list of strings"
                ))),
            })
            .collect::<Result<Vec<_>>>()?
            .join("\n"),
        Some(_) => {
            return Err(invalid(format!(
                "{field} must be a string or a list of strings"
            )));
        }
    };
    Ok(Some(text).filter(|s| !s.trim().is_empty()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    image: Option<String>,
    setup: Option<toml::Value>,
    prepare: Option<toml::Value>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    network: Option<String>,
    limits: Option<Limits>,
}

/// `[limits]`: what a repository asks for; the operator's values are the ceiling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory for the sandbox, MiB.
    pub memory_mb: Option<u64>,
    /// CPUs for the sandbox.
    pub cpus: Option<f64>,
    /// Processes in the sandbox.
    pub pids: Option<i64>,
    /// A bash command is killed after this long, seconds.
    pub command_timeout_secs: Option<u64>,
}

/// A stored `network` of before network levels: `true` was `bridge` (open),
/// `false` was `none`.
fn level_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NetworkLevel>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Level(NetworkLevel),
        Bool(bool),
    }
    Ok(Option::<Stored>::deserialize(d)?.map(|s| match s {
        Stored::Level(l) => l,
        Stored::Bool(true) => NetworkLevel::Open,
        Stored::Bool(false) => NetworkLevel::None,
    }))
}

/// A repository's environment, validated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Image to run instead of the default.
    pub image: Option<String>,
    /// System-level commands, run once as root and cached as an image.
    pub setup: Option<String>,
    /// Per-task commands, run as the agent user after the clone.
    pub prepare: Option<String>,
    /// Non-secret environment variables.
    pub env: BTreeMap<String, String>,
    /// The network level the repository asks for (`bridge` is an old name for `open`).
    #[serde(default, deserialize_with = "level_or_bool")]
    pub network: Option<NetworkLevel>,
    /// The limits the repository asks for.
    #[serde(default)]
    pub limits: Limits,
}

fn invalid(msg: String) -> ForgeError {
    ForgeError::InvalidEnvironment(msg)
}

impl Environment {
    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<Environment> {
        let raw: RawEnvironment =
            toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        if let Some(image) = &raw.image {
            let ok = !image.is_empty()
                && image.len() <= 255
                && !image.starts_with('-')
                && image
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
            if !ok {
                return Err(invalid(format!(
                    "image {image:?} is not an image reference"
                )));
            }
        }
        for (name, value) in &raw.env {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(invalid(format!("env: {name:?} is not a variable name")));
            }
            if value.contains('\0') {
                return Err(invalid(format!("env: {name} contains a NUL byte")));
            }
        }
        let network = match raw.network.as_deref() {
            None => None,
            Some("bridge") => Some(NetworkLevel::Open),
            Some(word) => Some(NetworkLevel::parse(word).ok_or_else(|| {
                invalid(format!(
                    "network must be \"none\", \"allowlist\" or \"open\" (\"bridge\" is an old name for \"open\"), not {word:?}"
                ))
            })?),
        };
        let limits = raw.limits.unwrap_or_default();
        let positive = limits.memory_mb.is_none_or(|m| m > 0)
            && limits.cpus.is_none_or(|c| c > 0.0 && c.is_finite())
            && limits.pids.is_none_or(|p| p > 0)
            && limits.command_timeout_secs.is_none_or(|t| t > 0);
        if !positive {
            return Err(invalid("limits must be positive numbers".into()));
        }
        Ok(Environment {
            image: raw.image,
            setup: script("setup", raw.setup)?,
            prepare: script("prepare", raw.prepare)?,
            env: raw.env,
            network,
            limits,
        })
    }

    /// Reads the file as the repository at `repo` has it at `commit`, without a
    /// checkout: the default when there is none (a symlinked `.dockhand` holds
    /// none). Only a regular file is read; a symlink is refused.
    pub async fn read_at(repo: &Path, commit: &str) -> Result<Environment> {
        let what = format!("reading {ENVIRONMENT_FILE} at {commit}");
        if commit.starts_with('-') || commit.contains(':') {
            return Err(invalid(format!("{commit:?} is not a commit")));
        }
        let spec = format!("{commit}^{{commit}}");
        let commit = git(
            &what,
            Some(repo),
            &["rev-parse", "--verify", "--quiet", &spec],
        )
        .await?;
        let listed = git(
            &what,
            Some(repo),
            &["ls-tree", "-l", "-z", &commit, "--", ENVIRONMENT_FILE],
        )
        .await?;
        // `<mode> <type> <object> <size>\t<path>`
        let fields: Vec<&str> = listed
            .split(['\t', ' '])
            .filter(|f| !f.is_empty())
            .collect();
        let (mode, object, size) = match fields.as_slice() {
            [] => return Ok(Environment::default()),
            [mode, "blob", object, size, ..] => (*mode, *object, *size),
            _ => return Err(invalid(format!("{ENVIRONMENT_FILE} is not a file"))),
        };
        match mode {
            "100644" | "100755" => {}
            "120000" => return Err(invalid(format!("{ENVIRONMENT_FILE} is a symlink"))),
            _ => return Err(invalid(format!("{ENVIRONMENT_FILE} is not a regular file"))),
        }
        if size.trim().parse::<u64>().is_ok_and(|n| n > MAX_BYTES) {
            return Err(invalid(format!(
                "the file is over the {MAX_BYTES}-byte limit"
            )));
        }
        let bytes = git_raw(&what, Some(repo), &["cat-file", "blob", object], None).await?;
        let text = String::from_utf8(bytes).map_err(|_| invalid("the file is not UTF-8".into()))?;
        Environment::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_keys() {
        let env = Environment::parse(
            "image = \"rust:1.80\"\nsetup = [\"apt-get update\", \"apt-get install -y jq\"]\nprepare = \"cargo fetch\"\nnetwork = \"none\"\n[env]\nRUST_LOG = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(env.image.as_deref(), Some("rust:1.80"));
        assert_eq!(
            env.setup.as_deref(),
            Some("apt-get update\napt-get install -y jq")
        );
        assert_eq!(env.prepare.as_deref(), Some("cargo fetch"));
        assert_eq!(env.network, Some(NetworkLevel::None));
        assert_eq!(env.env["RUST_LOG"], "debug");
        assert_eq!(Environment::parse("").unwrap(), Environment::default());
    }

    #[test]
    fn network_levels_limits_and_old_stored_forms() {
        let env = Environment::parse(
            "network = \"bridge\"\n[limits]\nmemory_mb = 512\ncpus = 0.5\npids = 64\ncommand_timeout_secs = 30\n",
        )
        .unwrap();
        assert_eq!(env.network, Some(NetworkLevel::Open));
        assert_eq!(env.limits.memory_mb, Some(512));
        assert_eq!(env.limits.cpus, Some(0.5));
        assert_eq!(env.limits.pids, Some(64));
        assert_eq!(env.limits.command_timeout_secs, Some(30));
        for level in ["none", "allowlist", "open"] {
            let env = Environment::parse(&format!("network = \"{level}\"")).unwrap();
            assert_eq!(env.network.map(NetworkLevel::as_str), Some(level));
        }
        let old: Environment = serde_json::from_str(
            r#"{"image":null,"setup":null,"prepare":null,"env":{},"network":false}"#,
        )
        .unwrap();
        assert_eq!(old.network, Some(NetworkLevel::None));
        let old: Environment = serde_json::from_str(
            r#"{"image":null,"setup":null,"prepare":null,"env":{},"network":true}"#,
        )
        .unwrap();
        assert_eq!(old.network, Some(NetworkLevel::Open));
        for bad in [
            "[limits]\nmemory_mb = 0",
            "[limits]\ncpus = -1.0",
            "[limits]\nswap = 1",
        ] {
            assert!(Environment::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_files_with_a_reason() {
        for (text, needle) in [
            ("imgae = \"x\"", "imgae"),
            ("network = \"host\"", "network"),
            ("image = \"--privileged\"", "image"),
            ("[env]\n\"A B\" = \"x\"", "A B"),
            ("setup = 5", "setup"),
            ("not toml", ""),
        ] {
            let err = Environment::parse(text).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains("environment.toml"),
                "{text}: {err}"
            );
        }
    }
}
