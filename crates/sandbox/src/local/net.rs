//! The local backend's networks. Every command has its own network namespace
//! (bubblewrap unshares it at every level); what reaches it differs:
//! - `open`: slirp4netns, joined to the command's namespace before it runs,
//!   gives user-mode networking with no way to the host's loopback;
//! - `allowlist`: a Unix socket, bound into the sandbox, on which the
//!   coordinator hands each connection to its egress proxy ([`EgressSocket`]).

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::process::Command;

use crate::Result;
use crate::SandboxError;
use crate::egress::Egress;
use crate::egress::EgressConn;
use crate::egress::RefusalLog;

/// How long slirp4netns may take to join a command's namespace.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of bubblewrap's info JSON read.
const MAX_INFO: usize = 4096;

/// The FIFOs one `open` command is started with, in a private directory.
pub(crate) struct Pipes {
    dir: PathBuf,
    pub(crate) info: PathBuf,
    pub(crate) block: PathBuf,
    ready: PathBuf,
}

impl Pipes {
    /// Makes a fresh directory with the three FIFOs under `run_dir`.
    pub(crate) fn make(run_dir: &Path) -> Result<Pipes> {
        let dir = run_dir.join(format!("{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
        let pipes = Pipes {
            info: dir.join("info"),
            block: dir.join("block"),
            ready: dir.join("ready"),
            dir,
        };
        for fifo in [&pipes.info, &pipes.block, &pipes.ready] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                fifo,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .map_err(|e| SandboxError::io(format!("creating {}", fifo.display()), e.into()))?;
        }
        Ok(pipes)
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// slirp4netns serving one command; killed when dropped.
pub(crate) struct Slirp {
    _child: Child,
    _pipes: Pipes,
}

fn attach_error(message: String) -> SandboxError {
    SandboxError::Failed {
        what: "giving the sandbox its network (slirp4netns)".into(),
        message,
    }
}

impl Slirp {
    /// Joins slirp4netns to the namespace of the command started with `pipes`,
    /// then lets the command run.
    pub(crate) async fn attach(program: &Path, pipes: Pipes) -> Result<Slirp> {
        tokio::time::timeout(ATTACH_TIMEOUT, Self::attach_now(program, pipes))
            .await
            .map_err(|_| attach_error(format!("no answer in {} s", ATTACH_TIMEOUT.as_secs())))?
    }

    async fn attach_now(program: &Path, pipes: Pipes) -> Result<Slirp> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| attach_error(format!("{what}: {e}"))
        };
        // Opened read-write, so neither open waits for the other side; the launch
        // script opens `info` for writing, then `block` for reading.
        let mut block = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&pipes.block)
            .map_err(io("opening the block pipe"))?;
        let mut info = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&pipes.info)
            .map_err(io("opening the info pipe"))?;
        let pid = read_child_pid(&mut info).await?;
        // slirp4netns brings the namespace's loopback up; bubblewrap must have
        // set loopback up itself first, or its own setup fails.
        wait_until_blocked(pid).await;
        let mut ready = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&pipes.ready)
            .map_err(io("opening the ready pipe"))?;
        // As root: /dev/net/tun is root's. `--userns-path` keeps it in our own user
        // namespace, where it may enter the sandbox's network namespace; it then
        // sandboxes itself and drops its capabilities.
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"ready=$1; shift; exec "$@" 3>"$ready""#)
            .arg("dockhand-slirp")
            .arg(&pipes.ready)
            .arg(program)
            .args([
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                "--userns-path=/proc/self/ns/user",
                "--ready-fd=3",
            ])
            .arg(pid.to_string())
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(io("starting slirp4netns"))?;
        let mut byte = [0u8; 1];
        ready
            .read_exact(&mut byte)
            .await
            .map_err(io("waiting for slirp4netns"))?;
        block
            .write_all(b"1")
            .await
            .map_err(io("starting the command"))?;
        Ok(Slirp {
            _child: child,
            _pipes: pipes,
        })
    }
}

/// Waits until bubblewrap's child sits in `read(FD_BLOCK)`: its namespace is
/// set up and it waits for us. Where `/proc/PID/syscall` cannot be read (not
/// root), it returns at once.
async fn wait_until_blocked(pid: u32) {
    let waiting = format!("0 {:#x} ", super::plan::FD_BLOCK);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
            Ok(text) if text.starts_with(&waiting) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(e) => {
                tracing::debug!(pid, error = %e, "cannot see whether the sandbox waits; going on");
                return;
            }
        }
    }
}

/// Reads `"child-pid": N` from bubblewrap's `--info-fd` JSON.
async fn read_child_pid(info: &mut pipe::Receiver) -> Result<u32> {
    let mut text = Vec::new();
    let mut buf = [0u8; 512];
    while text.len() < MAX_INFO {
        let n = info
            .read(&mut buf)
            .await
            .map_err(|e| attach_error(format!("reading bubblewrap's info: {e}")))?;
        text.extend_from_slice(&buf[..n]);
        if let Some(pid) = child_pid(&String::from_utf8_lossy(&text)) {
            return Ok(pid);
        }
    }
    Err(attach_error("bubblewrap reported no child pid".into()))
}

fn child_pid(json: &str) -> Option<u32> {
    let rest = json.split("\"child-pid\"").nth(1)?;
    let digits: String = rest
        .trim_start_matches([':', ' ', '\t'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    // A number cut off by the end of a read would be wrong: wait for what follows.
    (digits.len() < rest.trim_start_matches([':', ' ', '\t']).len())
        .then(|| digits.parse().ok())
        .flatten()
}

/// The Unix socket an `allowlist` sandbox's forwarder connects to; each
/// connection goes to the egress proxy. Removed when dropped.
pub(crate) struct EgressSocket {
    pub(crate) path: PathBuf,
    accept: tokio::task::JoinHandle<()>,
}

impl EgressSocket {
    /// Binds `path` for `task_id`, connectable by `owner` only.
    pub(crate) fn bind(
        path: PathBuf,
        owner: Option<u32>,
        egress: Arc<dyn Egress>,
        task_id: String,
        refusals: RefusalLog,
    ) -> Result<EgressSocket> {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| SandboxError::io(format!("binding {}", path.display()), e))?;
        let secured = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| match owner {
                Some(uid) => std::os::unix::fs::chown(&path, Some(uid), Some(uid)),
                None => Ok(()),
            });
        secured.map_err(|e| SandboxError::io(format!("securing {}", path.display()), e))?;
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = EgressConn {
                    task_id: task_id.clone(),
                    stream: Box::new(stream),
                    refusals: refusals.clone(),
                };
                let egress = egress.clone();
                tokio::spawn(async move { egress.serve(conn).await });
            }
        });
        Ok(EgressSocket { path, accept })
    }
}

impl Drop for EgressSocket {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
