//! The live-event hub: fans committed events and live deltas out to WebSocket
//! subscribers. Publishing never waits: each subscriber has a bounded queue, and
//! one that falls behind is dropped and told (by its connection) to resume from
//! its last seq.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use axum::extract::ws::Utf8Bytes;
use dockhand_agent::LiveSink;
use dockhand_protocol::AssistantDelta;
use dockhand_protocol::DeltaData;
use dockhand_protocol::DeltaKind;
use dockhand_protocol::TaskId;
use dockhand_store::Committed;
use dockhand_store::Publish;
use tokio::sync::mpsc;

/// Messages a subscriber receives.
#[derive(Clone, Debug)]
pub enum HubMsg {
    /// A committed event.
    Event {
        /// Its seq.
        seq: u64,
        /// Its wire JSON.
        json: Utf8Bytes,
    },
    /// A live delta's wire JSON.
    Delta(Utf8Bytes),
}

/// A subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Incoming messages. `None` means the hub dropped this subscriber.
    pub rx: mpsc::Receiver<HubMsg>,
    /// Set when the subscriber was dropped for falling behind.
    pub overflowed: Arc<AtomicBool>,
    hub: Arc<HubInner>,
    task: TaskId,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.task, self.id);
    }
}

struct Sub {
    id: u64,
    tx: mpsc::Sender<HubMsg>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Default)]
struct TaskSubs {
    last_seq: u64,
    subs: Vec<Sub>,
}

#[derive(Default)]
struct HubInner {
    tasks: Mutex<HashMap<TaskId, TaskSubs>>,
    next_id: AtomicU64,
    subscribers: AtomicU64,
    overflows: AtomicU64,
    published: AtomicU64,
}

impl HubInner {
    fn remove(&self, task: &TaskId, id: u64) {
        if let Ok(mut tasks) = self.tasks.lock()
            && let Some(t) = tasks.get_mut(task)
        {
            let before = t.subs.len();
            t.subs.retain(|s| s.id != id);
            if t.subs.len() < before {
                self.subscribers.fetch_sub(1, Ordering::Relaxed);
            }
            if t.subs.is_empty() {
                tasks.remove(task);
            }
        }
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HubStats {
    /// Connected subscribers.
    pub subscribers: u64,
    /// Subscribers dropped for falling behind.
    pub overflows: u64,
    /// Events delivered to subscriber queues.
    pub published: u64,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
    capacity: usize,
}

impl Hub {
    /// A hub whose subscribers each queue at most `capacity` messages.
    pub fn new(capacity: usize) -> Hub {
        Hub {
            inner: Arc::new(HubInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Subscribes to a task's live events. `last_seq` is the store's current last
    /// seq, used to label deltas until the next event is published.
    pub fn subscribe(&self, task: &TaskId, last_seq: u64) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            let t = tasks.entry(task.clone()).or_default();
            t.last_seq = t.last_seq.max(last_seq);
            t.subs.push(Sub {
                id,
                tx,
                overflowed: overflowed.clone(),
            });
            self.inner.subscribers.fetch_add(1, Ordering::Relaxed);
        }
        Subscription {
            rx,
            overflowed,
            hub: self.inner.clone(),
            task: task.clone(),
            id,
        }
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.inner.subscribers.load(Ordering::Relaxed),
            overflows: self.inner.overflows.load(Ordering::Relaxed),
            published: self.inner.published.load(Ordering::Relaxed),
        }
    }

    /// Sends to every subscriber of `t`, dropping those whose queue is full.
    fn fan_out(&self, t: &mut TaskSubs, msg: &HubMsg, durable: bool) {
        let inner = &self.inner;
        t.subs.retain(|s| match s.tx.try_send(msg.clone()) {
            Ok(()) => {
                if durable {
                    inner.published.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) if durable => {
                s.overflowed.store(true, Ordering::Relaxed);
                inner.overflows.fetch_add(1, Ordering::Relaxed);
                inner.subscribers.fetch_sub(1, Ordering::Relaxed);
                false
            }
            // A full queue only loses the delta; the committed text replaces it.
            Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.subscribers.fetch_sub(1, Ordering::Relaxed);
                false
            }
        });
    }
}

impl Publish for Hub {
    fn publish(&self, batch: Vec<Committed>) {
        let Ok(mut tasks) = self.inner.tasks.lock() else {
            return;
        };
        for c in batch {
            if let Some(t) = tasks.get_mut(&c.task_id) {
                t.last_seq = t.last_seq.max(c.seq);
                let msg = HubMsg::Event {
                    seq: c.seq,
                    json: Utf8Bytes::from(c.json),
                };
                self.fan_out(t, &msg, true);
            }
        }
    }
}

impl LiveSink for Hub {
    fn assistant_delta(&self, task: &TaskId, index: u32, text: &str) {
        let Ok(mut tasks) = self.inner.tasks.lock() else {
            return;
        };
        let Some(t) = tasks.get_mut(task) else {
            return;
        };
        let delta = AssistantDelta {
            kind: DeltaKind::AssistantDelta,
            after_seq: t.last_seq,
            index,
            data: DeltaData {
                text: text.to_owned(),
            },
        };
        let Ok(json) = serde_json::to_string(&delta) else {
            return;
        };
        self.fan_out(t, &HubMsg::Delta(Utf8Bytes::from(json)), false);
    }
}
