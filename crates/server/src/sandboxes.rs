//! Choosing and connecting the sandbox backend: docker whenever an engine
//! answers (unless configured otherwise), local (bubblewrap) otherwise, which
//! is never silent: the fallback is a warning at start-up, in `/healthz` and in
//! `dockhand doctor`.

use std::sync::Arc;

use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::egress::Egress;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;
use dockhand_sandbox::local::NosuidMount;

use crate::config::Backend;
use crate::config::Config;
use crate::config::LocalLimits;

/// The backend in use.
pub(crate) struct Connected {
    pub(crate) provider: Arc<dyn SandboxProvider>,
    /// Why it is the local backend, when that was a fallback.
    pub(crate) warning: Option<String>,
    /// `workspaces/` mounted `nosuid,nodev`, for local sandboxes.
    pub(crate) mount: Option<NosuidMount>,
}

/// The docker settings from the configuration.
pub fn docker_config(config: &Config, coordinator_id: &str) -> DockerConfig {
    let mut d = DockerConfig::new(coordinator_id, config.default_image());
    d.pool_network = config.sandbox.network.level;
    d.pool_limits = config.sandbox.limits();
    d.runtime = Some(config.sandbox.runtime.clone()).filter(|r| !r.is_empty());
    d.pool_size = config.sandbox.pool_size;
    d.pool_dir = Some(config.data_dir.join("workspaces"));
    d
}

/// The local backend's settings from the configuration.
pub fn local_config(config: &Config, egress: Option<Arc<dyn Egress>>) -> LocalConfig {
    let mut l = LocalConfig::new(config.data_dir.join("sandbox"));
    l.host_uid = config.sandbox.local_uid;
    l.cgroups = config.sandbox.local_limits == LocalLimits::Cgroup;
    l.egress = egress;
    l
}

/// The warning when no backend was configured and the docker engine did not answer.
pub fn fallback_warning(reason: &SandboxError) -> String {
    format!(
        "no sandbox backend is configured and the Docker engine did not answer ({reason}); \
         tasks run in the local bubblewrap sandbox. Set sandbox.backend (DOCKHAND_SANDBOX) \
         to \"docker\" or \"local\" to choose"
    )
}

/// Connects the configured backend, or docker with local as the fallback.
pub(crate) async fn connect(
    config: &Config,
    coordinator_id: &str,
    egress: Arc<dyn Egress>,
) -> Result<Connected, SandboxError> {
    let local = |warning| -> Result<Connected, SandboxError> {
        let provider = LocalProvider::new(local_config(config, Some(egress.clone())))?;
        // A setuid file left in a workspace gains nothing on the host.
        let mount = dockhand_sandbox::local::nosuid_mount(&config.data_dir.join("workspaces"))?;
        Ok(Connected {
            provider: Arc::new(provider),
            warning,
            mount,
        })
    };
    let docker = || async {
        let provider = DockerProvider::connect(docker_config(config, coordinator_id)).await?;
        Ok::<_, SandboxError>(Connected {
            provider: Arc::new(provider.with_egress(egress.clone())),
            warning: None,
            mount: None,
        })
    };
    match config.sandbox.backend {
        Some(Backend::Local) => local(None),
        Some(Backend::Docker) => docker().await,
        None => match docker().await {
            Ok(d) => Ok(d),
            Err(e) => {
                let warning = fallback_warning(&e);
                tracing::warn!("{warning}");
                local(Some(warning))
            }
        },
    }
}
