//! How the docker backend makes containers: the provider's configuration.

use std::path::PathBuf;

use crate::Limits;
use crate::NetworkLevel;

/// How the docker backend makes containers.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The engine's address (`unix:///path`, `tcp://host:port`, or a socket path);
    /// `DOCKER_HOST` or `/var/run/docker.sock` when `None`.
    pub socket: Option<String>,
    /// The image for specs that name none.
    pub image: String,
    /// Labels every container, so this coordinator finds its own after a restart.
    pub coordinator_id: String,
    /// The network level of warm-pool containers (the operator's default).
    pub pool_network: NetworkLevel,
    /// The limits of warm-pool containers (the operator's defaults).
    pub pool_limits: Limits,
    /// How many warm-pool containers to keep started; none when 0.
    pub pool_size: usize,
    /// Where warm-pool containers' workspaces are made; no pool when `None`.
    pub pool_dir: Option<PathBuf>,
    /// An OCI runtime the daemon knows, such as `runsc`; the daemon's default when `None`.
    pub runtime: Option<String>,
    /// Size of the `/tmp` tmpfs, as Docker writes sizes (`512m`).
    pub tmp_size: String,
}

impl DockerConfig {
    /// Defaults: no warm pool; were one configured, its containers at `allowlist` with the default limits, a 512 MiB
    /// `/tmp`, the daemon's runtime.
    pub fn new(coordinator_id: impl Into<String>, image: impl Into<String>) -> DockerConfig {
        DockerConfig {
            socket: None,
            image: image.into(),
            coordinator_id: coordinator_id.into(),
            pool_network: NetworkLevel::Allowlist,
            pool_limits: Limits::default(),
            pool_size: 0,
            pool_dir: None,
            runtime: None,
            tmp_size: "512m".to_owned(),
        }
    }
}
