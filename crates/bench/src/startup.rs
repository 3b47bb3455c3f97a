//! Task start-up overhead on the docker backend: from `POST /api/v1/tasks` until
//! the model receives its first request, for a cold container, a warm-pool
//! container and an environment-cache image, beside the raw `docker run --rm
//! IMAGE true`. Also the time from a cancel until the running command is gone.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::CreateTaskParams;
use dockhand_server::Config;
use dockhand_server::Coordinator;
use dockhand_server::config::Backend;
use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde::Serialize;
use serde_json::Value;

use crate::Report;
use crate::Row;

pub struct Opts {
    samples: usize,
}

impl Opts {
    pub fn new(quick: bool) -> Opts {
        Opts {
            samples: if quick { 5 } else { 15 },
        }
    }
}

pub fn run(opts: &Opts) -> Report {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")
        .and_then(|rt| rt.block_on(run_inner(opts)));
    match result {
        Ok(r) => r,
        Err(e) => Report {
            rows: vec![Row::failed("task start-up (docker)", &e)],
            notes: Vec::new(),
        },
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[(v.len() * 9 / 10).min(v.len() - 1)]
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A repository of 1,000 small files in a few directories.
fn make_repo(dir: &Path, env: Option<&str>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    git(dir, &["init", "-q", "-b", "main"])?;
    for i in 0..1000 {
        let sub = dir.join(format!("src/m{}", i % 20));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(
            sub.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(20),
        )?;
    }
    if let Some(env) = env {
        std::fs::create_dir_all(dir.join(".dockhand"))?;
        std::fs::write(dir.join(".dockhand/environment.toml"), env)?;
    }
    git(dir, &["add", "-A"])?;
    git(
        dir,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "-m",
            "init",
        ],
    )
}

/// `docker run --rm IMAGE true`, timed.
fn docker_run_baseline(image: &str, n: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", image, "true"])
            .status()?;
        if !status.success() {
            bail!("docker run --rm {image} true failed");
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

struct Coord {
    coord: Coordinator,
    token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Coord {
    async fn start(fake: &FakeAnthropic, pool: usize) -> Result<Coord> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let url = fake.base_url();
        let env = move |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some("bench".to_owned()),
            "ANTHROPIC_BASE_URL" => Some(url.clone()),
            _ => None,
        };
        let mut config = Config::load(&data, &env)?;
        config.sandbox.backend = Some(Backend::Docker);
        config.sandbox.pool_size = pool;
        config.sandbox.idle_secs = 1;
        config.scheduler.max_concurrent = 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let coord = Coordinator::start(config, Some(listener)).await?;
        let token = std::fs::read_to_string(data.join("admin-token"))?
            .trim()
            .to_owned();
        Ok(Coord {
            coord,
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// Stops the coordinator and removes every container it made.
    async fn stop(self) {
        let id = std::fs::read_to_string(self._dir.path().join("data/coordinator-id"))
            .unwrap_or_default();
        self.coord.shutdown().await;
        let filter = format!("label=dockhand.coordinator={}", id.trim());
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() && !id.trim().is_empty() {
                let _ = Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&CreateTaskParams>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.coord.base_url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }

    async fn metric(&self, name: &str) -> Result<String> {
        let text = self
            .http
            .get(format!("{}/metrics", self.coord.base_url()))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or("")
            .to_owned())
    }

    /// Polls the task until it ends (benchmarks may poll; tests use the stream).
    async fn wait_done(&self, id: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = self
                .call(reqwest::Method::GET, &format!("/api/v1/tasks/{id}"), None)
                .await?;
            if ["succeeded", "failed", "cancelled"].contains(&t["status"].as_str().unwrap_or("")) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("task {id} did not end");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn phases(&self, id: &str) -> Result<Vec<(String, f64)>> {
        let ev = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{id}/events"),
                None,
            )
            .await?;
        Ok(ev["events"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|e| e["kind"] == "phase")
            .map(|e| {
                (
                    e["data"]["phase"].as_str().unwrap_or("").to_owned(),
                    e["data"]["duration_ms"].as_f64().unwrap_or(0.0),
                )
            })
            .collect())
    }
}

/// The body of `POST /api/v1/tasks` for a local repository.
fn task_params(repo: &Path, prompt: &str) -> CreateTaskParams {
    CreateTaskParams {
        repo: repo.display().to_string(),
        prompt: prompt.to_owned(),
        base_branch: None,
        model: None,
        image: None,
    }
}

/// The bash tool's input.
#[derive(Serialize)]
struct BashInput<'a> {
    command: &'a str,
}

struct Case {
    totals: Vec<f64>,
    phases: BTreeMap<String, Vec<f64>>,
}

/// Runs one warm-up task, then `n` measured ones, on `repo`.
async fn measure(n: usize, pool: usize, repo: &Path) -> Result<Case> {
    // Each task takes the next turn, whatever its prompt.
    let mut scenario = Scenario::new().global();
    for _ in 0..=n {
        scenario = scenario.turn(Turn::text("Done."));
    }
    let fake = FakeAnthropic::start(scenario).await;
    let c = Coord::start(&fake, pool).await?;
    let mut case = Case {
        totals: Vec::new(),
        phases: BTreeMap::new(),
    };
    for i in 0..=n {
        if pool > 0 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.metric("dockhand_pool_ready").await? != pool.to_string() {
                if Instant::now() > deadline {
                    bail!("the warm pool did not fill");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let t = Instant::now();
        let task = c
            .call(
                reqwest::Method::POST,
                "/api/v1/tasks",
                Some(&task_params(repo, "start")),
            )
            .await?;
        fake.wait_for_requests(i + 1).await;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        let id = task["id"].as_str().unwrap_or_default().to_owned();
        let done = c.wait_done(&id).await?;
        if done["status"] != "succeeded" {
            bail!("task failed: {}", done["error"]);
        }
        // The first task clones into a cold page cache and may build the environment.
        if i > 0 {
            case.totals.push(took);
            for (name, ms) in c.phases(&id).await? {
                case.phases.entry(name).or_default().push(ms);
            }
        }
    }
    c.stop().await;
    Ok(case)
}

/// From `POST .../cancel` until the task is cancelled, which the runner records
/// only once the command's processes are gone.
async fn cancel_latency(n: usize) -> Result<Vec<f64>> {
    let sleep = serde_json::to_value(BashInput {
        command: "echo started; sleep 600",
    })?;
    let mut scenario = Scenario::new().global();
    for _ in 0..n {
        scenario = scenario.turn(Turn::tool("bash", sleep.clone()));
    }
    let fake = FakeAnthropic::start(scenario).await;
    let c = Coord::start(&fake, 0).await?;
    let dir = tempfile::tempdir()?;
    make_repo(dir.path(), None)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let task = c
            .call(
                reqwest::Method::POST,
                "/api/v1/tasks",
                Some(&task_params(dir.path(), "sleep")),
            )
            .await?;
        let id = task["id"].as_str().unwrap_or_default().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ev = c
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/tasks/{id}/events"),
                    None,
                )
                .await?;
            let started = ev["events"].as_array().is_some_and(|a| {
                a.iter().any(|e| {
                    e["kind"] == "tool_output"
                        && e["data"]["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("started"))
                })
            });
            if started {
                break;
            }
            if Instant::now() > deadline {
                let t = c
                    .call(reqwest::Method::GET, &format!("/api/v1/tasks/{id}"), None)
                    .await?;
                bail!(
                    "the command did not start (task {}: {})",
                    t["status"],
                    t["error"]
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = Instant::now();
        c.call(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            None,
        )
        .await?;
        c.wait_done(&id).await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    c.stop().await;
    Ok(out)
}

async fn run_inner(opts: &Opts) -> Result<Report> {
    let image = dockhand_sandbox::docker::image::default_image();
    let found = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()?;
    if !found.status.success() {
        bail!("the sandbox image {image} is missing: run dockhand image build");
    }
    let n = opts.samples;
    crate::eprintln_progress(&format!("  baseline: docker run --rm {image} true × {n}"));
    let baseline = median(docker_run_baseline(&image, n)?);
    let dir = tempfile::tempdir()?;
    let plain = dir.path().join("plain");
    make_repo(&plain, None)?;
    let token = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let cached = dir.path().join("cached");
    let setup = format!("echo bench-{token} > /opt/bench");
    make_repo(&cached, Some(&format!("setup = \"{setup}\"\n")))?;

    let mut report = Report::default();
    let mut clone_ms = 0.0;
    for (name, pool, repo) in [
        ("cold container", 0, &plain),
        ("warm-pool container", 2, &plain),
        ("environment cache", 0, &cached),
    ] {
        crate::eprintln_progress(&format!("  {name}: {n} tasks"));
        let case = measure(n, pool, repo).await?;
        let p50 = median(case.totals.clone());
        let breakdown: Vec<String> = ["clone", "setup", "container", "prepare", "ready"]
            .iter()
            .filter_map(|p| {
                case.phases
                    .get(*p)
                    .map(|v| format!("{p} {:.0} ms", median(v.clone())))
            })
            .collect();
        report.notes.push(format!(
            "{name}: p50 {p50:.0} ms, p90 {:.0} ms; phases (p50): {}",
            p90(case.totals.clone()),
            breakdown.join(", ")
        ));
        let ratio = format!("{:.2}× docker run", p50 / baseline);
        let row = match pool {
            0 if name == "cold container" => {
                clone_ms = case
                    .phases
                    .get("clone")
                    .map(|v| median(v.clone()))
                    .unwrap_or(0.0);
                let target = 1.5 * baseline + clone_ms;
                Row::new(
                    "task start-up p50, cold container (1,000-file repo)",
                    format!("{p50:.0} ms"),
                    format!("{baseline:.0} ms"),
                    ratio,
                    format!("≤ 1.5 × baseline + clone ({target:.0} ms)"),
                    Some(p50 <= target),
                )
            }
            0 => Row::new(
                "task start-up p50, environment-cache image",
                format!("{p50:.0} ms"),
                format!("{baseline:.0} ms"),
                ratio,
                format!(
                    "≤ 1.5 × baseline + clone ({:.0} ms)",
                    1.5 * baseline + clone_ms
                ),
                Some(p50 <= 1.5 * baseline + clone_ms),
            ),
            _ => Row::new(
                "task start-up p50, warm-pool container",
                format!("{p50:.0} ms"),
                format!("{baseline:.0} ms"),
                ratio,
                "≤ 150 ms",
                Some(p50 <= 150.0),
            ),
        };
        report.rows.push(row);
    }
    // What this disk charges for a checkout: creating 1,000 small files.
    let scratch = tempfile::tempdir()?;
    let t = Instant::now();
    for i in 0..1000 {
        std::fs::write(scratch.path().join(format!("f{i}")), b"x")?;
    }
    report.notes.push(format!(
        "creating 1,000 small files in a temp dir on this machine's disk takes {:.0} ms (a checkout of the 1,000-file repository pays this)",
        t.elapsed().as_secs_f64() * 1000.0
    ));
    crate::eprintln_progress("  cancel: sleep 600 in a container");
    match cancel_latency(n.min(5)).await {
        Ok(cancels) => {
            let c50 = median(cancels.clone());
            report.rows.push(Row::new(
                "cancel → running command gone (p50)",
                format!("{c50:.0} ms"),
                "—",
                "—",
                "≤ 2,000 ms",
                Some(c50 <= 2000.0),
            ));
        }
        Err(e) => report
            .rows
            .push(Row::failed("cancel → running command gone", &e)),
    }
    // Remove the environment image this run built (and only that one).
    let base = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", &image])
        .output()?;
    let base_id = String::from_utf8_lossy(&base.stdout).trim().to_owned();
    // Built for the admin (user 1, the only user of the bench's fresh coordinators).
    let repo = cached.to_string_lossy();
    let built = dockhand_sandbox::docker::env_cache::env_image_tag(&base_id, &setup, "1", &repo);
    let _ = Command::new("docker").args(["rmi", "-f", &built]).output();
    Ok(report)
}
