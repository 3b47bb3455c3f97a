//! `nosuid,nodev` bind mounts, made only by root. `DATA_DIR/workspaces` is one
//! on the host: a setuid file or device node the agent leaves in a workspace
//! gains nothing outside the sandbox either. Each sandbox's workspace is one
//! under the runtime directory, where its unprivileged uid reaches it wherever
//! the data directory is. Mounts go when their guards drop.

use std::path::Path;
use std::path::PathBuf;

use rustix::mount::MountFlags;
use rustix::mount::UnmountFlags;

use crate::Result;
use crate::SandboxError;

/// The mount, unmounted when dropped.
pub struct NosuidMount {
    dir: PathBuf,
}

/// Mount points, from `/proc/self/mountinfo`.
fn mount_points() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    // The fifth field is the mount point, with spaces and the like escaped.
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .collect()
}

fn is_mount_point(dir: &Path) -> bool {
    mount_points().iter().any(|p| p == dir)
}

/// Binds `from` onto `to` and makes the bind `nosuid,nodev`.
fn bind_nosuid(from: &Path, to: &Path) -> Result<()> {
    let failed = |e: rustix::io::Errno| {
        SandboxError::io(
            format!(
                "mounting {} nosuid,nodev at {}",
                from.display(),
                to.display()
            ),
            e.into(),
        )
    };
    rustix::mount::mount_bind(from, to).map_err(failed)?;
    let flags = MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV;
    if let Err(e) = rustix::mount::mount_remount(to, flags, "") {
        let _ = rustix::mount::unmount(to, UnmountFlags::DETACH);
        return Err(failed(e));
    }
    Ok(())
}

/// Bind-mounts `dir` onto itself `nosuid,nodev` (when the coordinator runs as
/// root; `None` otherwise). A mount left there by a coordinator that was killed
/// is taken over, so the next clean shutdown removes it.
pub fn nosuid_mount(dir: &Path) -> Result<Option<NosuidMount>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| SandboxError::io(format!("resolving {}", dir.display()), e))?;
    if is_mount_point(&dir) {
        return Ok(Some(NosuidMount { dir }));
    }
    bind_nosuid(&dir, &dir)?;
    Ok(Some(NosuidMount { dir }))
}

impl NosuidMount {
    /// The mounted directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NosuidMount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.dir, UnmountFlags::DETACH);
    }
}

/// A sandbox's workspace bound at a directory of the runtime's; unmounted and
/// the directory removed when dropped.
#[derive(Debug)]
pub(crate) struct WorkspaceBind {
    at: PathBuf,
}

impl WorkspaceBind {
    /// Binds `workspace` at `at`, a directory made for it.
    pub(crate) fn new(workspace: &Path, at: PathBuf) -> Result<WorkspaceBind> {
        std::fs::create_dir(&at)
            .map_err(|e| SandboxError::io(format!("creating {}", at.display()), e))?;
        if let Err(e) = bind_nosuid(workspace, &at) {
            let _ = std::fs::remove_dir(&at);
            return Err(e);
        }
        Ok(WorkspaceBind { at })
    }

    /// Where the workspace is bound.
    pub(crate) fn path(&self) -> &Path {
        &self.at
    }
}

impl Drop for WorkspaceBind {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.at, UnmountFlags::DETACH);
        // `remove_dir`, never a recursive removal: were the unmount to fail, the
        // directory would still show the workspace.
        let _ = std::fs::remove_dir(&self.at);
    }
}

/// Unmounts the binds a killed coordinator left under `dir` and removes their
/// (then empty) directories.
pub(crate) fn release_stale(dir: &Path) {
    for point in mount_points() {
        if point.parent() == Some(dir) {
            let _ = rustix::mount::unmount(&point, UnmountFlags::DETACH);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}
