//! Directories and files the provider makes on the host, with the modes they need.

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::Result;
use crate::SandboxError;

/// Makes `dir` and its parents, and gives `dir` exactly `mode`.
pub(super) fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))
}

/// Writes a generated file by rename, so a sandbox starting meanwhile never sees half
/// of it, and returns its path as a string for the plan.
pub(super) fn write_state_file(path: &Path, contents: &[u8], mode: u32) -> Result<String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| SandboxError::Invalid(format!("state dir {} is not UTF-8", path.display())))
}
