//! Seed and publish time of a small repository (50 files, 5 commits), on the
//! docker backend and on local, beside the raw way: a host `git clone
//! --no-local` into the directory bind-mounted as the container's /workspace,
//! and for publish a host commit, `git bundle create` and `git fetch` of it
//! into the source repository.
//!
//! The container is started before the clock starts, on both sides (one for
//! the product's seed, one whose bind mount receives the raw clone), so the
//! comparison is of the workspace transfer alone. Each run starts from an
//! emptied workspace; runs alternate between the two sides.
//!
//! The product's steps are the ones the server takes: `seed_bundle` from
//! dockhand-forge, then the seed script with the bundle on its stdin (provision/seed.rs);
//! publish runs the commit script (publish/commit.rs), `Sandbox::download`, a
//! private copy and `dockhand_forge::fetch_bundle` (publish/mod.rs). The scripts
//! are the server's own (`dockhand_server::sandbox_scripts`); the private copy
//! is reproduced here.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::TaskId;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxSpec;
use dockhand_sandbox::WORKSPACE;
use dockhand_server::Config;
use dockhand_server::config::Backend;
use dockhand_server::sandbox_scripts;

use crate::Report;
use crate::Row;
use crate::checkpoint::backend_name;
use crate::checkpoint::each_backend;
use crate::checkpoint::git;
use crate::checkpoint::git_out;
use crate::checkpoint::median;
use crate::checkpoint::provider;
use crate::checkpoint::sh;

pub struct Opts {
    samples: usize,
}

impl Opts {
    pub fn new(quick: bool) -> Opts {
        Opts {
            samples: if quick { 5 } else { 10 },
        }
    }
}

const FILES: usize = 50;
const COMMITS: usize = 5;

/// The task's change, the same on both sides: 3 files edited, 1 added.
const CHANGE: &str = "set -eu
echo changed >> src/f0.txt
echo changed >> src/f1.txt
echo changed >> src/f2.txt
echo new > src/new.txt
";

pub fn run(opts: &Opts) -> Report {
    each_backend([Backend::Docker, Backend::Local], "seed + publish", |b| {
        run_backend(opts, b)
    })
}

/// Per-run times in ms: seed, publish.
#[derive(Default)]
struct Times {
    seed: Vec<f64>,
    publish: Vec<f64>,
    total: Vec<f64>,
}

impl Times {
    fn push(&mut self, seed: f64, publish: f64) {
        self.seed.push(seed);
        self.publish.push(publish);
        self.total.push(seed + publish);
    }
}

async fn run_backend(opts: &Opts, backend: Backend) -> Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-seed")
        .tempdir()?;
    let mut config = Config::load(&dir.path().join("data"), &|_| None)?;
    config.sandbox.pool_size = 0;
    let provider = provider(&config, backend).await?;
    let mut sandboxes: Vec<Arc<dyn Sandbox>> = Vec::new();
    let mut result = async {
        let make = |name: &str| {
            let workspace = dir.path().join(name);
            let provider = provider.clone();
            let limits = config.sandbox.limits();
            async move {
                dockhand_sandbox::make_workspace(&workspace, provider.workspace_owner())?;
                let sandbox = provider
                    .create(SandboxSpec {
                        task_id: TaskId::generate().to_string(),
                        workspace: workspace.clone(),
                        network: NetworkLevel::None,
                        limits,
                        env: Vec::new(),
                        image: None,
                    })
                    .await?;
                anyhow::Ok((workspace, sandbox))
            }
        };
        let (_, product) = make("product").await?;
        sandboxes.push(product.clone());
        // On local there is no container: the raw clone goes into a plain directory.
        let raw = match backend {
            Backend::Docker => {
                let (ws, sandbox) = make("raw").await?;
                sandboxes.push(sandbox.clone());
                (ws, Some(sandbox))
            }
            Backend::Local => {
                let ws = dir.path().join("raw");
                std::fs::create_dir_all(&ws)?;
                (ws, None)
            }
        };
        measure(opts, backend, &config, dir.path(), product, raw).await
    }
    .await;
    for sandbox in sandboxes {
        if let Err(e) = sandbox.destroy().await {
            crate::eprintln_progress(&format!("removing a bench sandbox: {e}"));
        }
    }
    if let Ok(report) = &mut result {
        report.notes.push(format!(
            "seed ({}): the product's seed is `seed_bundle` + the seed script (the bundle on its stdin), \
             its publish the commit script + `Sandbox::download` + `fetch_bundle` \
             (fsckObjects); the baseline's seed is a host `git clone --no-local`{}, its \
             publish a host `git add -A` + `git commit` + `git bundle create` + `git fetch` \
             into the source repository. {FILES} files, {COMMITS} commits; the change is 3 \
             files edited and 1 added; medians of {} runs, the two sides alternating",
            backend_name(backend),
            match backend {
                Backend::Docker =>
                    " into a directory already bind-mounted into a running container",
                Backend::Local => " into a host directory",
            },
            opts.samples
        ));
    }
    result
}

/// The small source repository on the host.
fn make_source(dir: &Path) -> Result<std::path::PathBuf> {
    let src = dir.join("source");
    std::fs::create_dir_all(src.join("src"))?;
    git(&src, &["init", "-q", "-b", "main"])?;
    for c in 0..COMMITS {
        for i in 0..FILES {
            if c == 0 || i % COMMITS == c {
                let body = format!("file {i}, commit {c}\n").repeat(40);
                std::fs::write(src.join("src").join(format!("f{i}.txt")), body)?;
            }
        }
        git(&src, &["add", "-A"])?;
        let msg = format!("commit {c}");
        git(
            &src,
            &[
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-q",
                "-m",
                &msg,
            ],
        )?;
    }
    Ok(src)
}

async fn measure(
    opts: &Opts,
    backend: Backend,
    config: &Config,
    dir: &Path,
    product: Arc<dyn Sandbox>,
    raw: (std::path::PathBuf, Option<Arc<dyn Sandbox>>),
) -> Result<Report> {
    let name = backend_name(backend);
    let src = make_source(dir)?;
    let bundles = dir.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    // What any exec costs here: the product's seed takes 1 (the script, with
    // the bundle on its stdin), its publish 2 (commit script, download).
    let mut floor = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        sh(product.as_ref(), "true").await?;
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let floor = median(floor);
    let mut mine = Times::default();
    let mut theirs = Times::default();
    let mut steps: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    for run in 0..opts.samples {
        let split = product_run(config, &product, &src, &bundles, run).await?;
        for (all, ms) in steps.iter_mut().zip(split) {
            all.push(ms);
        }
        let (seed, publish) = (split[..2].iter().sum(), split[2..].iter().sum());
        mine.push(seed, publish);
        let (seed, publish) = raw_run(&raw.0, raw.1.as_deref(), &src, run).await?;
        theirs.push(seed, publish);
    }
    let start = match backend {
        Backend::Docker => "container start excluded on both sides",
        Backend::Local => "no container",
    };
    let what = format!("{FILES}-file repo, {name}, {start}");
    let mut report = Report::default();
    report.notes.push(format!(
        "seed ({name}): one exec of `true` in the sandbox takes {floor:.0} ms (p50); the \
         product's seed runs 1 exec (the seed script, the bundle on its stdin) and its publish 2 (commit \
         script, download), the baseline none"
    ));
    let split: Vec<String> = STEPS
        .iter()
        .zip(steps)
        .map(|(step, ms)| format!("{step} {:.0} ms", median(ms)))
        .collect();
    report.notes.push(format!(
        "seed ({name}): the product's steps, p50 each: {}",
        split.join(", ")
    ));
    for (figure, a, b, target) in [
        ("seed p50", mine.seed, theirs.seed, None),
        ("publish p50", mine.publish, theirs.publish, None),
        ("seed + publish p50", mine.total, theirs.total, Some(1.5)),
    ] {
        let (a, b) = (median(a), median(b));
        let ratio = a / b.max(0.001);
        let (target, pass) = match target {
            Some(t) => (format!("≤ {t}× baseline"), Some(ratio <= t)),
            None => ("—".to_owned(), None),
        };
        let baseline = match (figure, backend) {
            ("seed p50", Backend::Docker) => "host clone into a bind mount",
            ("seed p50", Backend::Local) => "host clone",
            ("publish p50", _) => "host commit, bundle, fetch",
            _ => "raw",
        };
        report.rows.push(Row::new(
            format!("{figure} ({what})"),
            format!("{a:.0} ms"),
            format!("{b:.0} ms ({baseline})"),
            format!("{ratio:.2}×"),
            target,
            pass,
        ));
    }
    Ok(report)
}

async fn exec(sandbox: &dyn Sandbox, req: ExecRequest) -> Result<String> {
    let out = sandbox.exec(req, &mut |_, _| {}).await?;
    if out.exit_code != Some(0) {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The product's steps, timed one by one: 2 of seed, then 3 of publish.
const STEPS: [&str; 5] = [
    "seed_bundle",
    "seed script (the bundle on its stdin)",
    "commit script",
    "download",
    "private copy + fetch_bundle",
];

/// One seed and one publish the product's way; the ms of each of [`STEPS`].
async fn product_run(
    config: &Config,
    sandbox: &Arc<dyn Sandbox>,
    src: &Path,
    bundles: &Path,
    run: usize,
) -> Result<[f64; 5]> {
    let mut split = [0.0; 5];
    let mut lap = |i: usize, t: &mut Instant| {
        split[i] = t.elapsed().as_secs_f64() * 1000.0;
        *t = Instant::now();
    };
    let sandbox = sandbox.as_ref();
    sh(sandbox, "find /workspace -mindepth 1 -delete").await?;
    let branch = format!("dockhand/bench-{run}");
    let max = config.git.max_bundle_bytes;

    let mut t = Instant::now();
    let (base, bundle) = dockhand_forge::seed_bundle(src, Some("main"), None, max).await?;
    lap(0, &mut t);
    let origin = src.to_string_lossy();
    let argv = ["sh", "-c", sandbox_scripts::SEED, "seed", &base.branch];
    let rest = [branch.as_str(), &origin, ""];
    let mut req = ExecRequest::new(argv.into_iter().chain(rest));
    req.stdin = Some(bundle);
    exec(sandbox, req).await.context("seeding")?;
    lap(1, &mut t);

    let head = sh(sandbox, "git rev-parse HEAD").await?;
    if String::from_utf8_lossy(&head).trim() != base.commit {
        bail!("the seeded workspace is not at the base {}", base.commit);
    }
    sh(sandbox, CHANGE).await?;

    let mut t = Instant::now();
    let mut req = ExecRequest::new([
        "sh",
        "-c",
        sandbox_scripts::COMMIT,
        "dockhand-publish",
        &branch,
        &base.commit,
        "bench",
        "bench@localhost",
        "yes",
    ]);
    req.stdin = Some(b"bench change\n".to_vec());
    req.output_cap = 64 * 1024;
    let said = exec(sandbox, req).await.context("committing")?;
    let head = said
        .lines()
        .find_map(|l| l.strip_prefix("HEAD "))
        .context("the commit script reported no head")?
        .trim()
        .to_owned();
    lap(2, &mut t);
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = sandbox
        .download(
            &format!("{WORKSPACE}/{}", sandbox_scripts::RESULT_BUNDLE),
            limit,
        )
        .await?;
    lap(3, &mut t);
    // crate::data_dir::write_private in the server: a file only its owner reads.
    let copy = bundles.join(format!("{run}.bundle"));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&copy)?
        .write_all(&bytes)?;
    let commit = dockhand_forge::fetch_bundle(&copy, src, &branch).await?;
    std::fs::remove_file(&copy)?;
    lap(4, &mut t);

    if commit != head {
        bail!("the bundle holds {commit}, not the committed head {head}");
    }
    Ok(split)
}

/// The raw workspace on docker belongs to the sandbox user, the clone to us.
const SAFE: &str = "safe.directory=*";

/// One seed and one publish the raw way; (seed ms, publish ms).
async fn raw_run(
    ws: &Path,
    container: Option<&dyn Sandbox>,
    src: &Path,
    run: usize,
) -> Result<(f64, f64)> {
    // Emptied, not removed: the bind mount holds on to the directory itself.
    for entry in std::fs::read_dir(ws)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    let (ws_s, src_s) = (ws.to_string_lossy(), src.to_string_lossy());

    let t = Instant::now();
    git(
        ws,
        &[
            "-c",
            SAFE,
            "clone",
            "-q",
            "--no-local",
            "-b",
            "main",
            &src_s,
            &ws_s,
        ],
    )?;
    let seed = t.elapsed().as_secs_f64() * 1000.0;

    let base = git_out(ws, &["-c", SAFE, "rev-parse", "HEAD"])?;
    if let Some(sandbox) = container {
        // The container sees the clone through its bind mount.
        let seen = sh(sandbox, "cat /workspace/src/f0.txt").await?;
        if seen != std::fs::read(ws.join("src/f0.txt"))? {
            bail!("the container does not see the host clone");
        }
    }
    let out = std::process::Command::new("sh")
        .args(["-c", CHANGE])
        .current_dir(ws)
        .output()?;
    if !out.status.success() {
        bail!("changing the raw clone failed");
    }

    let t = Instant::now();
    git(ws, &["-c", SAFE, "add", "-A"])?;
    git(
        ws,
        &[
            "-c",
            SAFE,
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-q",
            "-m",
            "bench change",
        ],
    )?;
    let bundle = ws.join(".git/raw.bundle");
    let bundle_s = bundle.to_string_lossy();
    let not_base = format!("^{base}");
    git(
        ws,
        &[
            "-c", SAFE, "bundle", "create", "-q", &bundle_s, "HEAD", &not_base,
        ],
    )?;
    let spec = format!("HEAD:refs/heads/raw/bench-{run}");
    git(src, &["fetch", "-q", "--no-tags", &bundle_s, &spec])?;
    let publish = t.elapsed().as_secs_f64() * 1000.0;
    Ok((seed, publish))
}
