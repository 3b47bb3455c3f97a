//! The container a docker sandbox runs in: starting processes in it, the helpers that
//! kill them and read its limit counters, its egress link, and its replacement.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use futures_util::StreamExt;

use super::api::api_error;
use super::api::short;
use super::config::DockerConfig;
use super::egress;
use super::exec;
use super::exec::Setup;
use super::lifecycle;
use super::limits;
use super::limits::Source;
use super::plan::Role;
use super::scripts;
use crate::LimitMarks;
use crate::NetworkLevel;
use crate::Result;
use crate::SandboxError;
use crate::SandboxSpec;
use crate::WORKSPACE;
use crate::egress::Egress;
use crate::egress::RefusalLog;

/// How long a failing container may take to show it stopped.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Bounds a helper exec (a kill, a counter read) that should take milliseconds.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The container a sandbox runs in, shared with its shells. [`replace`](Container::replace)
/// swaps it for a fresh one on the same workspace.
pub(crate) struct Container {
    pub(crate) docker: Docker,
    config: Arc<DockerConfig>,
    spec: SandboxSpec,
    /// Labels for a replacement container.
    pub(crate) role: Role,
    /// Changes when [`replace`](Container::replace) swaps the container.
    id: RwLock<String>,
    /// Where the current container's counters are, once found: (container id, source).
    limits: Mutex<Option<(String, Source)>>,
    /// Counts [`kill_all`](Container::kill_all) calls, so a command they killed reports
    /// no exit code.
    kills: AtomicU64,
    /// One replacement at a time, so concurrent callers do not make two containers.
    replacing: tokio::sync::Mutex<()>,
    /// The egress proxy, for `allowlist`.
    egress: Option<Arc<dyn Egress>>,
    /// What the proxy refused for this sandbox.
    pub(crate) refusals: RefusalLog,
    /// The running forwarder, started on first use and again if it died.
    link: tokio::sync::Mutex<Option<egress::Link>>,
    /// Told to the model at its next tool result (a replaced container).
    notice: Mutex<Option<String>>,
}

impl Container {
    pub(crate) fn new(
        docker: Docker,
        config: Arc<DockerConfig>,
        spec: SandboxSpec,
        role: Role,
        id: String,
        egress: Option<Arc<dyn Egress>>,
    ) -> Container {
        Container {
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
            notice: Mutex::new(None),
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

    /// How many times [`kill_all`](Container::kill_all) has run: a command during which
    /// it changed was killed.
    pub(crate) fn kill_count(&self) -> u64 {
        self.kills.load(Ordering::SeqCst)
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
        let argv = scripts::wrapped(scripts::WRAPPER, scripts::sh_argv(script, args));
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

    /// Kills every process of the agent's; commands running meanwhile report no exit
    /// code.
    pub(crate) async fn kill_all(&self) -> Result<()> {
        self.kills.fetch_add(1, Ordering::SeqCst);
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
    pub(crate) async fn cheap_marks(&self) -> Option<LimitMarks> {
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

    /// Removes the container and starts a fresh one on the same workspace, one
    /// replacement at a time.
    pub(crate) async fn replace(&self) -> Result<()> {
        let _one_at_a_time = self.replacing.lock().await;
        self.swap("could not start processes").await
    }

    /// Replaces container `seen` if it is gone or stopped (removed, crashed, its
    /// engine restarted) and no one replaced it yet; `true` when this call did.
    pub(crate) async fn recover(&self, seen: &str) -> Result<bool> {
        let _one_at_a_time = self.replacing.lock().await;
        if self.id() != seen || !self.is_gone(seen).await {
            return Ok(false);
        }
        self.swap("was lost").await?;
        Ok(true)
    }

    /// What the model should be told since it last asked.
    pub(crate) fn take_notice(&self) -> Option<String> {
        self.notice
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether container `id` is gone or stopping. A container being removed
    /// may still say it runs for a moment after its processes died, so a
    /// running one gets a short, bounded wait for it to stop.
    async fn is_gone(&self, id: &str) -> bool {
        match self.docker.inspect_container(id, None).await {
            Ok(found) if found.state.as_ref().and_then(|s| s.running) == Some(true) => {
                let options = bollard::query_parameters::WaitContainerOptions {
                    condition: "not-running".to_owned(),
                };
                let mut waiting = self.docker.wait_container(id, Some(options));
                let stopped = tokio::time::timeout(STOP_WAIT, waiting.next()).await;
                matches!(stopped, Ok(Some(_)))
            }
            Ok(_) => true,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => true,
            Err(_) => false,
        }
    }

    /// Replaces the container, leaving a notice for the model that says `why`.
    async fn swap(&self, why: &str) -> Result<()> {
        let old = self.id();
        lifecycle::remove(&self.docker, &old).await?;
        let new = lifecycle::launch(&self.docker, &self.config, &self.spec, &self.role).await?;
        tracing::info!(
            old = short(&old),
            new = short(&new),
            "replaced a sandbox container"
        );
        *self.id.write().unwrap_or_else(PoisonError::into_inner) = new;
        // The old container took its forwarder with it.
        *self.link.lock().await = None;
        let notice = format!(
            "the sandbox's container {} {why}, so it was replaced with a fresh one on the same \
             workspace: files in /workspace are kept; running processes, /tmp and anything \
             installed outside /workspace are gone",
            short(&old)
        );
        *self.notice.lock().unwrap_or_else(PoisonError::into_inner) = Some(notice);
        Ok(())
    }
}
