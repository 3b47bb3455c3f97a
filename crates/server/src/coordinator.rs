//! Starting and stopping the whole coordinator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::data_dir::write_private;
use crate::error::StartError;
use crate::services::Services;

/// A running coordinator.
pub struct Coordinator {
    addr: SocketAddr,
    new_admin_token: Option<String>,
    services: Arc<Services>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    /// `workspaces/` mounted `nosuid,nodev` for local sandboxes; unmounted when dropped.
    _mount: Option<dockhand_sandbox::local::NosuidMount>,
    _data_dir: DataDir,
}

impl Coordinator {
    /// Opens the data dir, prepares local auth (the admin token file is written
    /// before anything listens), binds, and starts serving and scheduling.
    /// `listener` overrides `config.listen` (tests bind port 0).
    pub async fn start(
        config: Config,
        listener: Option<TcpListener>,
    ) -> Result<Coordinator, StartError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let built = Services::build(config).await?;
        let services = built.services;
        crate::janitor::remove_orphans(&services).await;
        let listener = bind(&services.config, listener).await?;
        let addr = listener.local_addr().map_err(|e| StartError::Bind {
            addr: services.config.listen,
            source: e,
        })?;
        let shutdown = CancellationToken::new();
        let server = serve(listener, services.clone(), shutdown.clone());
        // Lets the CLI on this machine find a coordinator that already holds the data dir.
        let url_file = data_dir.path.join("coordinator.url");
        if let Err(e) = write_private(&url_file, format!("http://{addr}\n")) {
            tracing::warn!(error = %e, "writing {}", url_file.display());
        }
        let runner = Arc::new(crate::runner::Runner(services.clone()));
        services.scheduler.start(runner).await?;
        if let Some(pool) = services.sandboxes.warm_pool() {
            pool.refill();
        }
        crate::janitor::spawn_reaper(services.clone(), shutdown.clone());
        crate::janitor::spawn_pruner(services.clone(), shutdown.clone());
        tracing::info!(%addr, data_dir = %data_dir.path.display(), "coordinator started");
        Ok(Coordinator {
            addr,
            new_admin_token: built.new_admin_token,
            services,
            shutdown,
            server,
            _mount: built.mount,
            _data_dir: data_dir,
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
        self.services.admin_token_path()
    }

    /// The shared services, for in-process callers and tests.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Stops serving. Running tasks stay `running` in the store and resume at the next start.
    pub async fn shutdown(self) {
        self.services.scheduler.stop();
        if let Some(pool) = self.services.sandboxes.warm_pool() {
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

async fn bind(config: &Config, listener: Option<TcpListener>) -> Result<TcpListener, StartError> {
    match listener {
        Some(l) => Ok(l),
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Bind {
                addr: config.listen,
                source: e,
            }),
    }
}

fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let app = crate::http::router(services);
    tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    })
}
