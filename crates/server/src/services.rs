//! Everything the coordinator's parts share, built once at start-up: the HTTP
//! handlers, the scheduler and the runner all receive the same [`Services`].

use std::path::PathBuf;
use std::sync::Arc;

use dockhand_forge::Mirrors;
use dockhand_forge::github::GitHubClient;
use dockhand_model::Model;
use dockhand_model::anthropic::AnthropicClient;
use dockhand_model::anthropic::AnthropicConfig;
use dockhand_protocol::TaskId;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::local::NosuidMount;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::Synchronous;

use crate::auth::AuthState;
use crate::config::Config;
use crate::config::SyncMode;
use crate::data_dir::coordinator_id;
use crate::egress::EgressService;
use crate::error::StartError;
use crate::hub::Hub;
use crate::scheduler::Scheduler;
use crate::secrets::Keys;

/// The code host: the clone cache and GitHub's API.
pub struct Forge {
    /// Repository mirrors (clone cache, push source).
    pub mirrors: Mirrors,
    /// GitHub's REST API and sign-in.
    pub github: GitHubClient,
}

/// What the coordinator's parts share.
pub struct Services {
    /// Configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// Live events.
    pub hub: Hub,
    /// The model.
    pub model: Arc<dyn Model>,
    /// Sandboxes.
    pub sandboxes: Arc<dyn SandboxProvider>,
    /// The code host.
    pub forge: Forge,
    /// JWT and encryption keys.
    pub keys: Arc<Keys>,
    /// The egress proxy of `allowlist` sandboxes.
    pub egress: Arc<EgressService>,
    /// Sign-in state and rate limits.
    pub auth: AuthState,
    /// The task queue and its runners.
    pub scheduler: Scheduler,
    /// What an operator should know about this start (shown by `/healthz`).
    pub warnings: Vec<String>,
}

/// The services, and what their start left for the coordinator to hold or show.
pub(crate) struct Built {
    pub(crate) services: Arc<Services>,
    /// The admin token, when this start generated it.
    pub(crate) new_admin_token: Option<String>,
    /// `workspaces/` mounted `nosuid,nodev` for local sandboxes.
    pub(crate) mount: Option<NosuidMount>,
}

impl Services {
    /// Opens the store (in the data directory the caller holds), the model and
    /// GitHub clients, keys and the sandbox backend.
    pub(crate) async fn build(config: Config) -> Result<Built, StartError> {
        let data_dir = config.data_dir.clone();
        let hub = Hub::new(config.limits.ws_queue);
        let store = open_store(&config, &hub)?;
        let new_admin_token = crate::auth::bootstrap_admin(&store, &data_dir).await?;
        let model = model_client(&config)?;
        let egress = Arc::new(EgressService::new(&config));
        let mut warnings = config.warnings.clone();
        let id = coordinator_id(&data_dir)?;
        let connected = crate::sandboxes::connect(&config, &id, egress.clone()).await?;
        warnings.extend(connected.warning);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let g = &config.github;
        let github = GitHubClient::new(&g.web_url, &g.api_url, &g.client_id, &g.client_secret)
            .map_err(|e| StartError::GitHub(e.to_string()))?;
        let services = Services {
            store: store.clone(),
            hub,
            model,
            sandboxes: connected.provider,
            forge: Forge {
                mirrors: Mirrors::new(data_dir.join("mirrors"), config.remote_policy()),
                github,
            },
            keys: Arc::new(Keys::load(&data_dir, &config.jwt_secret)?),
            egress,
            auth: AuthState::default(),
            scheduler: Scheduler::new(store, config.scheduler.max_concurrent),
            warnings,
            config: Arc::new(config),
        };
        Ok(Built {
            services: Arc::new(services),
            new_admin_token,
            mount: connected.mount,
        })
    }

    /// The host directory for a new task's workspace.
    pub fn workspace_dir(&self, id: &TaskId) -> PathBuf {
        self.config.data_dir.join("workspaces").join(id.as_str())
    }

    /// A user's stored GitHub token, decrypted, if they signed in with GitHub.
    pub fn user_token(&self, user_id: i64) -> Option<String> {
        let token = self.store.github_token(user_id).ok().flatten()?;
        self.keys.open(&token.sealed)
    }

    /// GitHub, when sign-in with it is configured.
    pub fn sign_in(&self) -> Option<&GitHubClient> {
        self.config.github.enabled().then_some(&self.forge.github)
    }

    /// Where the admin token is kept.
    pub fn admin_token_path(&self) -> PathBuf {
        self.config.data_dir.join(crate::auth::ADMIN_TOKEN_FILE)
    }
}

fn open_store(config: &Config, hub: &Hub) -> Result<Store, StartError> {
    let mut opts = StoreOptions::new(config.data_dir.join("dockhand.db"));
    opts.synchronous = match config.store.synchronous {
        SyncMode::Normal => Synchronous::Normal,
        SyncMode::Full => Synchronous::Full,
    };
    Ok(Store::open(opts, Arc::new(hub.clone()))?)
}

fn model_client(config: &Config) -> Result<Arc<dyn Model>, StartError> {
    let mut model_cfg = AnthropicConfig::new(config.model.api_key.clone().unwrap_or_default());
    model_cfg.base_url = config.model.base_url.clone();
    let client = AnthropicClient::new(model_cfg).map_err(|e| StartError::Model(e.to_string()))?;
    Ok(Arc::new(client))
}
