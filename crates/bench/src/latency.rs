//! Publish-to-receive latency of durable events over WebSocket, beside a plain
//! tokio-tungstenite broadcast server.
//!
//! Dockhand side: a real coordinator in this process. Its task is created in
//! the store before the coordinator starts, and moved from `queued` to
//! `cancelled` at once, so the scheduler never sees it queued (no race, no
//! runner). Events go in through `Store::append` with the send time (µs since
//! a shared origin) at the start of the `tool_output` text; each client
//! subtracts it from its receive time. So the figure covers the writer queue,
//! group commit, the hub, the WebSocket task and the socket.
//!
//! Baseline: the same clients against a tokio-tungstenite server that
//! broadcasts the same message bytes through a tokio broadcast channel.
//!
//! The server (coordinator or baseline) and the sender run on one 2-worker
//! runtime; the clients on a second 2-worker runtime in the same process.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_protocol::ToolOutputEvent;
use dockhand_store::Committed;
use dockhand_store::NewTask;
use dockhand_store::Publish;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;
use futures_util::SinkExt;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::sync::broadcast;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

use crate::Report;
use crate::Row;
use crate::eprintln_progress;

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// Connects (with the bearer token, if any) and reads until `caught_up`.
pub async fn connect_caught_up(url: &str, token: Option<&str>) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains(r#""control":"caught_up""#) => return Ok(ws),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the server closed the connection before caught_up"),
        }
    }
}

/// Opens `n` connections, at most 64 handshakes at a time, each retried a few times.
pub async fn connect_many(
    handle: &Handle,
    n: usize,
    url: &str,
    token: Option<&str>,
) -> Result<Vec<Ws>> {
    let gate = Arc::new(Semaphore::new(64));
    let mut joins = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        let url = url.to_owned();
        let token = token.map(str::to_owned);
        joins.push(handle.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut last = None;
            for attempt in 0..5u64 {
                let fut = connect_caught_up(&url, token.as_deref());
                match tokio::time::timeout(Duration::from_secs(20), fut).await {
                    Ok(Ok(ws)) => return Ok(ws),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => last = Some(anyhow::anyhow!("timed out waiting for caught_up")),
                }
                tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
        }));
    }
    let mut out = Vec::with_capacity(n);
    for j in joins {
        out.push(j.await?.context("connecting a WebSocket subscriber")?);
    }
    Ok(out)
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

struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    delivered: usize,
    expected: usize,
}

fn run_inner(opts: &Opts) -> Result<Report> {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_SW")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_CW")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .thread_name("bench-clients")
        .enable_all()
        .build()?;
    let mut report = Report::default();
    for &n in &opts.subscribers {
        let dock = server_rt.block_on(dockhand_case(client_rt.handle(), n, opts))?;
        let base = server_rt.block_on(baseline_case(
            client_rt.handle(),
            n,
            opts,
            std::env::var("BENCH_MPSC").is_ok_and(|v| v == "1"),
        ))?;
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
        let mut pass = ratio <= 1.25;
        if n == 100 {
            target.push_str(" and ≤ 10 ms");
            pass &= dock.p99_ms <= 10.0;
        }
        pass &= dock.delivered == dock.expected;
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
    report.notes.push(format!(
        "latency: {} events per case at {} events/s; server and sender on one 2-worker tokio runtime, \
         clients on a second 2-worker runtime in the same process (both compete for the same cores); \
         the baseline is tokio-tungstenite with default settings and a tokio broadcast channel (capacity 1024)",
        opts.events, opts.rate
    ));
    server_rt.shutdown_background();
    client_rt.shutdown_background();
    Ok(report)
}

/// The text of an event sent at `sent_us`: the marker first, padded to ~100 bytes.
fn marked_text(sent_us: u64) -> String {
    let mut text = format!("t={sent_us} ");
    while text.len() < 100 {
        text.push_str("latency probe ");
    }
    text.truncate(100);
    text
}

/// The send time embedded by [`marked_text`].
fn parse_sent(msg: &str) -> Option<u64> {
    let at = msg.find(r#""text":"t="#)? + r#""text":"t="#.len();
    let digits = &msg[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Spawns one receiving task per connection; each returns its latencies in µs.
fn spawn_receivers(
    handle: &Handle,
    conns: Vec<Ws>,
    origin: Instant,
    expect: usize,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Vec<u32>>> {
    conns
        .into_iter()
        .map(|mut ws| {
            let mut stop = stop.clone();
            handle.spawn(async move {
                let mut samples = Vec::with_capacity(expect);
                while samples.len() < expect {
                    let msg = tokio::select! {
                        m = ws.next() => m,
                        _ = stop.changed() => break,
                    };
                    match msg {
                        Some(Ok(Message::Text(t))) => {
                            if let Some(sent) = parse_sent(&t) {
                                let now = origin.elapsed().as_micros() as u64;
                                samples.push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                            }
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    }
                }
                let _ = ws.close(None).await;
                samples
            })
        })
        .collect()
}

/// Sends `opts.events` at `opts.rate`, calling `send(text)` with the marked text.
async fn pace(
    opts: &Opts,
    origin: Instant,
    mut send: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / opts.rate.max(1));
    for _ in 0..opts.events {
        tick.tick().await;
        send(marked_text(origin.elapsed().as_micros() as u64))?;
    }
    Ok(())
}

/// Waits (up to 15 s) for the receivers, then stops stragglers and summarises.
async fn collect(
    joins: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    stop: watch::Sender<bool>,
    expect: usize,
) -> Result<Stats> {
    let n = joins.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut all: Vec<u32> = Vec::with_capacity(n * expect);
    let mut stragglers = Vec::new();
    for mut j in joins {
        match tokio::time::timeout_at(deadline, &mut j).await {
            Ok(samples) => all.extend(samples?),
            Err(_) => stragglers.push(j),
        }
    }
    // Stragglers stop at once and hand back what they received.
    let _ = stop.send(true);
    for j in stragglers {
        all.extend(j.await?);
    }
    if all.is_empty() {
        bail!("no subscriber received anything");
    }
    all.sort_unstable();
    let pick = |p: usize| all[(all.len() * p / 100).min(all.len() - 1)] as f64 / 1000.0;
    Ok(Stats {
        p50_ms: pick(50),
        p99_ms: pick(99),
        max_ms: all[all.len() - 1] as f64 / 1000.0,
        delivered: all.len(),
        expected: n * expect,
    })
}

struct Discard;

impl Publish for Discard {
    fn publish(&self, _batch: Vec<Committed>) {}
}

/// Creates the task before the coordinator exists, already out of `queued`.
async fn precreate_task(db: &std::path::Path) -> Result<TaskId> {
    let store = Store::open(StoreOptions::new(db), Arc::new(Discard))?;
    let user = store.ensure_user("bench", UserRole::User).await?;
    let id = TaskId::generate();
    store
        .create_task(NewTask {
            id: id.clone(),
            user_id: user.id,
            repo: "bench/bench".to_owned(),
            prompt: "latency benchmark".to_owned(),
            title: "latency benchmark".to_owned(),
            base_branch: None,
            branch: format!("dockhand/{id}-latency"),
            model: "bench".to_owned(),
        })
        .await?;
    let moved = store
        .set_status(&id, &[TaskStatus::Queued], TaskStatus::Cancelled, None)
        .await?;
    if !moved {
        bail!("could not move the benchmark task out of queued");
    }
    Ok(id)
}

async fn dockhand_case(clients: &Handle, n: usize, opts: &Opts) -> Result<Stats> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-latency")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let task = precreate_task(&data_dir.join("dockhand.db")).await?;
    let config = dockhand_server::Config::load(&data_dir, &|_| None)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let coordinator = dockhand_server::Coordinator::start(config, Some(listener))
        .await
        .context("starting the coordinator")?;
    let token = std::fs::read_to_string(coordinator.admin_token_path())
        .context("reading the admin token")?
        .trim()
        .to_owned();
    let url = format!(
        "ws://{}/api/v1/tasks/{task}/events?after=0",
        coordinator.addr()
    );
    let conns = connect_many(clients, n, &url, Some(&token)).await?;
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let joins = spawn_receivers(clients, conns, origin, opts.events, &stop_rx);
    let store = coordinator.state().store.clone();
    pace(opts, origin, |text| {
        let body = EventBody::ToolOutput(ToolOutputEvent {
            id: "toolu_bench".to_owned(),
            text,
        });
        Ok(store.append(&task, body)?)
    })
    .await?;
    let stats = collect(joins, stop_tx, opts.events).await;
    drop(store);
    coordinator.shutdown().await;
    stats
}

/// How the baseline server hands a message to its connections.
#[derive(Clone)]
enum Fanout {
    /// One tokio broadcast channel.
    Broadcast(broadcast::Sender<Utf8Bytes>),
    /// A bounded mpsc queue per connection, filled with `try_send` (the hub's shape).
    Mpsc(Arc<std::sync::Mutex<Vec<mpsc::Sender<Utf8Bytes>>>>),
}

enum FanoutRx {
    Broadcast(broadcast::Receiver<Utf8Bytes>),
    Mpsc(mpsc::Receiver<Utf8Bytes>),
}

impl Fanout {
    fn new(mpsc_mode: bool) -> Fanout {
        if mpsc_mode {
            Fanout::Mpsc(Arc::default())
        } else {
            Fanout::Broadcast(broadcast::channel(1024).0)
        }
    }

    fn subscribe(&self) -> FanoutRx {
        match self {
            Fanout::Broadcast(tx) => FanoutRx::Broadcast(tx.subscribe()),
            Fanout::Mpsc(subs) => {
                let (tx, rx) = mpsc::channel(1024);
                if let Ok(mut subs) = subs.lock() {
                    subs.push(tx);
                }
                FanoutRx::Mpsc(rx)
            }
        }
    }

    fn send(&self, msg: Utf8Bytes) {
        match self {
            Fanout::Broadcast(tx) => {
                let _ = tx.send(msg);
            }
            Fanout::Mpsc(subs) => {
                if let Ok(mut subs) = subs.lock() {
                    subs.retain(|s| s.try_send(msg.clone()).is_ok());
                }
            }
        }
    }
}

impl FanoutRx {
    /// The next message; `None` when the server is done.
    async fn recv(&mut self) -> Option<Utf8Bytes> {
        match self {
            FanoutRx::Broadcast(rx) => loop {
                match rx.recv().await {
                    Ok(m) => return Some(m),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            FanoutRx::Mpsc(rx) => rx.recv().await,
        }
    }
}

async fn baseline_case(clients: &Handle, n: usize, opts: &Opts, mpsc_mode: bool) -> Result<Stats> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let fanout = Fanout::new(mpsc_mode);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let accept_fanout = fanout.clone();
    let server = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(serve_one(stream, accept_fanout.subscribe()));
                }
                _ = done_rx.recv() => return,
            }
        }
    });
    let url = format!("ws://{addr}/events");
    let conns = connect_many(clients, n, &url, None).await?;
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let joins = spawn_receivers(clients, conns, origin, opts.events, &stop_rx);
    let mut seq = 3u64;
    pace(opts, origin, |text| {
        seq += 1;
        let data = serde_json::to_string(&ToolOutputEvent {
            id: "toolu_bench".to_owned(),
            text,
        })?;
        let ts = dockhand_store::rfc3339(dockhand_store::now_ms());
        let json = format!(r#"{{"seq":{seq},"ts":"{ts}","kind":"tool_output","data":{data}}}"#);
        fanout.send(Utf8Bytes::from(json));
        Ok(())
    })
    .await?;
    let stats = collect(joins, stop_tx, opts.events).await;
    let _ = done_tx.send(()).await;
    let _ = server.await;
    stats
}

/// One baseline connection: handshake, `caught_up`, then every fanned-out message.
async fn serve_one(stream: TcpStream, mut rx: FanoutRx) -> Result<()> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
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
