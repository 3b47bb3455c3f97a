//! File operations done inside the sandbox through [`Sandbox::exec`]: for each, the
//! request to run and what its output means. The trait's default methods run them.
//!
//! Each operation is a small POSIX `sh` script, so any image with a shell works. The
//! path is always a positional argument (`"$1"`), never spliced into the script. Paths
//! resolve in the sandbox's own view of the filesystem: a symlink the agent planted in
//! `/workspace` pointing at a host path leads to whatever the sandbox has there (usually
//! nothing), never to the host file. This is why the coordinator does not open workspace
//! paths itself (DESIGN.md, "Workspaces and the trust boundary").

use crate::ExecOutput;
use crate::ExecRequest;
use crate::Result;
use crate::SandboxError;

/// What is at a path inside the sandbox (symlinks followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Nothing, or a symlink to nothing.
    Missing,
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// Something else: a device, FIFO or socket.
    Other,
}

// Exit codes the scripts use for answers; 1 and 2 stay free for bwrap's and the shell's
// own failures, which become `Failed` with their stderr.
const EXIT_MISSING: i32 = 3;
const EXIT_DIRECTORY: i32 = 4;
const EXIT_NOT_REGULAR: i32 = 5;

// `$1` path, `$2` how many bytes to read at most. The redirect opens the file in the
// shell, so a path starting with `-` is never taken for an option.
const READ_SCRIPT: &str = r#"[ -e "$1" ] || exit 3
[ -d "$1" ] && exit 4
[ -f "$1" ] || exit 5
exec head -c "$2" < "$1""#;

// As READ_SCRIPT, refusing a symlink rather than following it.
const DOWNLOAD_SCRIPT: &str = r#"[ -L "$1" ] && exit 5
[ -e "$1" ] || exit 3
[ -d "$1" ] && exit 4
[ -f "$1" ] || exit 5
exec head -c "$2" < "$1""#;

// `$1` path, `$2` its parent directory; the contents arrive on stdin.
const WRITE_SCRIPT: &str = r#"[ -d "$1" ] && exit 4
mkdir -p -- "$2" || exit 1
exec cat > "$1""#;

const KIND_SCRIPT: &str = r#"if [ -d "$1" ]; then echo d
elif [ -f "$1" ]; then echo f
elif [ -e "$1" ]; then echo o
else echo m
fi"#;

// Room for a helper's stderr and small answers.
const SMALL_CAP: usize = 64 * 1024;

/// Reads the regular file at `path`, at most `max` bytes and one more: getting that
/// one is how [`read_answer`] knows the file is too large, without reading the rest.
pub(crate) fn read_request(path: &str, max: usize) -> ExecRequest {
    capped_read(READ_SCRIPT, path, max)
}

/// As [`read_request`], refusing a symlink at `path`; [`read_answer`] reads the answer.
pub(crate) fn download_request(path: &str, max: usize) -> ExecRequest {
    capped_read(DOWNLOAD_SCRIPT, path, max)
}

fn capped_read(script: &str, path: &str, max: usize) -> ExecRequest {
    let want = u64::try_from(max)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
        .min(i64::MAX as u64);
    let cap = usize::try_from(want).unwrap_or(usize::MAX);
    request(script, &[path, &want.to_string()], None, cap)
}

/// The file's contents, or why [`read_request`] got none.
pub(crate) fn read_answer(path: &str, max: usize, out: ExecOutput) -> Result<Vec<u8>> {
    let what = || format!("reading {path}");
    match out.exit_code {
        Some(0) if out.stdout.len() > max || out.dropped_bytes > 0 => Err(SandboxError::TooLarge {
            path: path.to_owned(),
            limit: max,
        }),
        Some(0) => Ok(out.stdout),
        Some(EXIT_MISSING) => Err(SandboxError::NotFound {
            path: path.to_owned(),
        }),
        Some(EXIT_DIRECTORY) => Err(SandboxError::IsDirectory {
            path: path.to_owned(),
        }),
        Some(EXIT_NOT_REGULAR) => Err(SandboxError::Failed {
            what: what(),
            message: "not a regular file".to_owned(),
        }),
        _ => Err(failed(what(), &out)),
    }
}

/// Creates or replaces the file at `path` with `data`, creating parent directories.
pub(crate) fn write_request(path: &str, data: &[u8]) -> ExecRequest {
    let parent = parent_dir(path);
    request(
        WRITE_SCRIPT,
        &[path, parent],
        Some(data.to_vec()),
        SMALL_CAP,
    )
}

/// Whether [`write_request`] wrote the file.
pub(crate) fn write_answer(path: &str, out: ExecOutput) -> Result<()> {
    match out.exit_code {
        Some(0) => Ok(()),
        Some(EXIT_DIRECTORY) => Err(SandboxError::IsDirectory {
            path: path.to_owned(),
        }),
        _ => Err(failed(format!("writing {path}"), &out)),
    }
}

/// Asks what is at `path`.
pub(crate) fn kind_request(path: &str) -> ExecRequest {
    request(KIND_SCRIPT, &[path], None, SMALL_CAP)
}

/// What [`kind_request`] found.
pub(crate) fn kind_answer(path: &str, out: ExecOutput) -> Result<FileKind> {
    let kind = match (out.exit_code, out.stdout.as_slice()) {
        (Some(0), b"d\n") => FileKind::Directory,
        (Some(0), b"f\n") => FileKind::File,
        (Some(0), b"o\n") => FileKind::Other,
        (Some(0), b"m\n") => FileKind::Missing,
        _ => return Err(failed(format!("inspecting {path}"), &out)),
    };
    Ok(kind)
}

/// `script` under `sh -c` with `args` as `$1`, `$2`, ….
fn request(script: &str, args: &[&str], stdin: Option<Vec<u8>>, output_cap: usize) -> ExecRequest {
    let argv = ["sh", "-c", script, "sh"]
        .into_iter()
        .chain(args.iter().copied());
    let mut req = ExecRequest::new(argv);
    req.stdin = stdin;
    req.output_cap = output_cap;
    req
}

/// A `Failed` error carrying what the helper said.
fn failed(what: String, out: &ExecOutput) -> SandboxError {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let message = if out.timed_out {
        "timed out".to_owned()
    } else if !stderr.is_empty() {
        stderr
    } else {
        match out.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "killed".to_owned(),
        }
    };
    SandboxError::Failed { what, message }
}

/// The directory `path` would be created in: `.` for a bare name.
fn parent_dir(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::parent_dir;

    #[test]
    fn parent_dir_of_paths() {
        assert_eq!(parent_dir("/workspace/a/b.txt"), "/workspace/a");
        assert_eq!(parent_dir("/a"), "/");
        assert_eq!(parent_dir("b.txt"), ".");
        assert_eq!(parent_dir("src/lib.rs"), "src");
        assert_eq!(parent_dir("/workspace/dir/"), "/workspace");
    }
}
