//! The sandbox helper: a static, std-only Linux program (`helper/`, compiled by
//! `build.rs`) that forwards an `allowlist` sandbox's connections to the coordinator.
//!
//! It listens on [`PROXY_ADDR`](crate::egress::PROXY_ADDR) inside the sandbox and has
//! three modes: `mux` carries every connection over its stdin and stdout (the docker
//! backend's long-lived exec, spoken to by the host side of the protocol in `mux.rs`),
//! `relay` copies each connection to a Unix socket, and `run` wraps one command with
//! that relay (the local backend, where every command gets its own network
//! namespace). `helper/main.rs` documents the command lines and exit codes.

use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The helper program.
pub const HELPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dockhand-helper"));

/// Where backends put the helper inside a sandbox.
pub const HELPER_PATH: &str = "/.dockhand/helper";

/// Writes [`HELPER`] to `path` with mode 0755, through a temporary file in the same
/// directory renamed into place, so a helper already running from `path` is never
/// overwritten in place ("text file busy") and a reader never sees half a file.
pub fn write_helper(path: &Path) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let mut temp_name = name.to_os_string();
    temp_name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let temp = path.with_file_name(temp_name);
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&temp)?;
        file.write_all(HELPER)?;
        // The umask may have taken bits off the mode given at creation.
        file.set_permissions(fs::Permissions::from_mode(0o755))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}
