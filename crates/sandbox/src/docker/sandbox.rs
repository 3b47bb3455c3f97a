//! One task's container: the [`Sandbox`] implementation.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateContainerOptions;
use bollard::query_parameters::RemoveContainerOptions;
use futures_util::StreamExt;

use super::DockerConfig;
use super::egress;
use super::exec;
use super::exec::Setup;
use super::exec::api_error;
use super::exec::message;
use super::exec::short;
use super::limits;
use super::limits::Source;
use super::plan;
use super::plan::Role;
use super::scripts;
use super::shell;
use crate::ExecOutput;
use crate::ExecRequest;
use crate::LimitMarks;
use crate::NetworkLevel;
use crate::OutputSink;
use crate::Result;
use crate::Sandbox;
use crate::SandboxError;
use crate::SandboxInfo;
use crate::SandboxSpec;
use crate::ShellProcess;
use crate::WORKSPACE;
use crate::egress::Egress;
use crate::egress::RefusalLog;

pub(crate) const BACKEND: &str = "docker";

/// Bounds a helper exec (a kill, a counter read) that should take milliseconds.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// A task's container.
pub(crate) struct DockerSandbox {
    pub(crate) inner: Arc<Inner>,
}

/// What a sandbox and its shells share.
pub(crate) struct Inner {
    pub(crate) docker: Docker,
    pub(crate) config: Arc<DockerConfig>,
    pub(crate) spec: SandboxSpec,
    /// Labels for a replacement container.
    pub(crate) role: Role,
    /// Changes when [`Sandbox::replace`] swaps the container.
    id: RwLock<String>,
    /// Where the current container's counters are, once found: (container id, source).
    limits: Mutex<Option<(String, Source)>>,
    /// Counts [`Sandbox::kill_all`] calls, so a command they killed reports no exit code.
    kills: AtomicU64,
    /// One replacement at a time, so concurrent callers do not make two containers.
    replacing: tokio::sync::Mutex<()>,
    /// The egress proxy, for `allowlist`.
    egress: Option<Arc<dyn Egress>>,
    /// What the proxy refused for this sandbox.
    refusals: RefusalLog,
    /// The running forwarder, started on first use and again if it died.
    link: tokio::sync::Mutex<Option<egress::Link>>,
}

impl Inner {
    pub(crate) fn new(
        docker: Docker,
        config: Arc<DockerConfig>,
        spec: SandboxSpec,
        role: Role,
        id: String,
        egress: Option<Arc<dyn Egress>>,
    ) -> Inner {
        Inner {
            docker,
            config,
            spec,
            role,
            id: RwLock::new(id),
            limits: Mutex::new(None),
            kills: AtomicU64::new(0),
            replacing: tokio::sync::Mutex::new(()),
            egress,
            refusals: RefusalLog::default(),
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// At `allowlist`, makes sure the egress forwarder runs in the container.
    async fn ensure_egress(&self) -> Result<()> {
        let Some(egress) = &self.egress else {
            return Ok(());
        };
        if self.spec.network != NetworkLevel::Allowlist {
            return Ok(());
        }
        let mut link = self.link.lock().await;
        if link.as_ref().is_some_and(egress::Link::is_alive) {
            return Ok(());
        }
        let task = match &self.role {
            Role::Task(t) => t.clone(),
            Role::Pool(_) => self.spec.task_id.clone(),
        };
        let id = self.id();
        let new = egress::link(
            &self.docker,
            &id,
            egress.clone(),
            task,
            self.refusals.clone(),
        );
        *link = Some(new.await?);
        Ok(())
    }

    pub(crate) fn id(&self) -> String {
        self.id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts `argv` (already wrapped) as the sandbox user in `cwd` (`/workspace` when
    /// `None`) and waits until it runs.
    pub(crate) async fn open(
        &self,
        argv: Vec<String>,
        cwd: Option<&str>,
        env: &[(String, String)],
        stdin: bool,
    ) -> Result<exec::Opened> {
        let cwd = match cwd {
            None => WORKSPACE.to_owned(),
            Some(dir) if dir.starts_with('/') => dir.to_owned(),
            // Docker wants an absolute working directory.
            Some(dir) => format!("{WORKSPACE}/{dir}"),
        };
        self.ensure_egress().await?;
        let setup = Setup {
            argv,
            cwd: &cwd,
            env,
            stdin,
        };
        exec::open(&self.docker, &self.id(), setup).await
    }

    /// Runs one of our own short scripts and returns (exit code, stdout, stderr); gives
    /// up on it after [`HELPER_TIMEOUT`].
    async fn helper(&self, script: &str, args: &[&str]) -> Result<(Option<i32>, String, String)> {
        let argv = wrapped(scripts::WRAPPER, scripts::sh_argv(script, args));
        let opened = self.open(argv, Some("/"), &[], false).await?;
        let exec_id = opened.exec_id.clone();
        let mut output = opened.output;
        let mut stdout = opened.stdout;
        let mut stderr = opened.stderr;
        let read = tokio::time::timeout(HELPER_TIMEOUT, async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdErr { message }) => stderr.extend_from_slice(&message),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        stdout.extend_from_slice(&message);
                    }
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(api_error("reading a helper's output", e)),
                }
            }
            Ok(())
        })
        .await;
        match read {
            Ok(result) => result?,
            Err(_) => {
                return Err(SandboxError::Failed {
                    what: "running a helper in the container".to_owned(),
                    message: format!("no answer within {HELPER_TIMEOUT:?}"),
                });
            }
        }
        let code = exec::exit_code(&self.docker, &exec_id).await?;
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Ok((code, text(stdout), text(stderr)))
    }

    /// Kills `pid`'s session, groups and descendants. Failures are logged: the caller
    /// is already on a failure path (a timeout) and has nothing better to do.
    pub(crate) async fn kill_tree(&self, pid: u32) {
        match self.helper(scripts::KILL_SCRIPT, &[&pid.to_string()]).await {
            Ok((Some(0), _, _)) => {}
            Ok((code, _, stderr)) => {
                tracing::warn!(pid, ?code, stderr, "killing a process tree failed");
            }
            Err(e) => tracing::warn!(pid, error = %e, "killing a process tree failed"),
        }
    }

    async fn kill_everything(&self) -> Result<()> {
        match self.helper(scripts::KILL_SCRIPT, &["all"]).await? {
            (Some(0), _, _) => Ok(()),
            (code, _, stderr) => Err(SandboxError::Failed {
                what: format!("killing every process in container {}", short(&self.id())),
                message: match stderr.trim() {
                    "" => format!("the kill script exited with {code:?}"),
                    said => said.to_owned(),
                },
            }),
        }
    }

    /// Where the current container's counters are, probing the host once per container.
    async fn limit_source(&self) -> (String, Source) {
        let id = self.id();
        if let Some((cached, source)) = &*self.limits.lock().unwrap_or_else(PoisonError::into_inner)
            && *cached == id
        {
            return (id, source.clone());
        }
        let inspect = self.docker.inspect_container(&id, None).await.ok();
        let parent = inspect
            .as_ref()
            .and_then(|i| i.host_config.as_ref())
            .and_then(|h| h.cgroup_parent.clone());
        let pid = inspect
            .as_ref()
            .and_then(|i| i.state.as_ref())
            .and_then(|s| s.pid);
        let source = limits::probe_host(&id, parent.as_deref(), pid);
        tracing::debug!(container = short(&id), ?source, "limit counters");
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((id.clone(), source.clone()));
        (id, source)
    }

    /// The counters, read on the host when possible, else with an exec.
    pub(crate) async fn marks(&self) -> LimitMarks {
        match self.limit_source().await {
            (_, Source::Host { memory, pids }) => {
                limits::read_host(&memory, &pids).unwrap_or_default()
            }
            (_, Source::Exec) => match self.helper(limits::EXEC_SCRIPT, &[]).await {
                Ok((_, stdout, _)) => limits::parse_exec(&stdout),
                Err(e) => {
                    tracing::debug!(error = %e, "reading limit counters inside the container");
                    LimitMarks::default()
                }
            },
        }
    }

    /// The counters when reading them costs no exec; `None` otherwise.
    async fn cheap_marks(&self) -> Option<LimitMarks> {
        match self.limit_source().await {
            (_, Source::Host { memory, pids }) => limits::read_host(&memory, &pids),
            (_, Source::Exec) => None,
        }
    }

    pub(crate) fn explain(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        limits::explain(
            before,
            after,
            self.spec.limits.memory_bytes,
            self.spec.limits.pids,
        )
    }
}

#[async_trait]
impl Sandbox for DockerSandbox {
    fn info(&self) -> SandboxInfo {
        SandboxInfo {
            backend: BACKEND.to_owned(),
            id: self.inner.id(),
            task_id: match &self.inner.role {
                Role::Task(task) => Some(task.clone()),
                Role::Pool(_) => None,
            },
        }
    }

    async fn exec(&self, req: ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        validate_argv(&req.argv)?;
        plan::validate_env(&req.env)?;
        if let Some(cwd) = &req.cwd
            && cwd.contains('\0')
        {
            return Err(SandboxError::Invalid(format!(
                "cwd {cwd:?} contains a NUL byte"
            )));
        }
        let inner = &*self.inner;
        tracing::debug!(container = short(&inner.id()), argv = ?req.argv, "exec");
        let kills = inner.kills.load(Ordering::SeqCst);
        let before = inner.cheap_marks().await;
        let argv = wrapped(scripts::WRAPPER, req.argv);
        let opened = inner
            .open(argv, req.cwd.as_deref(), &req.env, req.stdin.is_some())
            .await?;
        let mut out =
            exec::run(inner, opened, req.stdin, req.timeout, req.output_cap, sink).await?;
        if inner.kills.load(Ordering::SeqCst) != kills {
            // Killed by `kill_all`: like a signal death, no exit code.
            out.exit_code = None;
        }
        if let (Some(before), Some(after)) = (before, inner.cheap_marks().await) {
            out.killed_reason = inner.explain(before, after);
        }
        Ok(out)
    }

    async fn spawn_shell(&self, argv: Vec<String>) -> Result<ShellProcess> {
        validate_argv(&argv)?;
        tracing::debug!(container = short(&self.inner.id()), ?argv, "spawn shell");
        shell::spawn(
            Arc::clone(&self.inner),
            wrapped(scripts::SHELL_WRAPPER, argv),
        )
        .await
    }

    async fn kill_all(&self) -> Result<()> {
        self.inner.kills.fetch_add(1, Ordering::SeqCst);
        self.inner.kill_everything().await
    }

    async fn destroy(&self) -> Result<()> {
        remove(&self.inner.docker, &self.inner.id()).await
    }

    async fn limit_marks(&self) -> LimitMarks {
        let mut marks = self.inner.marks().await;
        marks.egress_refused = self.inner.refusals.total();
        marks
    }

    fn explain_limits(&self, before: LimitMarks, after: LimitMarks) -> Option<String> {
        let mut lines: Vec<String> = self.inner.explain(before, after).into_iter().collect();
        if after.egress_refused > before.egress_refused {
            lines.extend(self.inner.refusals.since(before.egress_refused));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    async fn replace(&self) -> Result<()> {
        let inner = &*self.inner;
        let _one_at_a_time = inner.replacing.lock().await;
        let old = inner.id();
        remove(&inner.docker, &old).await?;
        let new = launch(&inner.docker, &inner.config, &inner.spec, &inner.role).await?;
        tracing::info!(
            old = short(&old),
            new = short(&new),
            "replaced a sandbox container"
        );
        *inner.id.write().unwrap_or_else(PoisonError::into_inner) = new;
        // The old container took its forwarder with it.
        *inner.link.lock().await = None;
        Ok(())
    }
}

/// `sh -c <wrapper> sh argv…`.
fn wrapped(wrapper: &str, argv: Vec<String>) -> Vec<String> {
    let mut all = scripts::sh_argv(wrapper, &[]);
    all.extend(argv);
    all
}

fn validate_argv(argv: &[String]) -> Result<()> {
    if argv.is_empty() {
        return Err(SandboxError::Invalid("empty argv".to_owned()));
    }
    match argv.iter().find(|arg| arg.contains('\0')) {
        Some(arg) => Err(SandboxError::Invalid(format!(
            "argument {arg:?} contains a NUL byte"
        ))),
        None => Ok(()),
    }
}

/// Creates and starts a container for `spec`; returns its id.
pub(crate) async fn launch(
    docker: &Docker,
    config: &DockerConfig,
    spec: &SandboxSpec,
    role: &Role,
) -> Result<String> {
    plan::validate_spec(spec)?;
    let what = || match role {
        Role::Task(task) => format!("creating container for task {task}"),
        Role::Pool(slot) => format!("creating pool container {slot}"),
    };
    if !spec.workspace.is_dir() {
        return Err(SandboxError::Invalid(format!(
            "{}: workspace {} is not a directory",
            what(),
            spec.workspace.display()
        )));
    }
    if spec.network == NetworkLevel::Open {
        ensure_open_network(docker).await?;
    }
    let image = plan::image(config, spec);
    // The runtime has been seen to fail a start now and then under heavy
    // concurrent container churn ("stat /sbin/docker-init: permission
    // denied"); a fresh container then starts. Nothing ran, so one more try is safe.
    let mut retried = false;
    loop {
        let body = plan::plan(config, spec, plan::labels(&config.coordinator_id, role));
        let suffix = format!("{:08x}", rand::random::<u32>());
        let options = CreateContainerOptions {
            name: Some(plan::container_name(role, &suffix)),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| create_error(what(), image, config.runtime.as_deref(), e))?;
        match docker.start_container(&created.id, None).await {
            Ok(()) => {
                tracing::debug!(container = short(&created.id), role = ?role, "container started");
                return Ok(created.id);
            }
            Err(e) => {
                // A container that never ran is of no use to anyone.
                let _ = remove(docker, &created.id).await;
                let transient = message(&e).contains("OCI runtime create failed")
                    && !message(&e).to_ascii_lowercase().contains("runtime \"");
                if transient && !retried {
                    tracing::warn!(role = ?role, error = %message(&e), "starting a container failed; trying once more");
                    retried = true;
                    continue;
                }
                return Err(create_error(what(), image, config.runtime.as_deref(), e));
            }
        }
    }
}

/// Makes the `open` network if the engine lacks it: a bridge with
/// inter-container traffic off, so sandboxes cannot reach one another.
pub(crate) async fn ensure_open_network(docker: &Docker) -> Result<()> {
    match docker.inspect_network(plan::OPEN_NETWORK, None).await {
        Ok(_) => return Ok(()),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(api_error("looking for the open network", e)),
    }
    let request = bollard::models::NetworkCreateRequest {
        name: plan::OPEN_NETWORK.to_owned(),
        driver: Some("bridge".to_owned()),
        options: Some(std::collections::HashMap::from([(
            "com.docker.network.bridge.enable_icc".to_owned(),
            "false".to_owned(),
        )])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        // 409: made meanwhile by another task.
        Ok(_)
        | Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(api_error("creating the open network (dockhand-open)", e)),
    }
}

/// Explains a failed create or start, naming the image or runtime when they are the cause.
fn create_error(
    what: String,
    image: &str,
    runtime: Option<&str>,
    err: DockerError,
) -> SandboxError {
    let text = message(&err);
    let lower = text.to_ascii_lowercase();
    let message = if lower.contains("no such image") {
        format!(
            "image {image} not found; build it with `dockhand image build` \
             (or, for an image of your own, build or load it on this host: nothing is pulled)"
        )
    } else if lower.contains("runtime")
        && let Some(runtime) = runtime
    {
        format!(
            "runtime {runtime} is not known to the Docker daemon ({text}); install it and \
             add it to the daemon's \"runtimes\" in daemon.json, or unset the runtime"
        )
    } else {
        text
    };
    SandboxError::Failed { what, message }
}

/// Removes a container and its anonymous volumes, stopping it first. Already gone is fine.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // Docker answers 409 when a removal of this container is already under way.
        Err(DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        }) if message.contains("already in progress") => Ok(()),
        Err(e) => Err(api_error(format!("removing container {}", short(id)), e)),
    }
}
