//! The single writer: group commit, per-task sequence numbers, publish after commit.
//!
//! Producers hand over operations through a bounded queue and go on. The writer
//! takes everything queued (up to `max_batch`), applies it in one transaction,
//! commits, then publishes the batch's events in order and resolves the waiting
//! callers. A durable event is therefore never visible to a subscriber before it is
//! committed, and no caller waits on more than the batch its change is in.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use rusqlite::Connection;
use rusqlite::Transaction;
use tokio::sync::oneshot;

use crate::Committed;
use crate::Publish;
use crate::Result;
use crate::StoreError;
use crate::StoreOptions;
use crate::time::now_ms;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&mut JobCtx<'_>) -> Option<Completion> + Send>;

enum Op {
    /// A fire-and-forget event, its payload already serialized by the producer.
    Event {
        task: TaskId,
        ts_ms: i64,
        kind: &'static str,
        data: String,
    },
    /// A unit of work applied atomically (inside a savepoint) in the group transaction.
    Job(Job),
}

/// Counters for `/metrics` and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    /// Events committed since start.
    pub events: u64,
    /// Transactions committed since start.
    pub batches: u64,
}

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    batches: AtomicU64,
}

pub(crate) struct Writer {
    sender: Option<mpsc::SyncSender<Op>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    pub(crate) fn start(
        conn: Connection,
        opts: &StoreOptions,
        publish: Arc<dyn Publish>,
    ) -> Result<Writer> {
        let (sender, receiver) = mpsc::sync_channel(opts.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let state = WriterLoop {
            conn,
            receiver,
            publish,
            seqs: HashMap::new(),
            max_batch: opts.max_batch.max(1),
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("dockhand-store-writer".into())
            .spawn(move || state.run())
            .map_err(|e| StoreError::Commit(format!("starting the writer thread: {e}")))?;
        Ok(Writer {
            sender: Some(sender),
            thread: Some(thread),
            counters,
        })
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            events: self.counters.events.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
        }
    }

    fn send(&self, op: Op) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        sender.send(op).map_err(|_| StoreError::WriterGone)
    }

    /// Hands an event over without waiting for its commit.
    pub(crate) fn append(&self, task: TaskId, body: EventBody) -> Result<()> {
        // Serializing here spreads the work over the producers' threads.
        let data = body.data_json()?;
        self.send(Op::Event {
            task,
            ts_ms: now_ms(),
            kind: body.kind(),
            data,
        })
    }

    /// Queues a job without waiting for its commit.
    pub(crate) fn submit(
        &self,
        f: impl FnOnce(&mut JobCtx<'_>) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let job: Job = Box::new(move |ctx| match f(ctx) {
            Ok(()) => Some(Box::new(|_: Result<()>| {}) as Completion),
            Err(e) => {
                tracing::warn!(error = %e, "a background store update failed");
                None
            }
        });
        self.send(Op::Job(job))
    }

    pub(crate) async fn transact<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut JobCtx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let job: Job = Box::new(move |ctx| match f(ctx) {
            Ok(value) => Some(Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.map(|()| value));
            })),
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
        });
        self.send(Op::Job(job))?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued and exit.
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a job sees: the open transaction, and a way to emit events atomically with it.
pub struct JobCtx<'a> {
    tx: &'a Transaction<'a>,
    seqs: &'a mut HashMap<TaskId, u64>,
    out: &'a mut Vec<Committed>,
    /// Seqs to restore if the job rolls back.
    undo: Vec<(TaskId, Option<u64>)>,
    now: i64,
}

impl JobCtx<'_> {
    /// The transaction.
    pub fn conn(&self) -> &Connection {
        self.tx
    }

    /// The time the batch started, in ms.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Appends an event in this job's transaction; returns its seq.
    pub fn emit(&mut self, task: &TaskId, body: EventBody) -> Result<u64> {
        let before = self.seqs.get(task).copied();
        let data = body.data_json()?;
        let seq = insert_event(
            self.tx,
            self.seqs,
            self.out,
            task,
            self.now,
            body.kind(),
            data,
        )?;
        self.undo.push((task.clone(), before));
        Ok(seq)
    }
}

struct WriterLoop {
    conn: Connection,
    receiver: mpsc::Receiver<Op>,
    publish: Arc<dyn Publish>,
    seqs: HashMap<TaskId, u64>,
    max_batch: usize,
    counters: Arc<Counters>,
}

impl WriterLoop {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Ok(first) = self.receiver.recv() {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.receiver.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Op>) {
        let mut out = Vec::with_capacity(batch.len());
        let mut completions: Vec<Completion> = Vec::new();
        let result = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            let now = now_ms();
            for op in batch.drain(..) {
                match op {
                    Op::Event {
                        task,
                        ts_ms,
                        kind,
                        data,
                    } => {
                        if let Err(e) =
                            insert_event(&tx, &mut self.seqs, &mut out, &task, ts_ms, kind, data)
                        {
                            tracing::error!(task = %task, error = %e, "dropping event that failed to insert");
                        }
                    }
                    Op::Job(job) => {
                        tx.execute_batch("SAVEPOINT job")?;
                        let mark = out.len();
                        let mut ctx = JobCtx {
                            tx: &tx,
                            seqs: &mut self.seqs,
                            out: &mut out,
                            undo: Vec::new(),
                            now,
                        };
                        let done = job(&mut ctx);
                        let undo = std::mem::take(&mut ctx.undo);
                        match done {
                            Some(c) => {
                                tx.execute_batch("RELEASE job")?;
                                completions.push(c);
                            }
                            None => {
                                tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                                out.truncate(mark);
                                for (task, before) in undo.into_iter().rev() {
                                    match before {
                                        Some(s) => self.seqs.insert(task, s),
                                        None => self.seqs.remove(&task),
                                    };
                                }
                            }
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.counters
                    .events
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                if !out.is_empty() {
                    self.publish.publish(out);
                }
                // Seqs are reloaded on a miss, so the cache only needs to hold active tasks.
                if self.seqs.len() > 50_000 {
                    self.seqs.clear();
                }
                for c in completions {
                    c(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; the batch is lost");
                // The cached seqs may be ahead of what is stored now.
                self.seqs.clear();
                batch.clear();
                let msg = e.to_string();
                for c in completions {
                    c(Err(StoreError::Commit(msg.clone())));
                }
            }
        }
    }
}

fn insert_event(
    tx: &Connection,
    seqs: &mut HashMap<TaskId, u64>,
    out: &mut Vec<Committed>,
    task: &TaskId,
    ts_ms: i64,
    kind: &'static str,
    data: String,
) -> Result<u64> {
    let last = match seqs.get(task) {
        Some(s) => *s,
        None => tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE task_id = ?1",
            [task.as_str()],
            |r| r.get::<_, i64>(0),
        )? as u64,
    };
    let seq = last + 1;
    tx.prepare_cached(
        "INSERT INTO events (task_id, seq, kind, ts, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![
        task.as_str(),
        seq as i64,
        kind,
        ts_ms,
        data
    ])?;
    seqs.insert(task.clone(), seq);
    out.push(Committed {
        task_id: task.clone(),
        seq,
        json: crate::events::event_json(seq, ts_ms, kind, &data),
    });
    Ok(seq)
}
