//! Durable events/s through the event log, beside plain rusqlite.
//!
//! Both sides start from a copy of the same database file, whose events table
//! was filled to `prefill` rows first (a direct rusqlite bulk insert into the
//! schema the store creates), and insert the same rows: Dockhand through
//! `Store::append` from N tokio tasks (each yielding after every event, so the
//! tasks interleave), timed until `Store::flush` returns; the baseline on one
//! connection with a prepared statement, 1,000 rows per transaction, rows
//! going round-robin across N task ids with seqs counted in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::ensure;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::ToolOutputEvent;
use dockhand_store::Committed;
use dockhand_store::NewTask;
use dockhand_store::Publish;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;
use dockhand_store::now_ms;
use rusqlite::Connection;
use rusqlite::params;

use crate::Report;
use crate::Row;
use crate::eprintln_progress;
use crate::thousands;

/// The store's own insert (crates/store/src/writer.rs).
const INSERT: &str =
    "INSERT INTO events (task_id, seq, kind, ts, data) VALUES (?1, ?2, ?3, ?4, ?5)";
/// Rows per baseline transaction.
const BASELINE_TX_ROWS: usize = 1_000;

/// Sizes of the run.
pub struct Opts {
    /// Rows in the events table before measuring.
    pub prefill: usize,
    /// Events written per case.
    pub events: usize,
    /// Concurrently writing tasks, one case each.
    pub tasks: Vec<usize>,
}

impl Opts {
    /// Full or quick sizes.
    pub fn new(quick: bool) -> Opts {
        Opts {
            prefill: 1_000_000,
            events: if quick { 50_000 } else { 300_000 },
            tasks: vec![1, 100, 1_000],
        }
    }
}

/// Publishes nowhere (used while creating the schema).
struct Discard;

impl Publish for Discard {
    fn publish(&self, _batch: Vec<Committed>) {}
}

/// The `i`th output chunk of a task: a realistic ~100-byte line of tool output.
pub fn payload(i: usize) -> ToolOutputEvent {
    let mut text = format!("[{i:07}] ");
    while text.len() < 100 {
        text.push_str("Compiling dockhand-store v0.1.0 (/work/crates/store) ");
    }
    text.truncate(99);
    text.push('\n');
    ToolOutputEvent {
        id: "toolu_01BenchToolUseId".to_owned(),
        text,
    }
}

/// Runs the section; errors become failed rows.
pub fn run(opts: &Opts) -> Report {
    match run_inner(opts) {
        Ok(r) => r,
        Err(e) => Report {
            rows: vec![Row::failed("durable events/s", &e)],
            notes: Vec::new(),
        },
    }
}

fn run_inner(opts: &Opts) -> Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-eventlog")
        .tempdir()
        .context("creating a temp dir")?;
    let template = dir.path().join("template.db");
    let t = Instant::now();
    prefill(&template, opts.prefill)?;
    eprintln_progress(&format!(
        "  pre-filled {} rows in {:.1} s",
        thousands(opts.prefill as f64),
        t.elapsed().as_secs_f64()
    ));
    let dock_path = dir.path().join("dockhand.db");
    let base_path = dir.path().join("baseline.db");
    std::fs::copy(&template, &dock_path).context("copying the pre-filled database")?;
    std::fs::copy(&template, &base_path).context("copying the pre-filled database")?;
    std::fs::remove_file(&template).context("removing the template")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    // The coordinator's own publisher, with no subscribers.
    let hub = dockhand_server::hub::Hub::new(1024);
    let store = Store::open(StoreOptions::new(&dock_path), Arc::new(hub))?;
    let user = rt.block_on(store.ensure_user("bench", UserRole::User))?;
    let mut base_conn = open_baseline(&base_path)?;

    let mut report = Report::default();
    for &n in &opts.tasks {
        let base = run_baseline(&mut base_conn, n, opts.events)?;
        let dock = rt.block_on(run_dockhand(&store, user.id, n, opts.events))?;
        let rows_now = count_rows(&base_conn)?;
        eprintln_progress(&format!(
            "  {n} tasks: dockhand {} ev/s ({} batches, avg {:.0} events), baseline {} ev/s; table now {} rows",
            thousands(dock.rate),
            dock.batches,
            dock.avg_batch,
            thousands(base),
            thousands(rows_now as f64),
        ));
        let ratio = dock.rate / base;
        let mut target = "≥ 0.50× baseline".to_owned();
        let mut pass = ratio >= 0.5;
        if n == 100 {
            target.push_str(" and ≥ 20,000/s");
            pass &= dock.rate >= 20_000.0;
        }
        let label = if n == 1 { "task" } else { "tasks" };
        report.rows.push(Row::new(
            format!("durable events/s, {} writing {label}", thousands(n as f64)),
            thousands(dock.rate),
            thousands(base),
            format!("{ratio:.2}×"),
            target,
            Some(pass),
        ));
        report.notes.push(format!(
            "eventlog, {n} {label}: dockhand committed {} events in {} transactions (avg {:.0} per batch, {:.0} ms)",
            thousands(opts.events as f64),
            dock.batches,
            dock.avg_batch,
            dock.secs * 1000.0
        ));
    }
    report.notes.push(format!(
        "eventlog: {} events per case on a table pre-filled to {} rows (it grows through the cases; both sides see the same sizes); \
         payload a ~100-byte tool_output; synchronous=NORMAL, WAL, default page cache; Dockhand publishes to the coordinator's Hub (no subscribers); its producers are tokio tasks \
         on a {}-worker runtime calling Store::append, timed until Store::flush returns; the baseline is one thread \
         (it serializes the same ToolOutputEvent with serde_json per row, as any writer must)",
        thousands(opts.events as f64),
        thousands(opts.prefill as f64),
        rt.metrics().num_workers(),
    ));
    drop(store);
    drop(base_conn);
    rt.shutdown_background();
    Ok(report)
}

/// Creates the schema through the store, then bulk-inserts `rows` events
/// (1,000 per task) with rusqlite, and checkpoints the WAL into the file.
fn prefill(path: &Path, rows: usize) -> Result<()> {
    drop(Store::open(StoreOptions::new(path), Arc::new(Discard))?);
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(INSERT)?;
        let data = serde_json::to_string(&payload(0))?;
        let ts = now_ms() - 86_400_000;
        let mut left = rows;
        while left > 0 {
            let id = TaskId::generate();
            let n = left.min(1_000);
            for seq in 1..=n {
                stmt.execute(params![id.as_str(), seq as i64, "tool_output", ts, data])?;
            }
            left -= n;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let count = count_rows(&conn)?;
    ensure!(count as usize >= rows, "pre-fill left {count} rows");
    Ok(())
}

fn count_rows(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
}

/// The store's connection settings (crates/store/src/lib.rs `open_conn`).
fn open_baseline(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Plain rusqlite: returns events/s.
fn run_baseline(conn: &mut Connection, tasks: usize, events: usize) -> Result<f64> {
    let ids: Vec<TaskId> = (0..tasks).map(|_| TaskId::generate()).collect();
    let mut seqs = vec![0u64; tasks];
    let start = Instant::now();
    let mut i = 0;
    while i < events {
        let end = (i + BASELINE_TX_ROWS).min(events);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for j in i..end {
                let k = j % tasks;
                let n = seqs[k] as usize;
                seqs[k] += 1;
                let data = serde_json::to_string(&payload(n))?;
                stmt.execute(params![
                    ids[k].as_str(),
                    seqs[k] as i64,
                    "tool_output",
                    now_ms(),
                    data
                ])?;
            }
        }
        tx.commit()?;
        i = end;
    }
    Ok(events as f64 / start.elapsed().as_secs_f64())
}

struct DockResult {
    rate: f64,
    secs: f64,
    batches: u64,
    avg_batch: f64,
}

/// N tokio tasks append concurrently; timed until everything is committed.
async fn run_dockhand(
    store: &Store,
    user_id: i64,
    tasks: usize,
    events: usize,
) -> Result<DockResult> {
    let creates = (0..tasks).map(|_| {
        let id = TaskId::generate();
        store.create_task(NewTask {
            id: id.clone(),
            user_id,
            repo: "bench/bench".to_owned(),
            prompt: "benchmark".to_owned(),
            title: "benchmark".to_owned(),
            base_branch: None,
            branch: format!("dockhand/{id}-benchmark"),
            model: "bench".to_owned(),
            image: None,
            origin_issue: None,
        })
    });
    let ids: Vec<TaskId> = futures_util::future::try_join_all(creates)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    store.flush().await?;

    let before = store.writer_stats();
    let per = events / tasks;
    let extra = events % tasks;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for (k, id) in ids.into_iter().enumerate() {
        let count = per + usize::from(k < extra);
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..count {
                store.append(&id, EventBody::ToolOutput(payload(i)))?;
                // Interleave with the other producers event by event, as
                // the baseline does (its rows go round-robin across tasks).
                tokio::task::yield_now().await;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    store.flush().await?;
    let secs = start.elapsed().as_secs_f64();
    let after = store.writer_stats();
    let committed = after.events - before.events;
    ensure!(
        committed == events as u64,
        "the writer committed {committed} events, expected {events}"
    );
    let batches = after.batches - before.batches;
    Ok(DockResult {
        rate: events as f64 / secs,
        secs,
        batches,
        avg_batch: committed as f64 / batches.max(1) as f64,
    })
}
