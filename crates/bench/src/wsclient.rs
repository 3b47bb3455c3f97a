//! The measuring clients: WebSocket connections that wait for `caught_up`, then
//! record how long each marked message took; and the pacing sender's helpers.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::sync::watch;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Clients read small messages: a small read buffer, because tungstenite
/// zero-fills the whole read buffer (128 KiB by default) before every read.
pub fn client_ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
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
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(req, Some(client_ws_config()), false).await?;
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

/// Percentiles of a set of latencies, in ms.
pub struct Stats {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Samples taken.
    pub delivered: usize,
    /// Samples expected.
    pub expected: usize,
}

impl Stats {
    /// Summarises latencies given in µs.
    pub fn of(mut all: Vec<u32>, expected: usize) -> Result<Stats> {
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
            expected,
        })
    }
}

/// Latencies in µs, and how many messages were expected.
#[derive(Default)]
pub struct Samples {
    /// Latencies in µs.
    pub latencies: Vec<u32>,
    /// Messages expected.
    pub expected: usize,
}

impl Samples {
    /// Pools `other` into this.
    pub fn add(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.expected += other.expected;
    }
}

/// The text of an event sent at `sent_us`: the marker first, padded to ~100 bytes.
pub fn marked_text(sent_us: u64) -> String {
    let mut text = format!("t={sent_us} ");
    while text.len() < 100 {
        text.push_str("latency probe ");
    }
    text.truncate(100);
    text
}

/// The send time embedded by [`marked_text`].
pub fn parse_sent(msg: &str) -> Option<u64> {
    let at = msg.find(r#""text":"t="#)? + r#""text":"t="#.len();
    let digits = &msg[at..];
    let end = digits.find(|c: char| !c.is_ascii_digit())?;
    digits[..end].parse().ok()
}

/// Spawns one receiving task per connection; each returns its latencies in µs.
pub fn spawn_receivers(
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

/// Sends `events` at `rate` per second, calling `send(text)` with the marked text.
pub async fn pace(
    events: usize,
    rate: u32,
    origin: Instant,
    mut send: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    for _ in 0..events {
        tick.tick().await;
        send(marked_text(origin.elapsed().as_micros() as u64))?;
    }
    Ok(())
}

/// Waits (up to 15 s) for the receivers, then stops stragglers and gathers the samples.
pub async fn collect(
    joins: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    stop: watch::Sender<bool>,
    expect: usize,
) -> Result<Samples> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut out = Samples {
        latencies: Vec::with_capacity(joins.len() * expect),
        expected: joins.len() * expect,
    };
    let mut stragglers = Vec::new();
    for mut j in joins {
        match tokio::time::timeout_at(deadline, &mut j).await {
            Ok(samples) => out.latencies.extend(samples?),
            Err(_) => stragglers.push(j),
        }
    }
    // Stragglers stop at once and hand back what they received.
    let _ = stop.send(true);
    for j in stragglers {
        out.latencies.extend(j.await?);
    }
    Ok(out)
}
