//! Publish-to-receive latency of durable events over WebSocket, beside a plain
//! tokio-tungstenite server.
//!
//! Dockhand side: a real coordinator in this process. Its task is created in
//! the store before the coordinator starts, and moved from `queued` to
//! `cancelled` at once, so the scheduler never sees it queued (no race, no
//! runner). The coordinator uses the `local` sandbox backend with no warm
//! pool, so that it starts no containers while we measure. Events go in
//! through `Store::append` with the send time (µs since a shared origin) at
//! the start of the `tool_output` text; each client subtracts it from its
//! receive time. So the figure covers the writer queue, group commit, the
//! hub, the WebSocket task and the socket.
//!
//! Baseline: the same clients against a tokio-tungstenite server with the same
//! WebSocket settings that fans the same message bytes out through a bounded
//! mpsc queue per connection (the hub's shape), with no store behind it.
//!
//! Each case runs in two rounds in the order Dockhand, baseline, baseline,
//! Dockhand, and pools the samples of each side, so that drift on the machine
//! falls on both sides alike. The server (coordinator or baseline) and the
//! sender run on one 2-worker runtime; the clients on a second 2-worker
//! runtime in the same process.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;
use futures_util::SinkExt;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::Report;
use crate::Row;
use crate::commit::Discard;
use crate::commit::new_task;
use crate::commit::probe;
use crate::commit::raw_commit;
use crate::commit::store_only;
use crate::eprintln_progress;
use crate::wsclient::Samples;
use crate::wsclient::Stats;
use crate::wsclient::collect;
use crate::wsclient::connect_many;
use crate::wsclient::pace;
use crate::wsclient::spawn_receivers;

/// Sizes of the run.
pub struct Opts {
    /// Subscriber counts, one case each.
    pub subscribers: Vec<usize>,
    /// Events sent per case.
    pub events: usize,
    /// Events per second.
    pub rate: u32,
}

impl Opts {
    /// Full or quick sizes.
    pub fn new(quick: bool) -> Opts {
        Opts {
            subscribers: vec![100, 1_000],
            events: if quick { 300 } else { 1_000 },
            rate: 100,
        }
    }
}

/// The settings Dockhand's events handler gives its WebSockets
/// (crates/server/src/api/events.rs), so that the baseline differs only in
/// what is behind the socket.
fn server_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
}

/// Runs the section; errors become failed rows.
pub fn run(opts: &Opts) -> Report {
    match run_inner(opts) {
        Ok(r) => r,
        Err(e) => Report {
            rows: vec![Row::failed("publish→receive latency", &e)],
            notes: Vec::new(),
        },
    }
}

fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn run_inner(opts: &Opts) -> Result<Report> {
    let server_rt = runtime("bench-server")?;
    let client_rt = runtime("bench-clients")?;
    let clients = client_rt.handle();
    let mut report = Report::default();
    let half = opts.events.div_ceil(2);
    for &n in &opts.subscribers {
        let (mut dock, mut base) = (Samples::default(), Samples::default());
        dock.add(server_rt.block_on(dockhand_case(clients, n, half, opts.rate))?);
        base.add(server_rt.block_on(baseline_case(clients, n, half, opts.rate))?);
        base.add(server_rt.block_on(baseline_case(clients, n, half, opts.rate))?);
        dock.add(server_rt.block_on(dockhand_case(clients, n, half, opts.rate))?);
        let (dock, base) = (
            Stats::of(dock.latencies, dock.expected)?,
            Stats::of(base.latencies, base.expected)?,
        );
        eprintln_progress(&format!(
            "  {n} subscribers: dockhand p50 {:.2} ms p99 {:.2} ms; baseline p50 {:.2} ms p99 {:.2} ms",
            dock.p50_ms, dock.p99_ms, base.p50_ms, base.p99_ms
        ));
        report.rows.push(Row::new(
            format!("p50 publish→receive, {n} WS subscribers"),
            format!("{:.2} ms", dock.p50_ms),
            format!("{:.2} ms", base.p50_ms),
            format!("{:.2}×", dock.p50_ms / base.p50_ms),
            "—",
            None,
        ));
        let ratio = dock.p99_ms / base.p99_ms;
        let mut target = "≤ 1.25× baseline".to_owned();
        let mut pass = ratio <= 1.25 && dock.delivered == dock.expected;
        if n == 100 {
            target.push_str(" and ≤ 10 ms");
            pass &= dock.p99_ms <= 10.0;
        }
        report.rows.push(Row::new(
            format!("p99 publish→receive, {n} WS subscribers"),
            format!("{:.2} ms", dock.p99_ms),
            format!("{:.2} ms", base.p99_ms),
            format!("{ratio:.2}×"),
            target,
            Some(pass),
        ));
        for (who, s) in [("dockhand", &dock), ("baseline", &base)] {
            report.notes.push(format!(
                "latency, {n} subscribers, {who}: {} of {} messages delivered, max {:.2} ms",
                s.delivered, s.expected, s.max_ms
            ));
        }
    }
    let commit = server_rt.block_on(store_only(opts.events.min(500), opts.rate))?;
    let raw = raw_commit(opts.events.min(500), opts.rate)?;
    report.notes.push(format!(
        "latency, store alone (Store::append → Publish::publish, no WebSocket, same rate): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        commit.p50_ms, commit.p99_ms, commit.max_ms
    ));
    report.notes.push(format!(
        "latency, plain rusqlite (insert one event and commit, same pragmas, same rate, timed on the writing thread): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        raw.p50_ms, raw.p99_ms, raw.max_ms
    ));
    report.notes.push(format!(
        "latency: {} events per side and case at {} events/s, in two rounds (Dockhand, baseline, baseline, Dockhand); \
         the coordinator runs with DOCKHAND_SANDBOX=local and no warm pool, its task pre-created and cancelled; \
         server and sender on one 2-worker tokio runtime, clients on a second 2-worker runtime in the same process \
         (they share the cores); baseline: tokio-tungstenite with Dockhand's WebSocket settings (read buffer 4 KiB, \
         write buffer 0) and a bounded mpsc queue (1024) per connection filled with try_send; clients use a 4 KiB read buffer",
        half * 2,
        opts.rate
    ));
    server_rt.shutdown_background();
    client_rt.shutdown_background();
    Ok(report)
}

/// Creates the task before the coordinator exists, already out of `queued`.
async fn precreate_task(db: &std::path::Path) -> Result<TaskId> {
    let store = Store::open(StoreOptions::new(db), Arc::new(Discard))?;
    let user = store.ensure_user("bench", UserRole::User).await?;
    let id = TaskId::generate();
    store.create_task(new_task(&id, user.id)).await?;
    let moved = store.set_status(&id, TaskStatus::Cancelled, None).await?;
    if !moved {
        bail!("could not move the benchmark task out of queued");
    }
    Ok(id)
}

async fn dockhand_case(clients: &Handle, n: usize, events: usize, rate: u32) -> Result<Samples> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-latency")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let task = precreate_task(&data_dir.join("dockhand.db")).await?;
    // The local sandbox backend and no warm pool: with Docker present the
    // coordinator would otherwise start pool containers while we measure.
    let env = |k: &str| (k == "DOCKHAND_SANDBOX").then(|| "local".to_owned());
    let mut config = dockhand_server::Config::load(&data_dir, &env)?;
    config.sandbox.pool_size = 0;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let coordinator = dockhand_server::Coordinator::start(config, Some(listener))
        .await
        .context("starting the coordinator")?;
    let token = std::fs::read_to_string(coordinator.admin_token_path())
        .context("reading the admin token")?
        .trim()
        .to_owned();
    let addr = coordinator.addr();
    let url = format!("ws://{addr}/api/v1/tasks/{task}/events?after=0");
    let conns = connect_many(clients, n, &url, Some(&token)).await?;
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let joins = spawn_receivers(clients, conns, origin, events, &stop_rx);
    let store = coordinator.services().store.clone();
    let sent = pace(events, rate, origin, |text| {
        Ok(store.append(&task, EventBody::ToolOutput(probe(text)))?)
    })
    .await;
    let samples = collect(joins, stop_tx, events).await;
    drop(store);
    coordinator.shutdown().await;
    sent?;
    samples
}

/// Per-connection bounded queues filled with `try_send`, as the hub does.
type Fanout = Arc<std::sync::Mutex<Vec<mpsc::Sender<Utf8Bytes>>>>;

async fn baseline_case(clients: &Handle, n: usize, events: usize, rate: u32) -> Result<Samples> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let fanout: Fanout = Arc::default();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let subs = fanout.clone();
    let server = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (tx, rx) = mpsc::channel(1024);
                    if let Ok(mut subs) = subs.lock() {
                        subs.push(tx);
                    }
                    tokio::spawn(serve_one(stream, rx));
                }
                _ = done_rx.recv() => return,
            }
        }
    });
    let url = format!("ws://{addr}/events");
    let conns = connect_many(clients, n, &url, None).await?;
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let joins = spawn_receivers(clients, conns, origin, events, &stop_rx);
    let mut seq = 3u64;
    let sent = pace(events, rate, origin, |text| {
        seq += 1;
        let data = serde_json::to_string(&probe(text))?;
        let ts = dockhand_store::rfc3339(dockhand_store::now_ms());
        let json = format!(r#"{{"seq":{seq},"ts":"{ts}","kind":"tool_output","data":{data}}}"#);
        let msg = Utf8Bytes::from(json);
        if let Ok(mut subs) = fanout.lock() {
            subs.retain(|s| s.try_send(msg.clone()).is_ok());
        }
        Ok(())
    })
    .await;
    let samples = collect(joins, stop_tx, events).await;
    if let Ok(mut subs) = fanout.lock() {
        subs.clear();
    }
    let _ = done_tx.send(()).await;
    let _ = server.await;
    sent?;
    samples
}

/// One baseline connection: handshake, `caught_up`, then every message.
async fn serve_one(stream: TcpStream, mut rx: mpsc::Receiver<Utf8Bytes>) -> Result<()> {
    let mut ws =
        tokio_tungstenite::accept_async_with_config(stream, Some(server_ws_config())).await?;
    ws.send(Message::Text(Utf8Bytes::from_static(
        r#"{"control":"caught_up","after":3}"#,
    )))
    .await?;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => ws.send(Message::Text(m)).await?,
                None => return Ok(()),
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
}
