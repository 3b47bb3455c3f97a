//! What every test needs: a fake host tree, a provider on it, and helpers.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dockhand_sandbox::ExecOutput;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Limits;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::SandboxSpec;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;
use tempfile::TempDir;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;

pub(crate) const ADMIN_TOKEN: &str = "admin-token-canary-5f1e";

/// Bounds every wait that could hang if the behaviour under test broke.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

pub(crate) struct Host {
    _dir: TempDir,
    pub(crate) data: PathBuf,
    pub(crate) provider: LocalProvider,
}

impl Host {
    pub(crate) fn new() -> Host {
        let dir = tempfile::Builder::new()
            .prefix("sandbox-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // Closed to others, as a data directory under /root is: the sandbox's
        // unprivileged uid reaches its workspace through the runtime's bind.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = dir.path().join("data");
        for task in ["t1", "t2"] {
            std::fs::create_dir_all(data.join("workspaces").join(task)).unwrap();
        }
        std::fs::write(data.join("admin-token"), ADMIN_TOKEN).unwrap();
        std::fs::write(data.join("workspaces/t2/secret.txt"), "other task").unwrap();
        let provider = LocalProvider::new(LocalConfig::new(data.join("state")))
            .unwrap_or_else(|e| panic!("the local sandbox tests need bubblewrap: {e}"));
        // As the coordinator does: the sandbox's host uid owns its workspace.
        if let Some(uid) = provider.workspace_owner() {
            for task in ["t1", "t2"] {
                let ws = data.join("workspaces").join(task);
                std::os::unix::fs::chown(&ws, Some(uid), Some(uid)).unwrap();
            }
        }
        Host {
            _dir: dir,
            data,
            provider,
        }
    }

    pub(crate) fn workspace(&self, task: &str) -> PathBuf {
        self.data.join("workspaces").join(task)
    }

    pub(crate) fn admin_token(&self) -> PathBuf {
        self.data.join("admin-token")
    }

    pub(crate) fn spec(&self, task: &str, network: bool) -> SandboxSpec {
        SandboxSpec {
            task_id: task.to_owned(),
            workspace: self.workspace(task),
            network: if network {
                NetworkLevel::Open
            } else {
                NetworkLevel::None
            },
            limits: Limits::default(),
            env: vec![("SPEC_VAR".to_owned(), "from-spec".to_owned())],
            image: None,
        }
    }

    pub(crate) async fn sandbox(&self, network: bool) -> Arc<dyn Sandbox> {
        self.provider
            .create(self.spec("t1", network))
            .await
            .unwrap()
    }
}

pub(crate) async fn sh(sb: &dyn Sandbox, script: &str) -> ExecOutput {
    exec(sb, ExecRequest::new(["sh", "-c", script])).await
}

pub(crate) async fn exec(sb: &dyn Sandbox, req: ExecRequest) -> ExecOutput {
    sb.exec(req, &mut |_, _| {}).await.unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Shell input that starts `sleep SECS` in the background and says "started" once
/// the sleep has replaced its forked shell (before that, its command line is "sh").
pub(crate) const WAIT_FOR_SLEEP: &str = "sleep SECS & until grep -q SECS /proc/$!/cmdline 2>/dev/null; do :; done; echo started; wait\n";

/// Host processes whose command line contains `needle`.
pub(crate) fn processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Processes come and go while we scan; a vanished one matches nothing.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = text(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", name.to_string_lossy()));
        }
    }
    found
}

/// Reads `output` until what was read contains `needle`.
pub(crate) async fn read_until(
    output: &mut (dyn AsyncRead + Send + Unpin),
    needle: &str,
) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        while !text(&seen).contains(needle) {
            let n = output.read(&mut buf).await.unwrap();
            assert!(n > 0, "output ended before {needle:?}: {}", text(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in output: {}", text(&seen)));
    text(&seen)
}

/// Reads `output` to end-of-file, which comes once every process holding it is gone.
pub(crate) async fn read_to_eof(output: &mut (dyn AsyncRead + Send + Unpin)) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(LIMIT, output.read_to_end(&mut all))
        .await
        .expect("output never ended: something in the sandbox survived")
        .unwrap();
    text(&all)
}
