//! The warm pool: started containers for the default image, each with its own
//! empty workspace directory, so a task skips container start-up. A container's
//! bind mount is fixed at creation, so the slot's directory becomes the task's
//! workspace when the container is handed out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::DockerProvider;
use rand::Rng;

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<DockerProvider>,
    size: usize,
    dir: PathBuf,
    free: Mutex<Vec<(String, PathBuf)>>,
    filling: tokio::sync::Mutex<()>,
}

impl Pool {
    /// A pool of `size` containers whose workspaces live under `dir`.
    pub fn new(provider: Arc<DockerProvider>, size: usize, dir: PathBuf) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                provider,
                size,
                dir,
                free: Mutex::new(Vec::new()),
                filling: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Containers waiting for a task.
    pub fn ready(&self) -> usize {
        self.free_count()
    }

    fn free_count(&self) -> usize {
        self.inner.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Starts containers until the pool is full.
    pub async fn fill(&self) {
        let _one_at_a_time = self.inner.filling.lock().await;
        let missing = self.inner.size.saturating_sub(self.free_count());
        if missing == 0 {
            return;
        }
        let mut slots = Vec::new();
        for _ in 0..missing {
            let slot: String = {
                let mut rng = rand::rng();
                (0..10)
                    .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                    .collect()
            };
            let dir = self.inner.dir.join(format!("pool-{slot}"));
            if let Err(e) =
                crate::data_dir::make_workspace_dir(&dir, self.inner.provider.workspace_owner())
            {
                tracing::warn!(error = %e, "preparing a warm-pool workspace");
                continue;
            }
            slots.push((slot, dir));
        }
        if let Err(e) = self.inner.provider.fill_pool(slots.clone()).await {
            tracing::warn!(error = %e, "starting warm-pool containers");
        }
        // fill_pool keeps the slots it started; offer those.
        let mut free = self
            .inner
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (slot, dir) in slots {
            if self.inner.provider.pool_has(&slot) {
                free.push((slot, dir));
            } else {
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }

    /// Takes a container for `task_id`: its empty workspace directory and the sandbox.
    /// The caller refills the pool ([`Pool::refill`]) once its task is ready, so the
    /// refill does not compete with the task's own start-up.
    pub async fn take(&self, task_id: &str) -> Option<(PathBuf, Arc<dyn Sandbox>)> {
        loop {
            let (slot, dir) = self.inner.free.lock().ok()?.pop()?;
            let taken = self.inner.provider.take_pool(&slot, task_id).await;
            match taken {
                Some(sb) => return Some((dir, sb)),
                None => {
                    let _ = std::fs::remove_dir(&dir);
                }
            }
        }
    }

    /// Refills the pool in the background.
    pub fn refill(&self) {
        let me = self.clone();
        tokio::spawn(async move { me.fill().await });
    }

    /// Removes the waiting containers and their empty workspaces (at shutdown).
    pub async fn drain(&self) {
        let slots: Vec<(String, PathBuf)> = match self.inner.free.lock() {
            Ok(mut free) => free.drain(..).collect(),
            Err(_) => return,
        };
        for (slot, dir) in slots {
            if let Some(sb) = self.inner.provider.take_pool(&slot, "").await {
                let _ = sb.destroy().await;
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}
