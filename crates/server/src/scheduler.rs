//! The scheduler: a durable queue in the store. It claims queued tasks in order
//! while fewer than `max_concurrent` run, resumes tasks that were running when the
//! coordinator stopped, and routes cancels to their runners.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Duration;

use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_store::CancelOutcome;
use dockhand_store::StoreError;
use dockhand_store::TaskRow;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use dockhand_store::Store;

/// A task's run, as the scheduler spawns it.
pub type RunFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// What runs a claimed task to its end (and records how it ended); `reason`
/// holds why it was cancelled, when it was.
pub trait TaskRunner: Send + Sync + 'static {
    /// The run, as a future the scheduler spawns.
    fn run(
        &self,
        task: TaskRow,
        cancel: CancellationToken,
        reason: Arc<OnceLock<String>>,
    ) -> RunFuture;
}

struct Running {
    cancel: CancellationToken,
    reason: Arc<OnceLock<String>>,
    abort: Option<AbortHandle>,
}

struct Inner {
    store: Store,
    max: usize,
    notify: Notify,
    running: Mutex<HashMap<TaskId, Running>>,
    stopped: CancellationToken,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedulerStats {
    /// Tasks being run.
    pub running: u64,
    /// The limit.
    pub max_concurrent: u64,
}

/// Handle to the scheduler; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    /// A scheduler running at most `max` tasks at once, once started.
    pub fn new(store: Store, max: usize) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                store,
                max: max.max(1),
                notify: Notify::new(),
                running: Mutex::new(HashMap::new()),
                stopped: CancellationToken::new(),
            }),
        }
    }

    /// Resumes interrupted tasks, then claims queued ones until stopped, running
    /// each with `runner`.
    pub async fn start(&self, runner: Arc<dyn TaskRunner>) -> Result<(), StoreError> {
        let store = &self.inner.store;
        for task in store.active_tasks()? {
            let msg = Some("resuming after a coordinator restart".to_owned());
            if store
                .set_status(&task.id, TaskStatus::Provisioning, msg)
                .await?
            {
                tracing::info!(task = %task.id, "resuming task");
                self.spawn(&runner, task);
            }
        }
        let me = self.clone();
        tokio::spawn(async move { me.claim_loop(runner).await });
        Ok(())
    }

    async fn claim_loop(&self, runner: Arc<dyn TaskRunner>) {
        loop {
            while self.running_count() < self.inner.max && !self.inner.stopped.is_cancelled() {
                match self.inner.store.claim_next().await {
                    Ok(Some(task)) => self.spawn(&runner, task),
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming a queued task");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = self.inner.notify.notified() => {}
                // A safety net: the queue is durable, so a missed wake-up only delays.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = self.inner.stopped.cancelled() => return,
            }
        }
    }

    fn running_count(&self) -> usize {
        self.inner
            .running
            .lock()
            .map(|r| r.len())
            .unwrap_or(usize::MAX)
    }

    fn spawn(&self, runner: &Arc<dyn TaskRunner>, task: TaskRow) {
        let id = task.id.clone();
        let cancel = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let Ok(mut running) = self.inner.running.lock() else {
            return;
        };
        running.insert(
            id.clone(),
            Running {
                cancel: cancel.clone(),
                reason: reason.clone(),
                abort: None,
            },
        );
        // A cancel that landed between the claim and the line above only set the flag.
        let flagged = self
            .inner
            .store
            .get_task(&id)
            .ok()
            .flatten()
            .is_some_and(|t| t.cancel_requested);
        if task.cancel_requested || flagged {
            let _ = reason.set("cancelled".to_owned());
            cancel.cancel();
        }
        let me = self.clone();
        let run = runner.run(task, cancel, reason);
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            run.await;
            if let Ok(mut running) = me.inner.running.lock() {
                running.remove(&task_id);
            }
            me.inner.notify.notify_one();
        });
        if let Some(r) = running.get_mut(&id) {
            r.abort = Some(handle.abort_handle());
        }
    }

    /// Wakes the claim loop (a task was queued).
    pub fn wake(&self) {
        self.inner.notify.notify_one();
    }

    /// Cancels a task: at once if queued, through its runner if running.
    pub async fn cancel(&self, id: &TaskId, message: String) -> Result<CancelOutcome, StoreError> {
        let outcome = self.inner.store.cancel(id, message.clone()).await?;
        if outcome == CancelOutcome::Requested
            && let Ok(running) = self.inner.running.lock()
            && let Some(r) = running.get(id)
        {
            let _ = r.reason.set(message);
            r.cancel.cancel();
        }
        Ok(outcome)
    }

    /// Counters.
    pub fn stats(&self) -> SchedulerStats {
        SchedulerStats {
            running: self.running_count() as u64,
            max_concurrent: self.inner.max as u64,
        }
    }

    /// Stops claiming and abandons running tasks where they are; they resume at the next start.
    pub fn stop(&self) {
        self.inner.stopped.cancel();
        if let Ok(running) = self.inner.running.lock() {
            for r in running.values() {
                if let Some(a) = &r.abort {
                    a.abort();
                }
            }
        }
    }
}
