//! The `docker` backend's fixture (the engine, a test image, a provider with a
//! coordinator id of its own, workspaces, and a guard that removes the test's
//! containers), and what only docker sandboxes do.
//!
//! The engine is part of this machine (DESIGN.md, "Testing"): when it does not answer,
//! or the test image is missing, the tests fail with a message saying so; they never
//! skip. CI sets `DOCKHAND_REQUIRE_DOCKER=1`, which the message mentions.

mod isolation;
mod limits;
mod processes;
mod provider;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use bollard::query_parameters::RemoveContainerOptions;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::SandboxSpec;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::docker::LABEL_COORDINATOR;
use tempfile::TempDir;

use crate::conformance::Fixture;

/// The image the tests run; `DOCKHAND_TEST_IMAGE` overrides it.
pub(crate) fn test_image() -> String {
    std::env::var("DOCKHAND_TEST_IMAGE").unwrap_or_else(|_| "dockhand-sandbox:test".to_owned())
}

/// A client for the engine, or a panic that says how to get one.
pub(crate) async fn require_docker() -> Docker {
    let fail = |e: bollard::errors::Error| -> Docker {
        let required = std::env::var("DOCKHAND_REQUIRE_DOCKER").as_deref() == Ok("1");
        panic!(
            "the Docker engine does not answer ({e}); the docker sandbox tests need one \
             (systemctl start docker){}",
            if required {
                "; DOCKHAND_REQUIRE_DOCKER=1 is set"
            } else {
                ""
            }
        )
    };
    let docker = Docker::connect_with_defaults().unwrap_or_else(fail);
    let docker = docker.negotiate_version().await.unwrap_or_else(fail);
    docker.ping().await.map(|_| ()).unwrap_or_else(|e| {
        fail(e);
    });
    docker
}

/// Panics unless `image` exists on the engine.
pub(crate) async fn require_image(docker: &Docker, image: &str) {
    if let Err(e) = docker.inspect_image(image).await {
        panic!(
            "the docker sandbox tests need the image {image} ({e}); build it (CI builds \
             dockhand-sandbox:test with mmdebstrap + docker import) or point \
             DOCKHAND_TEST_IMAGE at another image with sh, bash, coreutils, procps and python3"
        );
    }
}

/// A coordinator id no other test or run uses.
fn unique_coordinator() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// Removes every container labelled with a coordinator id when dropped, also when the
/// test panicked.
pub(crate) struct Cleanup {
    coordinator: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let coordinator = self.coordinator.clone();
        // A fresh runtime on its own thread: Drop cannot await, and the test's runtime
        // may be shutting down.
        // A failed cleanup leaves containers labelled with this run's unique coordinator
        // id; it must not turn a passing test into a failing one.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(remove_labelled(&coordinator));
        })
        .join();
    }
}

async fn remove_labelled(coordinator: &str) {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return;
    };
    let Ok(docker) = docker.negotiate_version().await else {
        return;
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(
            [(
                "label".to_owned(),
                vec![format!("{LABEL_COORDINATOR}={coordinator}")],
            )]
            .into(),
        ),
        ..Default::default()
    };
    let Ok(found) = docker.list_containers(Some(options)).await else {
        return;
    };
    for id in found.into_iter().filter_map(|c| c.id) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let _ = docker.remove_container(&id, Some(options)).await;
    }
}

/// A provider for one test, its workspaces and its cleanup.
pub(crate) struct DockerHost {
    pub(crate) docker: Docker,
    pub(crate) provider: DockerProvider,
    pub(crate) config: DockerConfig,
    dir: TempDir,
    // Last: containers go before the workspaces they bind.
    _cleanup: Cleanup,
}

impl DockerHost {
    /// A host with the default limits.
    pub(crate) async fn new() -> DockerHost {
        DockerHost::with(|_| {}).await
    }

    /// A host whose config `adjust` changes.
    pub(crate) async fn with(adjust: impl FnOnce(&mut DockerConfig)) -> DockerHost {
        let docker = require_docker().await;
        let image = test_image();
        require_image(&docker, &image).await;
        let mut config = DockerConfig::new(unique_coordinator(), image);
        adjust(&mut config);
        let cleanup = Cleanup {
            coordinator: config.coordinator_id.clone(),
        };
        let provider = DockerProvider::connect(config.clone()).await.unwrap();
        let dir = tempfile::Builder::new()
            .prefix("docker-sandbox-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        DockerHost {
            docker,
            provider,
            config,
            dir,
            _cleanup: cleanup,
        }
    }

    /// A second provider with the same coordinator id, as after a restart.
    pub(crate) async fn restarted_provider(&self) -> DockerProvider {
        DockerProvider::connect(self.config.clone()).await.unwrap()
    }

    /// The workspace of `task`, made on first use and owned by the sandbox user.
    pub(crate) fn workspace(&self, task: &str) -> PathBuf {
        let path = self.dir.path().join("workspaces").join(task);
        if !path.exists() {
            std::fs::create_dir_all(&path).unwrap();
            // On the host a docker workspace belongs to uid 1000 (DESIGN.md).
            std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
        }
        path
    }

    /// A spec for `task` with the provider's default limits, which a test may have
    /// adjusted.
    pub(crate) fn spec(&self, task: &str, network: NetworkLevel) -> SandboxSpec {
        let mut spec = crate::conformance::spec(self, task, network);
        spec.limits = self.config.pool_limits;
        spec
    }

    /// A sandbox for task `t1` at `network`.
    pub(crate) async fn sandbox(&self, network: NetworkLevel) -> Arc<dyn Sandbox> {
        self.provider
            .create(self.spec("t1", network))
            .await
            .unwrap()
    }
}

impl Fixture for DockerHost {
    const BACKEND: &'static str = "docker";

    async fn new() -> Self {
        DockerHost::new().await
    }

    fn provider(&self) -> &dyn SandboxProvider {
        &self.provider
    }

    fn host_dir(&self) -> &Path {
        self.dir.path()
    }

    fn workspace(&self, task: &str) -> PathBuf {
        DockerHost::workspace(self, task)
    }

    /// Looks inside the container, where only this sandbox's processes are.
    async fn processes_matching(&self, sb: &dyn Sandbox, needle: &str) -> Vec<String> {
        processes_matching(sb, needle).await
    }
}

/// Full command lines of the processes in the sandbox, read from `/proc` by a shell loop
/// (no `ps` needed), leaving out the loop itself.
async fn processes(sb: &dyn Sandbox) -> Vec<String> {
    let script = r#"for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$$" ] && continue
  c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) && [ -n "$c" ] && echo "${d#/proc/}: $c"
done"#;
    let out = crate::harness::sh(sb, script).await;
    crate::harness::text(&out.stdout)
        .lines()
        .filter(|line| !line.contains("tr \\0"))
        .map(str::to_owned)
        .collect()
}

/// The processes whose command line contains `needle`.
pub(crate) async fn processes_matching(sb: &dyn Sandbox, needle: &str) -> Vec<String> {
    processes(sb)
        .await
        .into_iter()
        .filter(|p| p.contains(needle) && !p.contains("/proc/[0-9]*"))
        .collect()
}
