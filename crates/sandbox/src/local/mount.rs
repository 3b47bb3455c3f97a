//! `DATA_DIR/workspaces` as a `nosuid,nodev` mount on the host: a setuid file
//! or device node the agent leaves in a workspace gains nothing outside the
//! sandbox either. Only root can mount; the mount goes when the guard drops.

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

/// Whether `dir` is a mount point, from `/proc/self/mountinfo`.
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    // The fifth field is the mount point, with spaces and the like escaped.
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|p| p.replace("\\040", " ") == want)
    })
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
    let failed = |e: rustix::io::Errno| {
        SandboxError::io(format!("mounting {} nosuid,nodev", dir.display()), e.into())
    };
    rustix::mount::mount_bind(&dir, &dir).map_err(failed)?;
    let flags = MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV;
    if let Err(e) = rustix::mount::mount_remount(&dir, flags, "") {
        let _ = rustix::mount::unmount(&dir, UnmountFlags::DETACH);
        return Err(failed(e));
    }
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
