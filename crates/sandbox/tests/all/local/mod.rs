//! The `local` backend's fixture, and what only bubblewrap sandboxes do.

mod isolation;
mod provider;

use std::path::Path;
use std::path::PathBuf;

use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;
use tempfile::TempDir;

use crate::conformance::Fixture;
use crate::harness::host_processes_matching;

/// A fake host tree (a data dir with the provider's state and workspaces, one of them
/// another task's with a secret) and a provider on it.
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
        std::fs::create_dir_all(&data).unwrap();
        let provider = LocalProvider::new(LocalConfig::new(data.join("state")))
            .unwrap_or_else(|e| panic!("the local sandbox tests need bubblewrap: {e}"));
        let host = Host {
            _dir: dir,
            data,
            provider,
        };
        std::fs::write(host.workspace("t2").join("secret.txt"), "other task").unwrap();
        host
    }

    /// The workspace of `task`, made on first use.
    pub(crate) fn workspace(&self, task: &str) -> PathBuf {
        let path = self.data.join("workspaces").join(task);
        if !path.exists() {
            std::fs::create_dir_all(&path).unwrap();
            // As the coordinator does: the sandbox's host uid owns its workspace.
            if let Some(uid) = self.provider.workspace_owner() {
                std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
            }
        }
        path
    }
}

impl Fixture for Host {
    const BACKEND: &'static str = "local";

    async fn new() -> Self {
        Host::new()
    }

    fn provider(&self) -> &dyn SandboxProvider {
        &self.provider
    }

    fn host_dir(&self) -> &Path {
        &self.data
    }

    fn workspace(&self, task: &str) -> PathBuf {
        Host::workspace(self, task)
    }

    /// Every command is a sandbox of its own, which sees no other's processes; the
    /// host sees them all.
    async fn processes_matching(&self, _: &dyn Sandbox, needle: &str) -> Vec<String> {
        host_processes_matching(needle)
    }
}
