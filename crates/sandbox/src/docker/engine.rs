//! What the provider, its warm pool and its images share: the engine client, the
//! configuration and the egress proxy.

use std::sync::Arc;

use bollard::Docker;

use super::config::DockerConfig;
use super::container::Container;
use super::plan::Role;
use super::sandbox::DockerSandbox;
use crate::Sandbox;
use crate::SandboxSpec;
use crate::egress::Egress;

/// One Docker engine as this coordinator uses it; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) docker: Docker,
    pub(crate) config: Arc<DockerConfig>,
    /// Relays `allowlist` sandboxes' traffic; without it they reach nothing.
    pub(crate) egress: Option<Arc<dyn Egress>>,
}

impl Engine {
    /// The sandbox of container `id`, serving `spec` in `role`.
    pub(crate) fn sandbox(&self, spec: SandboxSpec, role: Role, id: String) -> Arc<dyn Sandbox> {
        let container = Container::new(
            self.docker.clone(),
            Arc::clone(&self.config),
            spec,
            role,
            id,
            self.egress.clone(),
        );
        Arc::new(DockerSandbox {
            container: Arc::new(container),
        })
    }
}
