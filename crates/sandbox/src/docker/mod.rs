//! The `docker` backend: one container per task, every command an exec.
//!
//! [`plan`](mod@plan) decides what a container is (pure, unit-tested); the rest talks to the
//! Engine API through bollard. A container is made from an image with the task's
//! workspace at `/workspace` and nothing else of the host; Docker's init is PID 1 and
//! sleeps. Commands, the persistent shell and the file operations are execs as uid 1000.
//! Labels fixed at creation say which coordinator made a container and for which task
//! (or warm-pool slot), so a restarted coordinator can find, re-attach or remove it.
//!
//! The engine may be older than bollard's default API version; [`DockerProvider::connect`]
//! negotiates down to what the daemon speaks.
//!
//! This file holds the provider. Below it, each file imports only those further down:
//! `pool` (the warm pool) and `images` (environment images, over `env_cache` and
//! `image`) use `engine` (what they share with the provider: the client, the
//! configuration, the egress proxy), which wraps containers in a
//! `sandbox` (the [`Sandbox`] implementation); that uses `oneshot` and `shell`, which run
//! processes in a `container` (the shared handle: kills, counters, egress link,
//! replacement); that starts processes through `exec`, and containers through
//! `lifecycle`; `plan`, `scripts`, `egress` (with `archive`), `limits`, `config` and
//! `api` sit at the bottom.

mod api;
mod archive;
mod config;
mod container;
mod egress;
mod engine;
pub mod env_cache;
mod exec;
pub mod image;
mod images;
mod lifecycle;
pub mod limits;
mod oneshot;
pub mod plan;
mod pool;
mod sandbox;
mod scripts;
mod shell;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::ListContainersOptions;

use self::api::api_error;
use self::api::message;
use self::api::short;
pub use self::config::DockerConfig;
use self::engine::Engine;
use self::images::DockerImages;
pub use self::plan::LABEL_COORDINATOR;
pub use self::plan::LABEL_POOL;
pub use self::plan::LABEL_TASK;
pub use self::plan::Role;
pub use self::plan::plan;
use self::pool::Pool;
use self::sandbox::BACKEND;
use crate::Images;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxProvider;
use crate::SandboxSpec;
use crate::WarmPool;
use crate::egress::Egress;

const ENGINE_FIX: &str =
    "start the Docker engine (systemctl start docker) or set DOCKHAND_SANDBOX=local";

/// What `dockhand doctor` shows about the docker backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerCheck {
    /// The engine's version and API version, e.g. `20.10.24 (API 1.41)`.
    pub engine: String,
    /// Whether the default image exists on the engine.
    pub image: CheckItem,
    /// Whether the configured runtime is known to the daemon; `None` when none is set.
    pub runtime: Option<CheckItem>,
}

/// One finding of [`DockerProvider::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckItem {
    /// True when all is well.
    pub ok: bool,
    /// What was found, e.g. `dockhand-sandbox:0.1.0 present`.
    pub detail: String,
    /// What an operator can do when it is not ok.
    pub fix: Option<String>,
}

/// A container carrying a `dockhand.coordinator` label, for orphan cleanup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerContainer {
    /// Full container id.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// All its labels.
    pub labels: HashMap<String, String>,
    /// Docker's state word: `created`, `running`, `exited`, ….
    pub state: String,
}

/// Makes containers through one Docker engine.
pub struct DockerProvider {
    engine: Engine,
    pool: Option<Pool>,
    images: DockerImages,
}

impl DockerProvider {
    /// Connects to the engine and agrees on an API version. Fails with
    /// [`SandboxError::Unavailable`] when the engine does not answer.
    pub async fn connect(config: DockerConfig) -> Result<DockerProvider> {
        let unavailable = |reason: String| SandboxError::Unavailable {
            what: "docker".to_owned(),
            reason,
            fix: ENGINE_FIX.to_owned(),
        };
        let client = match config.socket.as_deref() {
            None => Docker::connect_with_defaults(),
            Some(addr) if addr.contains("://") => Docker::connect_with_host(addr),
            Some(path) => {
                Docker::connect_with_unix(
                    path,
                    /*timeout_secs*/ 120,
                    bollard::API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|e| unavailable(e.to_string()))?;
        // bollard speaks a newer API than older engines accept; use theirs.
        let docker = client
            .negotiate_version()
            .await
            .map_err(|e| unavailable(format!("the engine does not answer: {e}")))?;
        Ok(DockerProvider::assemble(Engine {
            docker,
            config: Arc::new(config),
            egress: None,
        }))
    }

    /// The provider on `engine`, with a warm pool when one is configured.
    fn assemble(engine: Engine) -> DockerProvider {
        let config = &engine.config;
        let pool = match (&config.pool_dir, config.pool_size) {
            (Some(dir), size) if size > 0 => Some(Pool::new(engine.clone(), size, dir.clone())),
            _ => None,
        };
        DockerProvider {
            images: DockerImages {
                engine: engine.clone(),
            },
            pool,
            engine,
        }
    }

    /// The same provider, relaying `allowlist` sandboxes' traffic to `egress`;
    /// without one they reach nothing, as at `none`. Call it before the warm
    /// pool fills.
    pub fn with_egress(self, egress: Arc<dyn Egress>) -> DockerProvider {
        DockerProvider::assemble(Engine {
            egress: Some(egress),
            ..self.engine
        })
    }

    /// The engine client, for image and environment-cache code.
    pub fn client(&self) -> &bollard::Docker {
        &self.engine.docker
    }

    /// The configuration the provider was made with.
    pub fn config(&self) -> &DockerConfig {
        &self.engine.config
    }

    /// For `dockhand doctor`: the engine version, whether the default image exists,
    /// and whether the configured runtime is known to the daemon.
    pub async fn check(&self) -> Result<DockerCheck> {
        let version = self
            .engine
            .docker
            .version()
            .await
            .map_err(|e| api_error("asking the Docker engine for its version", e))?;
        let engine = format!(
            "{} (API {})",
            version.version.as_deref().unwrap_or("unknown"),
            version.api_version.as_deref().unwrap_or("unknown")
        );
        let name = &self.engine.config.image;
        let image = match self.engine.docker.inspect_image(name).await {
            Ok(_) => CheckItem {
                ok: true,
                detail: format!("{name} present"),
                fix: None,
            },
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => CheckItem {
                ok: false,
                detail: format!("{name} not found"),
                fix: Some("build it with `dockhand image build`".to_owned()),
            },
            Err(e) => CheckItem {
                ok: false,
                detail: format!("inspecting {name}: {}", message(&e)),
                fix: None,
            },
        };
        let runtime = match &self.engine.config.runtime {
            None => None,
            Some(runtime) => Some(match self.engine.docker.info().await {
                Ok(info) => {
                    let mut known: Vec<String> =
                        info.runtimes.unwrap_or_default().into_keys().collect();
                    known.sort();
                    let ok = known.contains(runtime);
                    CheckItem {
                        ok,
                        detail: format!(
                            "runtime {runtime} {}; the daemon knows {}",
                            if ok { "configured" } else { "unknown" },
                            known.join(", ")
                        ),
                        fix: (!ok).then(|| {
                            format!(
                                "install {runtime} and add it to \"runtimes\" in the daemon's \
                                 daemon.json, then restart Docker; or unset the runtime"
                            )
                        }),
                    }
                }
                Err(e) => CheckItem {
                    ok: false,
                    detail: format!("asking the daemon for its runtimes: {}", message(&e)),
                    fix: None,
                },
            }),
        };
        Ok(DockerCheck {
            engine,
            image,
            runtime,
        })
    }

    /// Every container with a `dockhand.coordinator` label, whichever coordinator made
    /// it, so the caller can tell its own orphans from others'.
    pub async fn list_all(&self) -> Result<Vec<DockerContainer>> {
        self.list_labelled(LABEL_COORDINATOR.to_owned()).await
    }

    async fn list_labelled(&self, label: String) -> Result<Vec<DockerContainer>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), vec![label])])),
            ..Default::default()
        };
        let found = self
            .engine
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| api_error("listing containers", e))?;
        Ok(found
            .into_iter()
            .filter_map(|c| {
                Some(DockerContainer {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                })
            })
            .collect())
    }
}

#[async_trait]
impl SandboxProvider for DockerProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Workspaces are bind-mounted, so they belong to the sandbox user's uid.
    fn workspace_owner(&self) -> Option<u32> {
        Some(plan::SANDBOX_UID)
    }

    fn noun(&self) -> &'static str {
        "container"
    }

    /// Containers stay for the idle window after a run, and across restarts.
    fn keeps_finished(&self) -> bool {
        true
    }

    async fn create(&self, spec: SandboxSpec) -> Result<Arc<dyn Sandbox>> {
        let role = Role::Task(spec.task_id.clone());
        let engine = &self.engine;
        let id = lifecycle::launch(&engine.docker, &engine.config, &spec, &role).await?;
        Ok(engine.sandbox(spec, role, id))
    }

    async fn attach(&self, id: &str, spec: SandboxSpec) -> Result<Option<Arc<dyn Sandbox>>> {
        let what = || format!("attaching to container {}", short(id));
        let inspect = match self.engine.docker.inspect_container(id, None).await {
            Ok(inspect) => inspect,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(api_error(what(), e)),
        };
        let labels = inspect
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if labels.get(LABEL_COORDINATOR) != Some(&self.engine.config.coordinator_id) {
            tracing::warn!(
                container = short(id),
                "not made by this coordinator; not attaching"
            );
            return Ok(None);
        }
        let full_id = inspect.id.unwrap_or_else(|| id.to_owned());
        let state = inspect.state.unwrap_or_default();
        if state.paused == Some(true) {
            self.engine
                .docker
                .unpause_container(&full_id)
                .await
                .map_err(|e| api_error(what(), e))?;
        } else if state.running != Some(true) {
            self.engine
                .docker
                .start_container(&full_id, None)
                .await
                .map_err(|e| api_error(what(), e))?;
        }
        let role = Role::Task(spec.task_id.clone());
        let sandbox = self.engine.sandbox(spec, role, full_id);
        // Commands interrupted by a coordinator crash must not keep running.
        sandbox.kill_all().await?;
        Ok(Some(sandbox))
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        let label = format!("{LABEL_COORDINATOR}={}", self.engine.config.coordinator_id);
        let waiting = |id: &str| self.pool.as_ref().is_some_and(|p| p.holds(id));
        let mut infos: Vec<SandboxInfo> = self
            .list_labelled(label)
            .await?
            .into_iter()
            .filter(|c| !waiting(&c.id))
            .map(|c| SandboxInfo {
                backend: BACKEND.to_owned(),
                task_id: c.labels.get(LABEL_TASK).cloned(),
                id: c.id,
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    async fn remove(&self, id: &str) -> Result<()> {
        lifecycle::remove(&self.engine.docker, id).await
    }

    fn warm_pool(&self) -> Option<&dyn WarmPool> {
        self.pool.as_ref().map(|p| p as &dyn WarmPool)
    }

    fn images(&self) -> Option<&dyn Images> {
        Some(&self.images)
    }
}
