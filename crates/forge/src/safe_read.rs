//! Reading files the agent may have tampered with: opened beneath the workspace
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, regular files only,
//! size bounded.

use std::fs::File;
use std::io::Read;
use std::io::Write;
use std::path::Path;

use rustix::fs::Mode;
use rustix::fs::OFlags;
use rustix::fs::ResolveFlags;

use crate::ForgeError;
use crate::Result;

fn open_beneath(root: &Path, rel: &str, max: u64) -> Result<File> {
    let unsafe_err = |reason: String| ForgeError::Unsafe {
        path: rel.to_owned(),
        reason,
    };
    let dir = File::open(root).map_err(|e| unsafe_err(format!("opening the workspace: {e}")))?;
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            unsafe_err("it is or passes through a symlink".into())
        }
        rustix::io::Errno::NOENT => unsafe_err("no such file".into()),
        other => unsafe_err(other.to_string()),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| unsafe_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(unsafe_err("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(unsafe_err(format!(
            "{} bytes is over the {max}-byte limit",
            meta.len()
        )));
    }
    Ok(file)
}

/// Reads `rel` beneath `root`, at most `max` bytes.
pub fn read_beneath(root: &Path, rel: &str, max: u64) -> Result<Vec<u8>> {
    let file = open_beneath(root, rel, max)?;
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ForgeError::Unsafe {
            path: rel.to_owned(),
            reason: e.to_string(),
        })?;
    if buf.len() as u64 > max {
        return Err(ForgeError::Unsafe {
            path: rel.to_owned(),
            reason: format!("over the {max}-byte limit"),
        });
    }
    Ok(buf)
}

/// Copies `rel` beneath `root` to `dest` (a host path of the coordinator's own),
/// at most `max` bytes. Returns the size.
pub fn copy_beneath(root: &Path, rel: &str, dest: &Path, max: u64) -> Result<u64> {
    let file = open_beneath(root, rel, max)?;
    let io = |e: std::io::Error| ForgeError::Io {
        what: format!("copying {rel} to {}", dest.display()),
        source: e,
    };
    let mut out = File::create(dest).map_err(io)?;
    let n = std::io::copy(&mut file.take(max + 1), &mut out).map_err(io)?;
    if n > max {
        let _ = std::fs::remove_file(dest);
        return Err(ForgeError::Unsafe {
            path: rel.to_owned(),
            reason: format!("over the {max}-byte limit"),
        });
    }
    out.flush().map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlinks_escapes_and_big_files() {
        let ws = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "canary").unwrap();
        std::fs::create_dir(ws.path().join("d")).unwrap();
        std::fs::write(ws.path().join("d/ok"), "fine").unwrap();
        std::os::unix::fs::symlink(&secret, ws.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.path().join("dirlink")).unwrap();
        assert_eq!(read_beneath(ws.path(), "d/ok", 100).unwrap(), b"fine");
        for bad in ["link", "dirlink/secret", "../secret", "/etc/passwd", "d"] {
            assert!(read_beneath(ws.path(), bad, 100).is_err(), "{bad}");
        }
        let err = read_beneath(ws.path(), "d/ok", 2).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
        let dest = outside.path().join("copy");
        assert_eq!(copy_beneath(ws.path(), "d/ok", &dest, 100).unwrap(), 4);
        assert!(copy_beneath(ws.path(), "link", &dest, 100).is_err());
    }
}
