//! The warm pool: started containers for the default image, each with its own
//! empty workspace directory. A container's bind mount is fixed at creation, so
//! the slot's directory becomes the task's workspace when the container is
//! handed out. Pool containers are labelled `dockhand.pool=<slot>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use async_trait::async_trait;
use rand::Rng;

use super::api::short;
use super::engine::Engine;
use super::lifecycle;
use super::plan::Role;
use super::plan::SANDBOX_UID;
use crate::SandboxSpec;
use crate::WarmPool;
use crate::WarmSandbox;
use crate::make_workspace;

/// A started container waiting for a task.
struct Slot {
    name: String,
    container: String,
    workspace: PathBuf,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    size: usize,
    dir: PathBuf,
    free: Mutex<Vec<Slot>>,
    filling: tokio::sync::Mutex<()>,
}

impl Pool {
    /// A pool of `size` containers whose workspaces live under `dir`.
    pub(crate) fn new(engine: Engine, size: usize, dir: PathBuf) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                engine,
                size,
                dir,
                free: Mutex::new(Vec::new()),
                filling: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether container `id` is waiting in the pool.
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.free().iter().any(|s| s.container == id)
    }

    /// The spec pool containers start with: the default image, the operator's
    /// network level and limits, no extra variables.
    fn spec(&self, workspace: PathBuf) -> SandboxSpec {
        let config = &self.inner.engine.config;
        SandboxSpec {
            task_id: String::new(),
            workspace,
            network: config.pool_network,
            limits: config.pool_limits,
            env: Vec::new(),
            image: None,
        }
    }

    /// Makes a slot's workspace and starts its container.
    async fn start_slot(&self) -> Option<Slot> {
        let name: String = {
            let mut rng = rand::rng();
            (0..10)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect()
        };
        let workspace = self.inner.dir.join(format!("pool-{name}"));
        if let Err(e) = make_workspace(&workspace, Some(SANDBOX_UID)) {
            tracing::warn!(error = %e, "preparing a warm-pool workspace");
            return None;
        }
        let engine = &self.inner.engine;
        let spec = self.spec(workspace.clone());
        let role = Role::Pool(name.clone());
        match lifecycle::launch(&engine.docker, &engine.config, &spec, &role).await {
            Ok(container) => Some(Slot {
                name,
                container,
                workspace,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "starting a warm-pool container");
                let _ = std::fs::remove_dir(&workspace);
                None
            }
        }
    }

    /// Whether container `id` is still running.
    async fn running(&self, id: &str) -> bool {
        let docker = &self.inner.engine.docker;
        let state = docker.inspect_container(id, None).await.ok();
        state.and_then(|i| i.state).and_then(|s| s.running) == Some(true)
    }
}

#[async_trait]
impl WarmPool for Pool {
    fn ready(&self) -> usize {
        self.free().len()
    }

    async fn fill(&self) {
        let _one_at_a_time = self.inner.filling.lock().await;
        let missing = self.inner.size.saturating_sub(self.ready());
        let started = (0..missing).map(|_| self.start_slot());
        let started = futures_util::future::join_all(started).await;
        self.free().extend(started.into_iter().flatten());
    }

    fn refill(&self) {
        let me = self.clone();
        tokio::spawn(async move { me.fill().await });
    }

    async fn take(&self, task_id: &str) -> Option<WarmSandbox> {
        loop {
            let slot = self.free().pop()?;
            if !self.running(&slot.container).await {
                tracing::warn!(
                    slot = slot.name,
                    container = short(&slot.container),
                    "pool container not running"
                );
                let _ = lifecycle::remove(&self.inner.engine.docker, &slot.container).await;
                let _ = std::fs::remove_dir(&slot.workspace);
                continue;
            }
            let spec = self.spec(slot.workspace.clone());
            let mut serving = spec.clone();
            serving.task_id = task_id.to_owned();
            // Its labels keep naming the slot (labels cannot change); a replacement
            // made by `Sandbox::replace` is labelled for the task.
            let role = Role::Task(task_id.to_owned());
            let sandbox = self.inner.engine.sandbox(serving, role, slot.container);
            return Some(WarmSandbox {
                workspace: slot.workspace,
                sandbox,
                spec,
            });
        }
    }

    async fn drain(&self) {
        let slots: Vec<Slot> = self.free().drain(..).collect();
        for slot in slots {
            let _ = lifecycle::remove(&self.inner.engine.docker, &slot.container).await;
            let _ = std::fs::remove_dir(&slot.workspace);
        }
    }
}
