//! Choosing and connecting the sandbox backend: docker whenever an engine
//! answers (unless configured otherwise), local (bubblewrap) otherwise.

use std::sync::Arc;

use dockhand_sandbox::SandboxError;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;

use crate::config::Backend;
use crate::config::Config;

/// The backend in use.
pub(crate) enum Chosen {
    Docker(Arc<DockerProvider>),
    Local(Arc<LocalProvider>),
}

/// The docker settings from the configuration.
pub fn docker_config(config: &Config, coordinator_id: &str) -> DockerConfig {
    let mut d = DockerConfig::new(coordinator_id, config.default_image());
    d.memory_bytes = (config.sandbox.memory_mb as i64) << 20;
    d.nano_cpus = (config.sandbox.cpus * 1e9) as i64;
    d.pids_limit = config.sandbox.pids;
    d.runtime = Some(config.sandbox.runtime.clone()).filter(|r| !r.is_empty());
    d
}

pub(crate) async fn connect(config: &Config, coordinator_id: &str) -> Result<Chosen, SandboxError> {
    let local = || -> Result<Chosen, SandboxError> {
        Ok(Chosen::Local(Arc::new(LocalProvider::new(
            LocalConfig::new(config.data_dir.join("sandbox")),
        )?)))
    };
    match config.sandbox.backend {
        Some(Backend::Local) => local(),
        Some(Backend::Docker) => Ok(Chosen::Docker(Arc::new(
            DockerProvider::connect(docker_config(config, coordinator_id)).await?,
        ))),
        None => match DockerProvider::connect(docker_config(config, coordinator_id)).await {
            Ok(d) => Ok(Chosen::Docker(Arc::new(d))),
            Err(e) => {
                tracing::info!(reason = %e, "no Docker engine; using the local (bubblewrap) sandbox");
                local()
            }
        },
    }
}
