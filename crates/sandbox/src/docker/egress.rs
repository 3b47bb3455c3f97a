//! `allowlist` on docker. The container has no network; the helper is copied in
//! with the archive API and runs as `mux` in one long-lived exec, listening on
//! the container's own 127.0.0.1:3128. Its stdin and stdout carry every
//! connection to the coordinator, which hands each to the egress proxy. The
//! exec runs as `nobody`, so the agent (uid 1000) cannot kill it, and the path
//! is the Engine API itself, so it holds for an engine on another machine too.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::CreateExecOptions;
use bollard::exec::StartExecOptions;
use bollard::exec::StartExecResults;
use bollard::query_parameters::UploadToContainerOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::api::api_error;
use super::archive;
use crate::Result;
use crate::SandboxError;
use crate::egress::Egress;
use crate::egress::EgressConn;
use crate::egress::PROXY_ADDR;
use crate::egress::RefusalLog;
use crate::helper::HELPER;
use crate::helper::HELPER_PATH;

/// The user the helper runs as: neither root nor the agent.
const HELPER_USER: &str = "65534:65534";
/// How long the helper may take to start listening.
const START_WAIT: Duration = Duration::from_secs(15);
/// Output of the helper held for the demultiplexer.
const PIPE_BUFFER: usize = 256 * 1024;

/// A running link; the helper's exec ends when it is dropped.
pub(crate) struct Link {
    alive: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Whether the helper still relays.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn failed(message: String) -> SandboxError {
    SandboxError::Failed {
        what: "starting the sandbox's egress forwarder".into(),
        message,
    }
}

/// Copies the helper into `container` (root-owned, mode 0755). Only before the
/// container starts: with the fuse-overlayfs storage driver, a running
/// container has been seen not to see files the archive API put in it.
pub(crate) async fn install(docker: &Docker, container: &str) -> Result<()> {
    let path = HELPER_PATH.trim_start_matches('/');
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let tar = archive::tar(&[
        archive::Entry::Dir {
            path: dir,
            mode: 0o755,
        },
        archive::Entry::File {
            path,
            mode: 0o755,
            data: HELPER,
        },
    ]);
    let options = UploadToContainerOptions {
        path: "/".to_owned(),
        ..Default::default()
    };
    docker
        .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
        .await
        .map_err(|e| api_error("copying the egress forwarder into the container", e))
}

/// Starts the helper (put in place by [`install`]) in `container` and relays
/// its connections to `egress`.
pub(crate) async fn link(
    docker: &Docker,
    container: &str,
    egress: Arc<dyn Egress>,
    task_id: String,
    refusals: RefusalLog,
) -> Result<Link> {
    let options = CreateExecOptions {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(vec![
            HELPER_PATH.to_owned(),
            "mux".to_owned(),
            "--listen".to_owned(),
            PROXY_ADDR.to_owned(),
        ]),
        user: Some(HELPER_USER.to_owned()),
        working_dir: Some("/".to_owned()),
        ..Default::default()
    };
    let created = docker
        .create_exec(container, options)
        .await
        // A container that is gone is broken, so the caller replaces it.
        .map_err(|e| super::exec::exec_error(container, e))?;
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let (mut output, input) = match docker.start_exec(&created.id, Some(start)).await {
        Ok(StartExecResults::Attached { output, input }) => (output, input),
        Ok(StartExecResults::Detached) => return Err(failed("Docker started it detached".into())),
        Err(e) => return Err(super::exec::exec_error(container, e)),
    };
    let (reader, mut writer) = tokio::io::duplex(PIPE_BUFFER);
    // Until it says it listens, so a command can use the proxy at once.
    let mut said = Vec::new();
    let listening = tokio::time::timeout(START_WAIT, async {
        while let Some(item) = output.next().await {
            match item {
                Ok(LogOutput::StdErr { message }) => {
                    said.extend_from_slice(&message);
                    if String::from_utf8_lossy(&said).contains("listening") {
                        return Ok(());
                    }
                }
                Ok(LogOutput::StdOut { message }) => writer
                    .write_all(&message)
                    .await
                    .map_err(|e| failed(e.to_string()))?,
                Ok(_) => {}
                Err(e) => return Err(api_error("reading the egress forwarder", e)),
            }
        }
        Err(failed(format!(
            "it ended before listening: {}",
            String::from_utf8_lossy(&said).trim()
        )))
    })
    .await;
    listening.map_err(|_| failed(format!("it did not listen within {START_WAIT:?}")))??;

    let alive = Arc::new(AtomicBool::new(true));
    let still = alive.clone();
    let task = tokio::spawn(async move {
        let pump = async move {
            while let Some(Ok(item)) = output.next().await {
                let written = match item {
                    LogOutput::StdOut { message } => writer.write_all(&message).await,
                    LogOutput::StdErr { message } => {
                        let said = String::from_utf8_lossy(&message);
                        tracing::debug!(said = %said.trim(), "egress forwarder");
                        Ok(())
                    }
                    _ => Ok(()),
                };
                if written.is_err() {
                    break;
                }
            }
        };
        let demux = crate::mux::demux(reader, input, move |_, stream| {
            let conn = EgressConn {
                task_id: task_id.clone(),
                stream: Box::new(stream),
                refusals: refusals.clone(),
            };
            let egress = egress.clone();
            tokio::spawn(async move { egress.serve(conn).await });
        });
        let ended = tokio::select! {
            () = pump => Ok(()),
            ended = demux => ended,
        };
        if let Err(e) = ended {
            tracing::warn!(error = %e, "the egress forwarder's stream broke");
        }
        still.store(false, Ordering::SeqCst);
    });
    Ok(Link { alive, task })
}
