//! Starting and stopping the whole coordinator.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dockhand_model::anthropic::AnthropicClient;
use dockhand_model::anthropic::AnthropicConfig;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::Synchronous;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::ADMIN_TOKEN_FILE;
use crate::config::Config;
use crate::config::SyncMode;
use crate::hub::Hub;
use crate::pool::Pool;
use crate::runner::RunnerDeps;
use crate::scheduler::Scheduler;

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another coordinator holds the data directory.
    #[error(
        "another Dockhand coordinator is already using {0}; stop it, or set DOCKHAND_DATA_DIR to another directory"
    )]
    Locked(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] dockhand_store::StoreError),
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::secrets::KeyError),
    /// Local auth could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthSetupError),
    /// The sandbox backend is unusable. (Transparent: the sandbox's error names
    /// the missing piece, and a prefix here would print it twice in a chain.)
    #[error(transparent)]
    Sandbox(#[from] dockhand_sandbox::SandboxError),
    /// The model client could not be built.
    #[error("model client: {0}")]
    Model(String),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running coordinator.
pub struct Coordinator {
    addr: SocketAddr,
    new_admin_token: Option<String>,
    state: AppState,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    /// `workspaces/` mounted `nosuid,nodev` for local sandboxes; unmounted when dropped.
    _mount: Option<dockhand_sandbox::local::NosuidMount>,
    _lock: File,
}

/// Creates `path` owner-only, or makes an existing directory so: the data
/// directory holds keys, the database and full clones of private repositories.
fn make_dir(path: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| StartError::DataDir {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes a small file readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// The id that labels this coordinator's containers, kept in the data dir.
fn coordinator_id(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("coordinator-id");
    let io = |e| StartError::DataDir {
        path: path.display().to_string(),
        source: e,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = format!(
        "c{}",
        &crate::auth::generate_token()[3..15].to_ascii_lowercase()
    );
    write_private(&path, &format!("{id}\n")).map_err(io)?;
    Ok(id)
}

fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    let path = dir.join("coordinator.lock");
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StartError::DataDir {
            path: path.display().to_string(),
            source: e,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| StartError::Locked(dir.display().to_string()))?;
    Ok(file)
}

impl Coordinator {
    /// Opens the data dir, prepares local auth (the admin token file is written
    /// before anything listens), binds, and starts serving and scheduling.
    /// `listener` overrides `config.listen` (tests bind port 0).
    pub async fn start(
        config: Config,
        listener: Option<TcpListener>,
    ) -> Result<Coordinator, StartError> {
        let data_dir = config.data_dir.clone();
        make_dir(&data_dir)?;
        for sub in ["workspaces", "sandbox", "mirrors", "bundles"] {
            make_dir(&data_dir.join(sub))?;
        }
        let lock = lock_data_dir(&data_dir)?;
        let hub = Hub::new(config.limits.ws_queue);
        let mut opts = StoreOptions::new(data_dir.join("dockhand.db"));
        opts.synchronous = match config.store.synchronous {
            SyncMode::Normal => Synchronous::Normal,
            SyncMode::Full => Synchronous::Full,
        };
        let store = Store::open(opts, Arc::new(hub.clone()))?;
        let new_admin_token = crate::auth::bootstrap_admin(&store, &data_dir).await?;

        let mut model_cfg = AnthropicConfig::new(config.model.api_key.clone().unwrap_or_default());
        model_cfg.base_url = config.model.base_url.clone();
        let model =
            AnthropicClient::new(model_cfg).map_err(|e| StartError::Model(e.to_string()))?;
        let coordinator_id = coordinator_id(&data_dir)?;
        let egress = Arc::new(crate::egress::EgressService::new(&config));
        let mut warnings = config.warnings.clone();
        let chosen = crate::sandboxes::connect(&config, &coordinator_id, egress.clone()).await?;
        let (sandboxes, docker, mount): (Arc<dyn SandboxProvider>, Option<Arc<DockerProvider>>, _) =
            match chosen {
                crate::sandboxes::Chosen::Docker(d) => (d.clone(), Some(d), None),
                crate::sandboxes::Chosen::Local(l, warning) => {
                    warnings.extend(warning);
                    // A setuid file left in a workspace gains nothing on the host.
                    let workspaces = data_dir.join("workspaces");
                    let mount = dockhand_sandbox::local::nosuid_mount(&workspaces)?;
                    (l, None, mount)
                }
            };
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let pool = match (&docker, config.sandbox.pool_size) {
            (Some(d), n) if n > 0 => Some(Pool::new(d.clone(), n, data_dir.join("workspaces"))),
            _ => None,
        };

        let keys = Arc::new(crate::secrets::Keys::load(&data_dir, &config.jwt_secret)?);
        let sign_in = if config.github.enabled() {
            let g = &config.github;
            Some(
                dockhand_forge::github::GitHubClient::new(
                    &g.web_url,
                    &g.api_url,
                    &g.client_id,
                    &g.client_secret,
                )
                .map_err(|e| StartError::Model(e.to_string()))?,
            )
        } else {
            None
        };
        let g = &config.github;
        let github = dockhand_forge::github::GitHubClient::new(
            &g.web_url,
            &g.api_url,
            &g.client_id,
            &g.client_secret,
        )
        .map_err(|e| StartError::Model(e.to_string()))?;
        let config = Arc::new(config);
        let deps = Arc::new(RunnerDeps {
            store: store.clone(),
            hub: hub.clone(),
            model: Arc::new(model),
            sandboxes,
            docker,
            pool: pool.clone(),
            config: config.clone(),
            mirrors: dockhand_forge::Mirrors::new(data_dir.join("mirrors"), config.remote_policy()),
            github,
            keys: keys.clone(),
            egress,
        });
        crate::janitor::remove_orphans(&deps).await;
        let scheduler = Scheduler::new(deps, config.scheduler.max_concurrent);
        let state = AppState {
            store,
            hub,
            scheduler: scheduler.clone(),
            config: config.clone(),
            auth: Arc::new(crate::auth::AuthState::new(keys, sign_in)),
            warnings: Arc::new(warnings),
        };

        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(config.listen)
                .await
                .map_err(|e| StartError::Bind {
                    addr: config.listen,
                    source: e,
                })?,
        };
        let addr = listener.local_addr().map_err(|e| StartError::Bind {
            addr: config.listen,
            source: e,
        })?;
        let shutdown = CancellationToken::new();
        let app = crate::api::router(state.clone());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        // Lets the CLI on this machine find a coordinator that already holds the data dir.
        let url_file = data_dir.join("coordinator.url");
        if let Err(e) = write_private(&url_file, &format!("http://{addr}\n")) {
            tracing::warn!(error = %e, "writing {}", url_file.display());
        }
        scheduler.start().await?;
        if let Some(pool) = pool {
            tokio::spawn(async move { pool.fill().await });
        }
        crate::janitor::spawn_reaper(scheduler.deps(), shutdown.clone());
        crate::janitor::spawn_pruner(state.store.clone(), state.auth.clone(), shutdown.clone());
        tracing::info!(%addr, data_dir = %data_dir.display(), "coordinator started");
        Ok(Coordinator {
            addr,
            new_admin_token,
            state,
            shutdown,
            server,
            _mount: mount,
            _lock: lock,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin token, when this start generated it (show it once).
    pub fn new_admin_token(&self) -> Option<&str> {
        self.new_admin_token.as_deref()
    }

    /// Where the admin token is kept.
    pub fn admin_token_path(&self) -> PathBuf {
        self.state.config.data_dir.join(ADMIN_TOKEN_FILE)
    }

    /// Shared state, for in-process callers and tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops serving. Running tasks stay `running` in the store and resume at the next start.
    pub async fn shutdown(self) {
        self.state.scheduler.stop();
        if let Some(pool) = &self.state.scheduler.deps().pool {
            pool.drain().await;
        }
        self.shutdown.cancel();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
