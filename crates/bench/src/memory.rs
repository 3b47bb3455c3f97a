//! Server memory per idle WebSocket subscriber, on a separate `dockhand serve`
//! process so that the figure is the server's alone.
//!
//! The task is created through the API on a local git repository; with no
//! reachable model it fails within seconds, and its events stay subscribable.
//! The benchmark waits for it to finish, warms the WebSocket path up with a few
//! connections, reads VmRSS, opens the subscribers, waits until each one got
//! `caught_up`, lets the server settle, and reads VmRSS again.

use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::CreateTaskParams;
use serde_json::Value;

use crate::Report;
use crate::Row;
use crate::eprintln_progress;
use crate::wsclient::connect_many;

/// Settings of the run.
pub struct Opts {
    /// Idle subscribers opened.
    pub subscribers: usize,
    /// The `dockhand` binary, if given.
    pub dockhand: Option<PathBuf>,
    /// How long to wait for the task to finish.
    pub task_wait: Duration,
}

impl Opts {
    /// Full or quick settings.
    pub fn new(quick: bool, dockhand: Option<PathBuf>) -> Opts {
        Opts {
            subscribers: 1_000,
            dockhand,
            task_wait: Duration::from_secs(if quick { 20 } else { 45 }),
        }
    }
}

/// Runs the section; errors become failed rows.
pub fn run(opts: &Opts) -> Report {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")
        .and_then(|rt| {
            let out = rt.block_on(run_inner(opts));
            rt.shutdown_background();
            out
        });
    match result {
        Ok(r) => r,
        Err(e) => Report {
            rows: vec![Row::failed("server RSS per idle WS subscriber", &e)],
            notes: Vec::new(),
        },
    }
}

/// The `dockhand` binary: `--dockhand`, else `target/release/dockhand`, built
/// (or brought up to date) with cargo.
fn locate_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        if !p.is_file() {
            bail!("--dockhand {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    // target/<profile>/dockhand-bench → target/release/dockhand
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let bin = target.join("release").join("dockhand");
    // Always ask cargo, so that the figure is of the current source (a no-op when fresh).
    eprintln_progress("  cargo build --release -p dockhand-cli");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "dockhand-cli"])
        .current_dir(workspace)
        .status();
    match status {
        Ok(s) if s.success() && bin.is_file() => Ok(bin),
        _ if bin.is_file() => {
            eprintln_progress("  the build failed; using the existing binary");
            Ok(bin)
        }
        _ => bail!(
            "cargo build --release -p dockhand-cli did not produce {}; pass --dockhand PATH",
            bin.display()
        ),
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A small local repository for the task.
fn make_repo(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    git(dir, &["init", "-q", "-b", "main"])?;
    std::fs::write(dir.join("README.md"), "# bench\n")?;
    git(dir, &["add", "."])?;
    git(dir, &["commit", "-q", "-m", "initial"])?;
    Ok(())
}

/// VmRSS of `pid`, in KB.
fn vm_rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kb = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

async fn run_inner(opts: &Opts) -> Result<Report> {
    let bin = locate_binary(opts.dockhand.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-memory")
        .tempdir()?;
    let data = dir.path().join("data");
    let repo = dir.path().join("repo");
    make_repo(&repo)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(&bin)
        .args(["serve", "--listen", &addr])
        .env("DOCKHAND_DATA_DIR", &data)
        .env("ANTHROPIC_API_KEY", "x")
        // No containers: the Docker backend would start a warm pool and a task
        // container, which would outlive this benchmark (it kills the server).
        .env("DOCKHAND_SANDBOX", "local")
        // A closed local port: the agent's model calls fail fast, without network.
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("the server has no pid")?;
    let result = measure(opts, &addr, &data, &repo, pid, &mut child).await;
    let _ = child.kill().await;
    result.map_err(|e| e.context(format!("server log:\n{}", log_tail(&log_path))))
}

async fn measure(
    opts: &Opts,
    addr: &str,
    data: &Path,
    repo: &Path,
    pid: u32,
    child: &mut tokio::process::Child,
) -> Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("http://{addr}");
    // Wait for the server to answer.
    let mut up = false;
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            bail!("dockhand serve exited early: {status}");
        }
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        bail!("dockhand serve did not answer /healthz within 30 s");
    }
    let token = std::fs::read_to_string(data.join("admin-token"))
        .context("reading the admin token")?
        .trim()
        .to_owned();
    let repo = repo.canonicalize()?;
    let created: Value = http
        .post(format!("{base}/api/v1/tasks"))
        .bearer_auth(&token)
        .json(&CreateTaskParams {
            repo: repo.display().to_string(),
            prompt: "x".to_owned(),
            base_branch: None,
            model: None,
            image: None,
        })
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .context("the created task has no id")?
        .to_owned();

    // Let the task run its course, so its runner's memory is not counted.
    let waited = std::time::Instant::now();
    let mut task = Value::Null;
    while waited.elapsed() < opts.task_wait {
        task = http
            .get(format!("{base}/api/v1/tasks/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let status = task["status"].as_str().unwrap_or("");
        if matches!(status, "succeeded" | "failed" | "cancelled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = task["status"].as_str().unwrap_or("unknown").to_owned();
    let error = task["error"].as_str().unwrap_or("").to_owned();

    let url = format!("ws://{addr}/api/v1/tasks/{id}/events?after=0");
    let handle = tokio::runtime::Handle::current();
    // Warm up the WebSocket path (first-use allocations, buffers) and let it settle.
    drop(connect_many(&handle, 32, &url, Some(&token)).await?);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let before = vm_rss_kb(pid)?;
    let conns = connect_many(&handle, opts.subscribers, &url, Some(&token)).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = vm_rss_kb(pid)?;
    let subscribers = metric(&http, &base, "dockhand_ws_subscribers").await;
    drop(conns);

    let per_kb = after.saturating_sub(before) as f64 / opts.subscribers as f64;
    eprintln_progress(&format!(
        "  VmRSS {before} KB → {after} KB with {} subscribers: {per_kb:.1} KB each",
        opts.subscribers
    ));
    let mut report = Report::default();
    report.rows.push(Row::new(
        format!(
            "server RSS per idle WS subscriber ({} subscribers)",
            crate::thousands(opts.subscribers as f64)
        ),
        format!("{per_kb:.1} KB"),
        "—",
        "—",
        "≤ 16 KB",
        Some(per_kb <= 16.0),
    ));
    report.notes.push(format!(
        "memory: `dockhand serve` as a separate process; VmRSS {before} KB before, {after} KB with {} idle subscribers \
         (hub reports {}); the task ended {status}{}",
        opts.subscribers,
        subscribers.map_or_else(|| "?".to_owned(), |s| s.to_string()),
        if error.is_empty() {
            String::new()
        } else {
            format!(" ({})", crate::clip(&error, 120))
        }
    ));
    Ok(report)
}

/// A gauge from `/metrics`, if present.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}
