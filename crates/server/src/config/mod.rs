//! Configuration: `dockhand.toml` in the data dir, overridden by environment
//! variables (names fixed in DESIGN.md). Unknown keys are an error, so typos show.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod auth;
mod sandbox;

pub use auth::AuthConfig;
pub use auth::GithubConfig;
pub use auth::RateLimits;
pub use sandbox::Backend;
pub use sandbox::LocalLimits;
pub use sandbox::SandboxConfig;

/// The default model: the current Claude Sonnet.
pub const DEFAULT_MODEL: &str = "claude-sonnet-5-5";

/// Errors loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `synchronous` setting of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// A process crash loses nothing.
    #[default]
    Normal,
    /// A power cut loses nothing either.
    Full,
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// The URL users reach; `http://<listen>` when empty.
    pub public_url: String,
    /// Whether tasks may name a repository on the coordinator's disk; when unset,
    /// allowed with local auth and refused with GitHub sign-in.
    pub allow_local_repos: Option<bool>,
    /// Whether repository URLs may point at private, loopback or link-local
    /// addresses; when unset, allowed with local auth and refused with GitHub sign-in.
    pub allow_private_remotes: Option<bool>,
    /// Sandbox settings.
    pub sandbox: SandboxConfig,
    /// Scheduler settings.
    pub scheduler: SchedulerConfig,
    /// Model settings.
    pub model: ModelConfig,
    /// Agent budgets and tool limits.
    pub agent: AgentSettings,
    /// Request limits.
    pub limits: Limits,
    /// Store settings.
    pub store: StoreConfig,
    /// Commit settings.
    pub git: GitConfig,
    /// GitHub settings (sign-in and `owner/name` repositories).
    pub github: GithubConfig,
    /// Sessions, operators and rate limits.
    pub auth: AuthConfig,
    /// What `dockhand gc` keeps.
    pub retention: RetentionConfig,
    /// What loading noticed and an operator should hear about (deprecated forms).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The JWT signing key (`DOCKHAND_JWT_SECRET`; not a config key).
    #[serde(skip)]
    pub jwt_secret: crate::secrets::Secret,
    /// The data directory (not a config key: `DOCKHAND_DATA_DIR` or the default).
    #[serde(skip)]
    pub data_dir: PathBuf,
}

/// `[retention]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a finished task's workspace is kept (never removed while it holds unpublished work).
    pub workspace_days: u64,
    /// Days an unused environment image is kept.
    pub env_image_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            workspace_days: 14,
            env_image_days: 30,
        }
    }
}

/// `[scheduler]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Tasks running at once.
    pub max_concurrent: usize,
}

/// `[model]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Model id.
    pub name: String,
    /// API base URL.
    pub base_url: String,
    /// API key (prefer the `ANTHROPIC_API_KEY` variable).
    pub api_key: Option<String>,
    /// Output tokens per turn.
    pub max_tokens: u32,
}

impl std::fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// `[agent]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Model turns per run.
    pub max_turns: u32,
    /// Tokens per run.
    pub max_tokens: u64,
    /// Wall time per run, seconds.
    pub max_wall_secs: u64,
    /// A bash command is killed after this many seconds.
    pub command_timeout_secs: u64,
    /// Characters of a tool result sent to the model.
    pub result_cap_chars: usize,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest prompt or follow-up.
    pub max_prompt_bytes: usize,
    /// Messages queued per WebSocket subscriber before it is dropped and told to resume.
    pub ws_queue: usize,
}

/// `[store]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `normal` or `full`.
    pub synchronous: SyncMode,
}

/// `[git]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
    /// Largest bundle a task may hand back.
    pub max_bundle_bytes: u64,
    /// Open pull requests as drafts.
    pub draft_pull_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            public_url: String::new(),
            allow_local_repos: None,
            allow_private_remotes: None,
            sandbox: SandboxConfig::default(),
            scheduler: SchedulerConfig::default(),
            model: ModelConfig::default(),
            agent: AgentSettings::default(),
            limits: Limits::default(),
            store: StoreConfig::default(),
            git: GitConfig::default(),
            github: GithubConfig::default(),
            auth: AuthConfig::default(),
            retention: RetentionConfig::default(),
            warnings: Vec::new(),
            jwt_secret: crate::secrets::Secret::default(),
            data_dir: PathBuf::new(),
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { max_concurrent: 4 }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            name: DEFAULT_MODEL.into(),
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
            max_tokens: 16_384,
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            max_turns: 100,
            max_tokens: 20_000_000,
            max_wall_secs: 2 * 60 * 60,
            command_timeout_secs: 600,
            result_cap_chars: 16_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_prompt_bytes: 64 * 1024,
            ws_queue: 1024,
        }
    }
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            author_name: "Dockhand".into(),
            author_email: "dockhand@localhost".into(),
            max_bundle_bytes: 512 << 20,
            draft_pull_requests: false,
        }
    }
}

/// The default data dir: `$DOCKHAND_DATA_DIR`, else `~/.local/share/dockhand`.
pub fn default_data_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("DOCKHAND_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = env("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".local/share/dockhand")
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Env {
            name,
            message: format!("expected true or false, got {v:?}"),
        }),
    }
}

impl Config {
    /// Loads `data_dir/dockhand.toml` (if present) and applies environment overrides.
    pub fn load(
        data_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let path = data_dir.join("dockhand.toml");
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
                path: path.display().to_string(),
                message: e.message().to_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source: e,
                });
            }
        };
        config.data_dir = data_dir.to_path_buf();
        config.apply_env(env)?;
        config.validate()?;
        config.warnings = config.sandbox.warnings();
        Ok(config)
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(v) = get("DOCKHAND_LISTEN") {
            self.listen = v.parse().map_err(|_| ConfigError::Env {
                name: "DOCKHAND_LISTEN",
                message: format!("expected an address like 127.0.0.1:7070, got {v:?}"),
            })?;
        }
        if let Some(v) = get("DOCKHAND_PUBLIC_URL") {
            self.public_url = v;
        }
        self.sandbox.apply_env(&get)?;
        if let Some(v) = get("DOCKHAND_ALLOW_LOCAL_REPOS") {
            self.allow_local_repos = Some(parse_bool("DOCKHAND_ALLOW_LOCAL_REPOS", &v)?);
        }
        if let Some(v) = get("DOCKHAND_ALLOW_PRIVATE_REMOTES") {
            self.allow_private_remotes = Some(parse_bool("DOCKHAND_ALLOW_PRIVATE_REMOTES", &v)?);
        }
        if let Some(v) = get("DOCKHAND_MAX_CONCURRENT_TASKS") {
            self.scheduler.max_concurrent = v.parse().map_err(|_| ConfigError::Env {
                name: "DOCKHAND_MAX_CONCURRENT_TASKS",
                message: format!("expected a positive number, got {v:?}"),
            })?;
        }
        if let Some(v) = get("ANTHROPIC_API_KEY") {
            self.model.api_key = Some(v);
        }
        if let Some(v) = get("ANTHROPIC_BASE_URL") {
            self.model.base_url = v;
        }
        if let Some(v) = get("DOCKHAND_MODEL") {
            self.model.name = v;
        }
        self.github.apply_env(&get);
        if let Some(v) = get("DOCKHAND_JWT_SECRET") {
            self.jwt_secret = crate::secrets::Secret(v);
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |message: &str| ConfigError::Parse {
            path: self.data_dir.join("dockhand.toml").display().to_string(),
            message: message.to_owned(),
        };
        if self.scheduler.max_concurrent == 0 {
            return Err(bad("scheduler.max_concurrent must be at least 1"));
        }
        self.sandbox.validate().map_err(|m| bad(&m))?;
        if self.model.name.trim().is_empty() {
            return Err(bad("model.name must not be empty"));
        }
        Ok(())
    }

    /// Whether tasks may name local paths.
    pub fn local_repos_allowed(&self) -> bool {
        self.allow_local_repos.unwrap_or(!self.github.enabled())
    }

    /// The image tasks run in unless they or their repository name another.
    pub fn default_image(&self) -> String {
        if self.sandbox.image.is_empty() {
            dockhand_sandbox::docker::image::default_image()
        } else {
            self.sandbox.image.clone()
        }
    }

    /// Whether repository URLs may point at private or loopback addresses.
    pub fn private_remotes_allowed(&self) -> bool {
        self.allow_private_remotes.unwrap_or(!self.github.enabled())
    }

    /// How host git may reach remotes: the GitHub token only to GitHub, and other
    /// hosts only on public addresses unless private remotes are allowed.
    pub fn remote_policy(&self) -> dockhand_forge::RemotePolicy {
        let addresses = dockhand_net::AddressPolicy {
            allow: Vec::new(),
            allow_all: self.private_remotes_allowed(),
        };
        dockhand_forge::RemotePolicy::new(&self.github.web_url, &self.github.api_url, addresses)
    }

    /// The URL users reach.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Agent settings derived from this configuration.
    pub fn agent_config(&self, model: &str) -> dockhand_agent::AgentConfig {
        let mut a = dockhand_agent::AgentConfig::new(model);
        a.max_tokens = self.model.max_tokens;
        a.budgets.max_turns = self.agent.max_turns;
        a.budgets.max_tokens = self.agent.max_tokens;
        a.budgets.max_wall = Duration::from_secs(self.agent.max_wall_secs);
        a.tools.command_timeout = Duration::from_secs(self.agent.command_timeout_secs);
        a.tools.result_cap = self.agent.result_cap_chars;
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn file_then_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dockhand.toml"),
            "listen = \"127.0.0.1:9000\"\n[scheduler]\nmax_concurrent = 2\n[model]\nname = \"m1\"\n",
        )
        .unwrap();
        let c = Config::load(dir.path(), &env_of(&[])).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.scheduler.max_concurrent, 2);
        assert_eq!(c.model.name, "m1");
        let c = Config::load(
            dir.path(),
            &env_of(&[
                ("DOCKHAND_MAX_CONCURRENT_TASKS", "7"),
                ("ANTHROPIC_API_KEY", "sk-x"),
                ("DOCKHAND_ALLOW_LOCAL_REPOS", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.scheduler.max_concurrent, 7);
        assert!(!c.local_repos_allowed());
        assert!(
            !format!("{c:?}").contains("sk-x"),
            "the key must not show in Debug"
        );
    }

    #[test]
    fn github_settings_come_from_the_environment_and_turn_off_local_repos() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(dir.path(), &env_of(&[])).unwrap();
        assert!(!c.github.enabled() && c.local_repos_allowed());
        let c = Config::load(
            dir.path(),
            &env_of(&[
                ("DOCKHAND_GITHUB_CLIENT_ID", "id"),
                ("DOCKHAND_GITHUB_CLIENT_SECRET", "shh-secret"),
                ("DOCKHAND_GITHUB_ALLOWED_USERS", "alice, bob"),
                ("DOCKHAND_GITHUB_ALLOWED_ORGS", "acme"),
                ("DOCKHAND_GITHUB_API_URL", "http://127.0.0.1:1"),
            ]),
        )
        .unwrap();
        assert!(c.github.enabled());
        assert_eq!(c.github.allowed_users, ["alice", "bob"]);
        assert_eq!(c.github.allowed_orgs, ["acme"]);
        assert_eq!(c.github.api_url, "http://127.0.0.1:1");
        assert!(
            !c.local_repos_allowed(),
            "off by default with GitHub sign-in"
        );
        assert!(!format!("{c:?}").contains("shh-secret"));
        let c = Config::load(
            dir.path(),
            &env_of(&[
                ("DOCKHAND_GITHUB_CLIENT_ID", "id"),
                ("DOCKHAND_ALLOW_LOCAL_REPOS", "true"),
            ]),
        )
        .unwrap();
        assert!(c.local_repos_allowed());
        assert!(!c.private_remotes_allowed(), "off with GitHub sign-in");
        let c = Config::load(dir.path(), &env_of(&[])).unwrap();
        assert!(c.private_remotes_allowed(), "on with local auth");
        let c = Config::load(
            dir.path(),
            &env_of(&[("DOCKHAND_ALLOW_PRIVATE_REMOTES", "false")]),
        )
        .unwrap();
        assert!(!c.private_remotes_allowed());
    }

    #[test]
    fn typos_and_bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dockhand.toml"),
            "[scheduler]\nmax_concurent = 2\n",
        )
        .unwrap();
        let err = Config::load(dir.path(), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_concurent"), "{err}");
        std::fs::remove_file(dir.path().join("dockhand.toml")).unwrap();
        let err = Config::load(dir.path(), &env_of(&[("DOCKHAND_LISTEN", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DOCKHAND_LISTEN"), "{err}");
        let err = Config::load(dir.path(), &env_of(&[("DOCKHAND_SANDBOX", "vm")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("vm"), "{err}");
    }
}
