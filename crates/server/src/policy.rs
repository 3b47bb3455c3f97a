//! The operator's policy is the ceiling: what a task or a repository may ask
//! for. A task that asks for more is refused at submission; a repository that
//! asks for more is not granted it, and a `policy` phase event says what was
//! asked and what applies.

use std::time::Duration;

use dockhand_forge::Environment;
use dockhand_protocol::NetworkLevel;
use dockhand_sandbox::ImageOwner;
use dockhand_sandbox::Images;
use dockhand_sandbox::Limits;

use crate::config::Config;

/// What a task runs under: the repository's requests within the operator's
/// ceiling, and a note for each request that was not granted in full.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Applied {
    pub network: NetworkLevel,
    pub limits: Limits,
    pub command_timeout: Duration,
    pub notes: Vec<String>,
}

/// The lower of what was asked and the ceiling, with a note when the ask was higher.
fn capped<T: PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    asked: Option<T>,
    ceiling: T,
    setting: &str,
    notes: &mut Vec<String>,
) -> T {
    match asked {
        Some(a) if a > ceiling => {
            notes.push(format!(
                "{key}: the repository asked for {a}; {setting} = {ceiling} applies"
            ));
            ceiling
        }
        Some(a) => a,
        None => ceiling,
    }
}

/// The network level, limits and command timeout of a task whose repository
/// asks for `env`, under `cfg`.
pub(crate) fn apply(cfg: &Config, env: &Environment) -> Applied {
    let mut notes = Vec::new();
    let sb = &cfg.sandbox;
    let ceiling = sb.network.level;
    let network = match env.network {
        Some(asked) if asked > ceiling => {
            notes.push(format!(
                "network: the repository asked for \"{asked}\"; sandbox.network = \"{ceiling}\" applies"
            ));
            ceiling
        }
        Some(asked) => asked,
        None => ceiling,
    };
    let asked = &env.limits;
    let memory_mb = capped(
        "memory_mb",
        asked.memory_mb,
        sb.memory_mb,
        "sandbox.memory_mb",
        &mut notes,
    );
    let cpus = capped("cpus", asked.cpus, sb.cpus, "sandbox.cpus", &mut notes);
    let pids = capped("pids", asked.pids, sb.pids, "sandbox.pids", &mut notes);
    let timeout = capped(
        "command_timeout_secs",
        asked.command_timeout_secs,
        cfg.agent.command_timeout_secs,
        "agent.command_timeout_secs",
        &mut notes,
    );
    Applied {
        network,
        // Floors keep a narrowed sandbox able to start at all.
        limits: Limits {
            memory_bytes: (memory_mb.max(64) as i64) << 20,
            nano_cpus: (cpus * 1e9) as i64,
            pids: pids.max(16),
        },
        command_timeout: Duration::from_secs(timeout.max(1)),
        notes,
    }
}

/// The network level of a repository's `setup`: `sandbox.setup_network`, else
/// the task's, never above the operator's ceiling.
pub(crate) fn setup_network(cfg: &Config, task: NetworkLevel) -> NetworkLevel {
    cfg.sandbox
        .setup_network
        .unwrap_or(task)
        .min(cfg.sandbox.network.level)
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The images tasks may name: `sandbox.allowed_images`, or the default image.
fn allowed_images(cfg: &Config) -> Vec<String> {
    if cfg.sandbox.allowed_images.is_empty() {
        vec![cfg.default_image()]
    } else {
        cfg.sandbox.allowed_images.clone()
    }
}

/// Why user `user` may not run `image`, or `Ok`. A user's own environment images
/// are always theirs to use; another user's never are, whatever the list says.
pub(crate) async fn image_allowed(
    cfg: &Config,
    images: Option<&dyn Images>,
    image: &str,
    user: i64,
) -> Result<(), String> {
    let owner = match images {
        Some(i) => i.owner(image).await,
        None => ImageOwner::by_name(image),
    };
    match owner {
        ImageOwner::Environment(Some(o)) if o == user.to_string() => return Ok(()),
        ImageOwner::Environment(_) => return Err("is another user's environment image".into()),
        ImageOwner::ReservedName => return Err("is not one of your environment images".into()),
        ImageOwner::Shared => {}
    }
    let allowed = allowed_images(cfg);
    let tagged = format!("{image}:latest");
    let listed = |p: &String| glob(p, image) || (!image.contains([':', '@']) && glob(p, &tagged));
    if allowed.iter().any(listed) {
        Ok(())
    } else {
        Err(format!(
            "is not in sandbox.allowed_images ({})",
            allowed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_narrows_but_never_widens() {
        let mut cfg = Config::default();
        cfg.sandbox.network.level = NetworkLevel::None;
        let mut env = Environment {
            network: Some(NetworkLevel::Open),
            limits: dockhand_forge::Limits {
                memory_mb: Some(999_999),
                cpus: Some(8.0),
                pids: Some(64),
                command_timeout_secs: Some(5),
            },
            ..Environment::default()
        };
        let applied = apply(&cfg, &env);
        assert_eq!(applied.network, NetworkLevel::None);
        assert_eq!(applied.limits.memory_bytes, 2048 << 20);
        assert_eq!(applied.limits.pids, 64, "narrowing is granted");
        assert_eq!(applied.limits.nano_cpus, 2_000_000_000);
        assert_eq!(applied.command_timeout, Duration::from_secs(5));
        assert_eq!(
            applied.notes,
            [
                "network: the repository asked for \"open\"; sandbox.network = \"none\" applies",
                "memory_mb: the repository asked for 999999; sandbox.memory_mb = 2048 applies",
                "cpus: the repository asked for 8; sandbox.cpus = 2 applies",
            ]
        );
        cfg.sandbox.network.level = NetworkLevel::Open;
        env.network = Some(NetworkLevel::Allowlist);
        assert_eq!(apply(&cfg, &env).network, NetworkLevel::Allowlist);
        assert_eq!(
            apply(&cfg, &Environment::default()).network,
            NetworkLevel::Open
        );
        cfg.sandbox.network.level = NetworkLevel::Allowlist;
        cfg.sandbox.setup_network = Some(NetworkLevel::Open);
        assert_eq!(
            setup_network(&cfg, NetworkLevel::None),
            NetworkLevel::Allowlist
        );
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("debian:*", "debian:bookworm"));
        assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/tools:1"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(glob("exact:1", "exact:1"));
        assert!(!glob("exact:1", "exact:12"));
        assert!(!glob("debian:*", "evil/debian:bookworm"));
        assert!(!glob("a*c", "ab"));
        assert!(!glob("*.io/x", "ghcr.io/x/y"));
    }
}
