//! Checkpoint cost per turn, on the local backend and on docker: the work the
//! agent waits for at most (snapshot in the sandbox, bundle out over exec, the
//! store's commit) for a 1-file and a 1,000-file change in a 1,000-file
//! repository, beside one bare `true` through the same sandbox's exec (the
//! floor of anything run in it); and the time to restore the whole chain of
//! checkpoints into a fresh repository.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::TaskId;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::SandboxSpec;
use dockhand_server::Config;
use dockhand_server::checkpoint::Outcome;
use dockhand_server::checkpoint::SandboxCheckpointer;
use dockhand_server::config::Backend;
use dockhand_store::Store;
use dockhand_store::StoreOptions;
use dockhand_store::UserRole;

use crate::Report;
use crate::Row;
use crate::commit::Discard;
use crate::commit::new_task;

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
    each_backend(
        [Backend::Local, Backend::Docker],
        "checkpoint per turn",
        |b| run_backend(opts, b),
    )
}

/// Runs `case` on each backend in a runtime of its own; a backend whose run
/// fails is one failed row, `label (backend)`.
pub(crate) fn each_backend<F, Fut>(backends: [Backend; 2], label: &str, case: F) -> Report
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = Result<Report>>,
{
    let mut report = Report::default();
    for backend in backends {
        let name = backend_name(backend);
        let result = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("building the runtime")
            .and_then(|rt| rt.block_on(case(backend)));
        match result {
            Ok(r) => report.extend(r),
            Err(e) => report
                .rows
                .push(Row::failed(format!("{label} ({name})"), &e)),
        }
    }
    report
}

pub(crate) fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Local => "local",
        Backend::Docker => "docker",
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Makes the 1,000-file repository inside the sandbox, as its user; prints the base commit.
const MAKE_REPO: &str = r#"set -eu
cd /workspace
git init -q -b main
for d in $(seq 0 19); do mkdir -p src/m$d; done
for i in $(seq 0 999); do
  yes "file $i" | head -n 20 > src/m$((i % 20))/f$i.txt
done
git add -A
git -c user.name=b -c user.email=b@b commit -q -m init
git rev-parse HEAD
"#;

pub(crate) async fn sh(sandbox: &dyn Sandbox, script: &str) -> Result<Vec<u8>> {
    let mut req = ExecRequest::new(["sh", "-c", script]);
    req.output_cap = 64 << 20;
    let out = sandbox.exec(req, &mut |_, _| {}).await?;
    if out.exit_code != Some(0) {
        bail!("{script:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

pub(crate) async fn provider(
    config: &Config,
    backend: Backend,
) -> Result<Arc<dyn SandboxProvider>> {
    Ok(match backend {
        Backend::Local => Arc::new(dockhand_sandbox::local::LocalProvider::new(
            dockhand_server::sandboxes::local_config(config, None),
        )?),
        Backend::Docker => {
            let id = format!("bench-checkpoint-{}", std::process::id());
            let docker = dockhand_server::sandboxes::docker_config(config, &id);
            Arc::new(dockhand_sandbox::docker::DockerProvider::connect(docker).await?)
        }
    })
}

async fn run_backend(opts: &Opts, backend: Backend) -> Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("dockhand-bench-checkpoint")
        .tempdir()?;
    let mut config = Config::load(&dir.path().join("data"), &|_| None)?;
    config.sandbox.pool_size = 0;
    let provider = provider(&config, backend).await?;
    let workspace = dir.path().join("workspace");
    dockhand_sandbox::make_workspace(&workspace, provider.workspace_owner())?;
    let task = TaskId::generate();
    let sandbox = provider
        .create(SandboxSpec {
            task_id: task.to_string(),
            workspace,
            network: NetworkLevel::None,
            limits: config.sandbox.limits(),
            env: Vec::new(),
            image: None,
        })
        .await?;
    let result = measure(opts, backend, &config, dir.path(), &task, sandbox.clone()).await;
    if let Err(e) = sandbox.destroy().await {
        crate::eprintln_progress(&format!("removing the bench sandbox: {e}"));
    }
    result
}

async fn measure(
    opts: &Opts,
    backend: Backend,
    config: &Config,
    dir: &Path,
    task: &TaskId,
    sandbox: Arc<dyn Sandbox>,
) -> Result<Report> {
    let name = backend_name(backend);
    let base = String::from_utf8(sh(sandbox.as_ref(), MAKE_REPO).await?)?
        .trim()
        .to_owned();
    let store = Store::open(StoreOptions::new(dir.join("db")), Arc::new(Discard))?;
    let user = store.ensure_user("bench", UserRole::User).await?;
    store.create_task(new_task(task, user.id)).await?;
    let checkpointer = SandboxCheckpointer {
        store: store.clone(),
        task: task.clone(),
        sandbox: sandbox.clone(),
        base_commit: base.clone(),
        max_bytes: config.sandbox.checkpoint_max_mb.saturating_mul(1 << 20),
        author_name: "bench".into(),
        author_email: "bench@localhost".into(),
    };
    let mut floor = Vec::new();
    for _ in 0..opts.samples {
        let t = Instant::now();
        sh(sandbox.as_ref(), "true").await?;
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let floor = median(floor);
    let mut report = Report::default();
    let mut turn = 0;
    for (what, change) in [
        ("1-file change", "echo $1 >> src/m0/f0.txt"),
        (
            "1,000-file change",
            "for f in src/m*/f*.txt; do echo $1 >> $f; done",
        ),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..opts.samples {
            turn += 2;
            sh(sandbox.as_ref(), &change.replace("$1", &turn.to_string())).await?;
            let t = Instant::now();
            let outcome = checkpointer.try_checkpoint(turn).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            match outcome {
                Outcome::Stored(row) => bytes = row.size,
                other => bail!("the {what} was not stored: {other:?}"),
            }
        }
        let p50 = median(times);
        // The exec floor is the backend's price of running anything at all; the
        // checkpoint's own work on top of it should be a few tens of ms.
        let (target, pass) = match what {
            "1-file change" => ("≤ baseline + 50 ms", Some(p50 - floor <= 50.0)),
            _ => ("—", None),
        };
        report.rows.push(Row::new(
            format!("checkpoint per turn p50, {what} ({name})"),
            format!("{p50:.0} ms ({bytes} B bundle)"),
            format!("{floor:.0} ms (exec of `true`)"),
            format!("{:.1}×", p50 / floor.max(0.001)),
            target,
            pass,
        ));
    }
    report
        .rows
        .push(restore_row(&store, task, sandbox.as_ref(), dir, name).await?);
    Ok(report)
}

/// Restores the whole chain into a fresh bare repository holding only the base.
async fn restore_row(
    store: &Store,
    task: &TaskId,
    sandbox: &dyn Sandbox,
    dir: &Path,
    name: &str,
) -> Result<Row> {
    let base_bundle = dir.join("base.bundle");
    std::fs::write(&base_bundle, sh(sandbox, "git bundle create - main").await?)?;
    let fresh = dir.join("restored.git");
    git(dir, &["init", "-q", "--bare", &fresh.to_string_lossy()])?;
    git(
        &fresh,
        &["fetch", "-q", &base_bundle.to_string_lossy(), "main"],
    )?;
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let chain = store.checkpoints(task)?.len();
    let t = Instant::now();
    let newest = dockhand_server::checkpoint::restore(store, task, &fresh, &scratch)
        .await?
        .context("no checkpoints to restore")?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let tree = git_out(
        &fresh,
        &["rev-parse", &format!("{}^{{tree}}", newest.commit)],
    )?;
    if tree != newest.tree {
        bail!(
            "the restored tree {tree} is not the checkpoint's {}",
            newest.tree
        );
    }
    Ok(Row::new(
        format!("restore {chain} checkpoints into a fresh repository ({name})"),
        format!("{ms:.0} ms ({:.0} ms each)", ms / chain.max(1) as f64),
        "—",
        "—",
        "—",
        None,
    ))
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<()> {
    git_out(dir, args).map(|_| ())
}

pub(crate) fn git_out(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
