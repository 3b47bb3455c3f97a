//! When the coordinator is root, bubblewrap already runs as the sandbox's
//! unprivileged uid, so whatever it binds by path (the generated `/etc` files,
//! the helper, egress sockets, the workspace) must be reachable by that uid
//! wherever the data directory is, even under a 0700 `/root`. Those live in a
//! directory of this process's own under [`ROOT`], locked while it lives; a
//! coordinator starting finds the unlocked ones of coordinators that were killed
//! and removes them.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;

use rustix::fs::FlockOperation;

use super::fs::make_dir;
use super::mount;
use crate::Result;
use crate::SandboxError;

/// Where runtime directories are made.
pub(crate) const ROOT: &str = "/run/dockhand";

const LOCK: &str = "lock";
/// Subdirectories, each 0711: the sandbox uid opens entries it is given, lists none.
const SUBDIRS: [&str; 3] = ["etc", "egress", "ws"];

/// A runtime directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct RuntimeDir {
    dir: PathBuf,
    _lock: File,
}

impl RuntimeDir {
    /// Removes the directories of coordinators that are gone and makes this one's.
    pub(crate) fn create() -> Result<RuntimeDir> {
        let root = Path::new(ROOT);
        make_dir(root, 0o711)?;
        sweep(root);
        let dir = root.join(format!("{:016x}", rand::random::<u64>()));
        make_dir(&dir, 0o711)?;
        let lock = File::options()
            .write(true)
            .create_new(true)
            .open(dir.join(LOCK))
            .map_err(|e| SandboxError::io(format!("creating {}/{LOCK}", dir.display()), e))?;
        if let Err(e) = rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            remove(&dir);
            return Err(SandboxError::io(
                format!("locking {}/{LOCK}", dir.display()),
                e.into(),
            ));
        }
        for sub in SUBDIRS {
            make_dir(&dir.join(sub), 0o711)?;
        }
        Ok(RuntimeDir { dir, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Removes every directory under `root` whose lock nobody holds.
fn sweep(root: &Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(lock) = File::open(dir.join(LOCK)) else {
            continue;
        };
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            remove(&dir);
        }
    }
}

/// Unmounts its workspace binds, then removes files and empty directories one by
/// one: never recursively, so a bind that would not unmount keeps its workspace.
fn remove(dir: &Path) {
    mount::release_stale(&dir.join("ws"));
    for sub in SUBDIRS {
        for entry in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_type().is_ok_and(|t| !t.is_dir()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir.join(sub));
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
