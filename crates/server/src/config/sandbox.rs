//! `[sandbox]`: the backend, the network level and its allowlist, limits, and
//! the local backend's own settings. These are the operator's ceiling: a
//! repository may ask for less, never for more.

use dockhand_protocol::NetworkLevel;
use serde::Deserialize;

use super::ConfigError;

/// Sandbox backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One Docker container per task.
    Docker,
    /// bubblewrap on the coordinator's machine.
    Local,
}

/// How the local backend limits its sandboxes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalLimits {
    /// Memory, process and CPU limits per sandbox with cgroups; the coordinator
    /// refuses to start where they cannot be used.
    #[default]
    Cgroup,
    /// No limits: a sandbox may use the whole machine.
    None,
}

/// `sandbox.network`: a level, or the old booleans (`true` is `open`, `false`
/// is `none`), which still work with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkSetting {
    /// The level.
    pub level: NetworkLevel,
    /// Written as a boolean.
    pub deprecated_bool: bool,
}

impl<'de> Deserialize<'de> for NetworkSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(open) => Ok(NetworkSetting {
                level: if open {
                    NetworkLevel::Open
                } else {
                    NetworkLevel::None
                },
                deprecated_bool: true,
            }),
            Raw::Word(word) => NetworkLevel::parse(&word)
                .map(|level| NetworkSetting {
                    level,
                    deprecated_bool: false,
                })
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "sandbox.network must be \"none\", \"allowlist\" or \"open\", not {word:?}"
                    ))
                }),
        }
    }
}

/// `[sandbox]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Backend; `None` picks docker when an engine answers, else local (with a warning).
    pub backend: Option<Backend>,
    /// The network level of tasks, and the most a repository may ask for.
    pub network: NetworkSetting,
    /// Names reachable at `allowlist`, replacing the default list: exact names or
    /// `*.example.com`, on ports 80 and 443 unless written `host:port`.
    pub allow_domains: Option<Vec<String>>,
    /// Names added to the allowlist (default or `allow_domains`).
    pub extra_domains: Vec<String>,
    /// Addresses or CIDR blocks an allowed name may resolve to although they are
    /// loopback, private, link-local or the host's own.
    pub allow_addresses: Vec<String>,
    /// The network level of a repository's `setup`; the task's level when unset,
    /// never above `network`.
    pub setup_network: Option<NetworkLevel>,
    /// Default image (docker); empty means Dockhand's own image.
    pub image: String,
    /// Images tasks and repositories may name: exact references or globs with
    /// `*`; empty means only the default image. A user's own environment images
    /// are always allowed.
    pub allowed_images: Vec<String>,
    /// Memory limit per sandbox, MiB.
    pub memory_mb: u64,
    /// CPUs per sandbox.
    pub cpus: f64,
    /// Process limit per sandbox.
    pub pids: i64,
    /// OCI runtime (for example `runsc` for gVisor); the engine's default when empty.
    pub runtime: String,
    /// Pre-created containers kept ready for the default image.
    pub pool_size: usize,
    /// How long a finished task's container is kept for a follow-up, seconds.
    pub idle_secs: u64,
    /// Longest a repository's `setup` or `prepare` may run, seconds.
    pub setup_timeout_secs: u64,
    /// How the local backend limits sandboxes.
    pub local_limits: LocalLimits,
    /// The unprivileged host uid local sandboxes run as when the coordinator is root.
    pub local_uid: u32,
    /// Largest checkpoint (an incremental bundle) kept after a turn, MiB; larger
    /// ones are skipped with a `checkpoint` event. 0 turns checkpoints off.
    pub checkpoint_max_mb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            backend: None,
            network: NetworkSetting {
                level: NetworkLevel::Allowlist,
                deprecated_bool: false,
            },
            allow_domains: None,
            extra_domains: Vec::new(),
            allow_addresses: Vec::new(),
            setup_network: None,
            image: String::new(),
            allowed_images: Vec::new(),
            memory_mb: 2048,
            cpus: 2.0,
            pids: 512,
            runtime: String::new(),
            pool_size: 2,
            idle_secs: 600,
            setup_timeout_secs: 1800,
            local_limits: LocalLimits::Cgroup,
            local_uid: dockhand_sandbox::local::DEFAULT_HOST_UID,
            checkpoint_max_mb: 64,
        }
    }
}

impl SandboxConfig {
    pub(super) fn apply_env(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get("DOCKHAND_SANDBOX") {
            self.backend = Some(match v.as_str() {
                "docker" => Backend::Docker,
                "local" => Backend::Local,
                other => {
                    return Err(ConfigError::Env {
                        name: "DOCKHAND_SANDBOX",
                        message: format!("unknown sandbox backend {other:?}; use docker or local"),
                    });
                }
            });
        }
        if let Some(v) = get("DOCKHAND_CHECKPOINT_MAX_MB") {
            self.checkpoint_max_mb = v.parse().map_err(|_| ConfigError::Env {
                name: "DOCKHAND_CHECKPOINT_MAX_MB",
                message: format!("expected a number of MiB (0 turns checkpoints off), got {v:?}"),
            })?;
        }
        if let Some(v) = get("DOCKHAND_LOCAL_LIMITS") {
            self.local_limits = match v.as_str() {
                "cgroup" => LocalLimits::Cgroup,
                "none" => LocalLimits::None,
                other => {
                    return Err(ConfigError::Env {
                        name: "DOCKHAND_LOCAL_LIMITS",
                        message: format!("expected cgroup or none, got {other:?}"),
                    });
                }
            };
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.memory_mb < 64 || self.cpus <= 0.0 || self.pids < 16 {
            return Err(
                "sandbox.memory_mb must be at least 64, sandbox.cpus above 0 and sandbox.pids at least 16"
                    .into(),
            );
        }
        if self.local_uid == 0 {
            return Err("sandbox.local_uid must not be 0".into());
        }
        for entry in self.domains() {
            dockhand_egress::DomainRule::parse(&entry)
                .map_err(|e| format!("sandbox.allow_domains / extra_domains: {e}"))?;
        }
        for entry in &self.allow_addresses {
            dockhand_net::parse_net(entry).map_err(|e| format!("sandbox.allow_addresses: {e}"))?;
        }
        Ok(())
    }

    /// What an operator should hear about at start-up.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.network.deprecated_bool {
            warnings.push(format!(
                "sandbox.network = {} is deprecated; write sandbox.network = \"{}\"",
                self.network.level == NetworkLevel::Open,
                self.network.level
            ));
        }
        warnings
    }

    /// The allowlist: `allow_domains` (or the default list) and `extra_domains`.
    pub fn domains(&self) -> Vec<String> {
        let base: Vec<String> = match &self.allow_domains {
            Some(list) => list.clone(),
            None => dockhand_egress::DEFAULT_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
        };
        base.into_iter()
            .chain(self.extra_domains.iter().cloned())
            .collect()
    }

    /// The limits sandboxes get unless a repository asks for less.
    pub fn limits(&self) -> dockhand_sandbox::Limits {
        dockhand_sandbox::Limits {
            memory_bytes: (self.memory_mb as i64) << 20,
            nano_cpus: (self.cpus * 1e9) as i64,
            pids: self.pids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SandboxConfig, String> {
        #[derive(Deserialize)]
        struct File {
            sandbox: SandboxConfig,
        }
        toml::from_str::<File>(text)
            .map(|f| f.sandbox)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn network_levels_and_the_old_booleans() {
        assert_eq!(
            SandboxConfig::default().network.level,
            NetworkLevel::Allowlist
        );
        let c = parse("[sandbox]\nnetwork = \"none\"\n").unwrap();
        assert_eq!(c.network.level, NetworkLevel::None);
        assert!(c.warnings().is_empty());
        let c = parse("[sandbox]\nnetwork = true\n").unwrap();
        assert_eq!(c.network.level, NetworkLevel::Open);
        assert!(c.warnings()[0].contains("deprecated"), "{:?}", c.warnings());
        let c = parse("[sandbox]\nnetwork = false\n").unwrap();
        assert_eq!(c.network.level, NetworkLevel::None);
        let err = parse("[sandbox]\nnetwork = \"bridge\"\n").unwrap_err();
        assert!(err.contains("allowlist"), "{err}");
    }

    #[test]
    fn the_allowlist_is_the_default_or_the_given_list_plus_extras() {
        let c = parse("[sandbox]\nextra_domains = [\"git.example.com:8443\"]\n").unwrap();
        let domains = c.domains();
        assert!(domains.contains(&"crates.io".to_owned()));
        assert!(domains.contains(&"git.example.com:8443".to_owned()));
        let c = parse("[sandbox]\nallow_domains = [\"only.example\"]\n").unwrap();
        assert_eq!(c.domains(), ["only.example"]);
        let bad = parse("[sandbox]\nallow_addresses = [\"10.0.0.0/40\"]\n").unwrap();
        assert!(bad.validate().is_err());
        let bad = parse("[sandbox]\nallow_domains = [\"a b\"]\n").unwrap();
        assert!(bad.validate().is_err());
        assert_eq!(SandboxConfig::default().checkpoint_max_mb, 64);
        let c = parse("[sandbox]\ncheckpoint_max_mb = 8\n").unwrap();
        assert_eq!(c.checkpoint_max_mb, 8);
        let mut c = SandboxConfig::default();
        let env = |k: &str| (k == "DOCKHAND_CHECKPOINT_MAX_MB").then(|| "0".to_owned());
        c.apply_env(&env).unwrap();
        assert_eq!(c.checkpoint_max_mb, 0);
        let bad = |k: &str| (k == "DOCKHAND_CHECKPOINT_MAX_MB").then(|| "lots".to_owned());
        assert!(c.apply_env(&bad).is_err());
        assert!(
            parse("[sandbox]\nlocal_uid = 0\n")
                .unwrap()
                .validate()
                .is_err()
        );
    }
}
