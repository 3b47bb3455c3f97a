//! Finding the coordinator: `--server`/`DOCKHAND_SERVER`, else one already
//! holding the local data dir, else one started in this process.

use std::path::Path;

use anyhow::Context;
use anyhow::Result;
use dockhand_server::Config;
use dockhand_server::Coordinator;
use dockhand_server::config::default_data_dir;

use crate::client::Client;

/// What the user pointed at.
pub struct Target {
    pub server: Option<String>,
    pub token: Option<String>,
}

/// A client, plus the in-process coordinator it talks to, if any.
pub struct Connection {
    pub client: Client,
    embedded: Option<Coordinator>,
}

impl Connection {
    /// Whether the coordinator lives in this process (and stops with it).
    pub fn embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stops an in-process coordinator.
    pub async fn close(self) {
        if let Some(c) = self.embedded {
            c.shutdown().await;
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The configuration from the data dir and the environment.
pub fn load_config() -> Result<Config> {
    let data_dir = default_data_dir(&env);
    Ok(Config::load(&data_dir, &env)?)
}

fn read_token(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(dockhand_server::auth::ADMIN_TOKEN_FILE))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Whether another process holds the data dir's coordinator lock.
fn locked(data_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(data_dir.join("coordinator.lock")) else {
        return false;
    };

    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
}

/// The server to sign in to: `--server`, else a coordinator already using the data dir.
pub fn server_url(target: &Target) -> Result<String> {
    if let Some(s) = &target.server {
        return Ok(s.trim_end_matches('/').to_owned());
    }
    let data_dir = default_data_dir(&env);
    let url = std::fs::read_to_string(data_dir.join("coordinator.url"))
        .ok()
        .filter(|_| locked(&data_dir))
        .context("no server: pass --server URL or set DOCKHAND_SERVER")?;
    Ok(url.trim().to_owned())
}

pub async fn connect(target: &Target) -> Result<Connection> {
    let data_dir = default_data_dir(&env);
    if let Some(server) = &target.server {
        if target.token.is_none()
            && let Some(session) = crate::credentials::get(server)
        {
            return Ok(Connection {
                client: Client::with_session(server, session)?,
                embedded: None,
            });
        }
        let token = target.token.clone().or_else(|| read_token(&data_dir)).context(
            "no credentials: run dockhand login, pass --token or set DOCKHAND_TOKEN (the admin token is in DATA_DIR/admin-token)",
        )?;
        return Ok(Connection {
            client: Client::new(server, &token)?,
            embedded: None,
        });
    }
    if locked(&data_dir) {
        let url = std::fs::read_to_string(data_dir.join("coordinator.url")).with_context(|| {
            format!(
                "a coordinator is using {} but did not record its address",
                data_dir.display()
            )
        })?;
        let token = target
            .token
            .clone()
            .or_else(|| read_token(&data_dir))
            .context("no API token")?;
        return Ok(Connection {
            client: Client::new(url.trim(), &token)?,
            embedded: None,
        });
    }
    let mut config = load_config()?;
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let coordinator = Coordinator::start(config, None)
        .await
        .context("starting an in-process coordinator")?;
    let token = match &target.token {
        Some(t) => t.clone(),
        None => read_token(&data_dir)
            .context("the in-process coordinator did not write its admin token")?,
    };
    let client = Client::new(&coordinator.base_url(), &token)?;
    Ok(Connection {
        client,
        embedded: Some(coordinator),
    })
}
