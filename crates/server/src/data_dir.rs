//! The data directory: owner-only, locked by the coordinator using it, with the
//! coordinator's id and the files the CLI reads.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::path::PathBuf;

use crate::error::StartError;

/// Subdirectories made at start-up.
const SUBDIRS: [&str; 4] = ["workspaces", "sandbox", "mirrors", "bundles"];

/// The data directory, held for as long as this value lives.
pub(crate) struct DataDir {
    pub(crate) path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Makes the directory and its subdirectories owner-only and locks it.
    pub(crate) fn open(path: &Path) -> Result<DataDir, StartError> {
        make_dir(path)?;
        for sub in SUBDIRS {
            make_dir(&path.join(sub))?;
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock(path)?,
        })
    }
}

/// Creates `path` owner-only, or makes an existing directory so: the data
/// directory holds keys, the database and full clones of private repositories.
fn make_dir(path: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| StartError::DataDir {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Writes a file readable by its owner only. One already there (left by an
/// interrupted run, say) is replaced rather than rewritten, so its mode is ours.
pub(crate) fn write_private(path: &Path, data: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(data.as_ref())
}

/// The id that labels this coordinator's containers, kept in the data dir.
pub(crate) fn coordinator_id(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("coordinator-id");
    let io = |e| StartError::DataDir {
        path: path.display().to_string(),
        source: e,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = format!(
        "c{}",
        &crate::auth::generate_token()[3..15].to_ascii_lowercase()
    );
    write_private(&path, format!("{id}\n")).map_err(io)?;
    Ok(id)
}

/// Holds the data directory for this process: a second coordinator on it refuses to start.
fn lock(dir: &Path) -> Result<File, StartError> {
    let path = dir.join("coordinator.lock");
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StartError::DataDir {
            path: path.display().to_string(),
            source: e,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| StartError::Locked(dir.display().to_string()))?;
    Ok(file)
}
