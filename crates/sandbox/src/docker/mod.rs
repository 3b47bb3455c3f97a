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
//! `sandbox` (the [`Sandbox`] implementation) uses `oneshot` and `shell`, which run
//! processes in a `container` (the shared handle: kills, counters, egress link,
//! replacement); that starts processes through `exec`, and containers through
//! `lifecycle`; `plan`, `scripts`, `egress` (with `archive`), `limits`, `config` and
//! `api` sit at the bottom.

mod api;
mod archive;
mod config;
mod container;
mod egress;
pub mod env_cache;
mod exec;
pub mod image;
mod lifecycle;
pub mod limits;
mod oneshot;
pub mod plan;
mod sandbox;
mod scripts;
mod shell;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::ListContainersOptions;

use self::api::api_error;
use self::api::message;
use self::api::short;
pub use self::config::DockerConfig;
use self::container::Container;
pub use self::plan::LABEL_COORDINATOR;
pub use self::plan::LABEL_POOL;
pub use self::plan::LABEL_TASK;
pub use self::plan::Role;
pub use self::plan::plan;
use self::sandbox::BACKEND;
use self::sandbox::DockerSandbox;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxProvider;
use crate::SandboxSpec;
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

/// A started warm-pool container waiting for a task.
struct PoolEntry {
    id: String,
    workspace: PathBuf,
}

/// Makes containers through one Docker engine.
pub struct DockerProvider {
    docker: Docker,
    config: Arc<DockerConfig>,
    pool: Mutex<HashMap<String, PoolEntry>>,
    egress: Option<Arc<dyn Egress>>,
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
        Ok(DockerProvider {
            docker,
            config: Arc::new(config),
            pool: Mutex::new(HashMap::new()),
            egress: None,
        })
    }

    /// The same provider, relaying `allowlist` sandboxes' traffic to `egress`;
    /// without one they reach nothing, as at `none`.
    pub fn with_egress(mut self, egress: Arc<dyn Egress>) -> DockerProvider {
        self.egress = Some(egress);
        self
    }

    /// The engine client, for image and environment-cache code.
    pub fn client(&self) -> &bollard::Docker {
        &self.docker
    }

    /// The configuration the provider was made with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// For `dockhand doctor`: the engine version, whether the default image exists,
    /// and whether the configured runtime is known to the daemon.
    pub async fn check(&self) -> Result<DockerCheck> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| api_error("asking the Docker engine for its version", e))?;
        let engine = format!(
            "{} (API {})",
            version.version.as_deref().unwrap_or("unknown"),
            version.api_version.as_deref().unwrap_or("unknown")
        );
        let name = &self.config.image;
        let image = match self.docker.inspect_image(name).await {
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
        let runtime = match &self.config.runtime {
            None => None,
            Some(runtime) => Some(match self.docker.info().await {
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

    /// Force-removes a container (stopping it first). Already gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        lifecycle::remove(&self.docker, id).await
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

    /// Starts a warm-pool container from the default image for each `(slot, workspace)`,
    /// with network, labelled `dockhand.pool=<slot>`. Slots already filled are left as
    /// they are. Returns the first failure after trying every slot.
    pub async fn fill_pool(&self, slots: Vec<(String, PathBuf)>) -> Result<()> {
        let wanted: Vec<(String, PathBuf)> = {
            let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            slots
                .into_iter()
                .filter(|(slot, _)| !pool.contains_key(slot))
                .collect()
        };
        let launches = wanted.into_iter().map(|(slot, workspace)| async move {
            let spec = pool_spec(&self.config, &workspace);
            let role = Role::Pool(slot.clone());
            let id = lifecycle::launch(&self.docker, &self.config, &spec, &role).await;
            (slot, workspace, id)
        });
        let mut first_error = None;
        for (slot, workspace, id) in futures_util::future::join_all(launches).await {
            match id {
                Ok(id) => {
                    let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
                    pool.insert(slot, PoolEntry { id, workspace });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether `slot` holds a started container waiting for a task.
    pub fn pool_has(&self, slot: &str) -> bool {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(slot)
    }

    /// Hands out the pool container in `slot` to `task_id`, if it is still running. Its
    /// labels keep naming the slot (labels cannot change); a replacement made by
    /// [`Sandbox::replace`] is labelled for the task.
    pub async fn take_pool(&self, slot: &str, task_id: &str) -> Option<Arc<dyn Sandbox>> {
        let entry = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(slot)?;
        let running = self
            .docker
            .inspect_container(&entry.id, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running)
            == Some(true);
        if !running {
            tracing::warn!(
                slot,
                container = short(&entry.id),
                "pool container not running"
            );
            let _ = lifecycle::remove(&self.docker, &entry.id).await;
            return None;
        }
        let mut spec = pool_spec(&self.config, &entry.workspace);
        spec.task_id = task_id.to_owned();
        Some(self.sandbox(spec, Role::Task(task_id.to_owned()), entry.id))
    }

    fn sandbox(&self, spec: SandboxSpec, role: Role, id: String) -> Arc<dyn Sandbox> {
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

/// The spec of a pool container: default image, network level and limits, no
/// extra environment.
pub fn pool_spec(config: &DockerConfig, workspace: &std::path::Path) -> SandboxSpec {
    SandboxSpec {
        task_id: String::new(),
        workspace: workspace.to_path_buf(),
        network: config.pool_network,
        limits: config.pool_limits,
        env: Vec::new(),
        image: None,
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

    async fn create(&self, spec: SandboxSpec) -> Result<Arc<dyn Sandbox>> {
        let role = Role::Task(spec.task_id.clone());
        let id = lifecycle::launch(&self.docker, &self.config, &spec, &role).await?;
        Ok(self.sandbox(spec, role, id))
    }

    async fn attach(&self, id: &str, spec: SandboxSpec) -> Result<Option<Arc<dyn Sandbox>>> {
        let what = || format!("attaching to container {}", short(id));
        let inspect = match self.docker.inspect_container(id, None).await {
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
        if labels.get(LABEL_COORDINATOR) != Some(&self.config.coordinator_id) {
            tracing::warn!(
                container = short(id),
                "not made by this coordinator; not attaching"
            );
            return Ok(None);
        }
        let full_id = inspect.id.unwrap_or_else(|| id.to_owned());
        let state = inspect.state.unwrap_or_default();
        if state.paused == Some(true) {
            self.docker
                .unpause_container(&full_id)
                .await
                .map_err(|e| api_error(what(), e))?;
        } else if state.running != Some(true) {
            self.docker
                .start_container(&full_id, None)
                .await
                .map_err(|e| api_error(what(), e))?;
        }
        let role = Role::Task(spec.task_id.clone());
        let sandbox = self.sandbox(spec, role, full_id);
        // Commands interrupted by a coordinator crash must not keep running.
        sandbox.kill_all().await?;
        Ok(Some(sandbox))
    }

    async fn list(&self) -> Result<Vec<SandboxInfo>> {
        let label = format!("{LABEL_COORDINATOR}={}", self.config.coordinator_id);
        let mut infos: Vec<SandboxInfo> = self
            .list_labelled(label)
            .await?
            .into_iter()
            .map(|c| SandboxInfo {
                backend: BACKEND.to_owned(),
                task_id: c.labels.get(LABEL_TASK).cloned(),
                id: c.id,
            })
            .collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }
}
