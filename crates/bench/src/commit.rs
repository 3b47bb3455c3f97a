//! Where the store's share of the latency goes: `Store::append` to
//! `Publish::publish` at the benchmark's rate, beside a plain rusqlite
//! insert-and-commit of one row at the same rate. Also the task and the probe
//! event the latency benchmark writes, shared with it.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::ToolOutputEvent;
use dockhand_store::Committed;
use dockhand_store::NewTask;
use dockhand_store::Publish;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;
use rusqlite::params;

use crate::wsclient::Stats;
use crate::wsclient::pace;

/// Publishes nowhere.
pub struct Discard;

impl Publish for Discard {
    fn publish(&self, _batch: Vec<Committed>) {}
}

/// Records when each committed event reached the publisher.
struct Stamp(std::sync::Mutex<Vec<(u64, Instant)>>);

impl Publish for Stamp {
    fn publish(&self, batch: Vec<Committed>) {
        let now = Instant::now();
        if let Ok(mut v) = self.0.lock() {
            v.extend(batch.iter().map(|c| (c.seq, now)));
        }
    }
}

/// The task the latency benchmarks write their events to.
pub fn new_task(id: &TaskId, user_id: i64) -> NewTask {
    NewTask {
        id: id.clone(),
        user_id,
        repo: "bench/bench".to_owned(),
        prompt: "latency benchmark".to_owned(),
        title: "latency benchmark".to_owned(),
        base_branch: None,
        branch: format!("dockhand/{id}-latency"),
        model: "bench".to_owned(),
        image: None,
        origin_issue: None,
    }
}

/// A `tool_output` event carrying `text`, the latency probe.
pub fn probe(text: String) -> ToolOutputEvent {
    ToolOutputEvent {
        id: "toolu_bench".to_owned(),
        text,
    }
}

/// The store's share of the latency: `append` to `publish`, at the same rate.
pub async fn store_only(events: usize, rate: u32) -> Result<Stats> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-commit")
        .tempdir()?;
    let stamps = Arc::new(Stamp(std::sync::Mutex::new(Vec::new())));
    let store = Store::open(StoreOptions::new(dir.path().join("db")), stamps.clone())?;
    let user = store.ensure_user("bench", UserRole::User).await?;
    let task = TaskId::generate();
    store.create_task(new_task(&task, user.id)).await?;
    let first = store.last_seq(&task)? + 1;
    let origin = Instant::now();
    let mut sent = Vec::with_capacity(events);
    pace(events, rate, origin, |text| {
        sent.push(Instant::now());
        Ok(store.append(&task, EventBody::ToolOutput(probe(text)))?)
    })
    .await?;
    store.flush().await?;
    let stamps = stamps.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut lat = Vec::with_capacity(events);
    for &(seq, at) in stamps.iter().filter(|(seq, _)| *seq >= first) {
        if let Some(s) = sent.get((seq - first) as usize) {
            lat.push(
                at.saturating_duration_since(*s)
                    .as_micros()
                    .min(u32::MAX as u128) as u32,
            );
        }
    }
    Stats::of(lat, events)
}

/// Plain rusqlite on the store's schema and pragmas: one event inserted and
/// committed per tick, timed from before the insert to after the commit.
pub fn raw_commit(events: usize, rate: u32) -> Result<Stats> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-commit")
        .tempdir()?;
    let path = dir.path().join("db");
    drop(Store::open(StoreOptions::new(&path), Arc::new(Discard))?);
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let task = TaskId::generate();
    let period = Duration::from_secs(1) / rate.max(1);
    let mut lat = Vec::with_capacity(events);
    let mut next = Instant::now();
    for seq in 1..=events {
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let start = Instant::now();
        let data = serde_json::to_string(&probe(format!("t={seq}")))?;
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO events (task_id, seq, kind, ts, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            task.as_str(),
            seq as i64,
            "tool_output",
            dockhand_store::now_ms(),
            data
        ])?;
        tx.commit()?;
        lat.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    Stats::of(lat, events)
}
