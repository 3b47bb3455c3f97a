//! A minimal tar writer for the Engine API's archive upload: directories and
//! regular files with fixed owners and modes, which is all Dockhand puts into a
//! container.

const BLOCK: usize = 512;

/// One entry of an archive.
pub(crate) enum Entry<'a> {
    /// A directory (path without a trailing slash).
    Dir { path: &'a str, mode: u32 },
    /// A regular file.
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
}

fn octal(field: &mut [u8], value: u64) {
    // `len - 1` digits, then NUL.
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(text);
    field[digits] = 0;
}

fn header(path: &str, mode: u32, size: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = path.as_bytes();
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0); // uid: root
    octal(&mut h[116..124], 0); // gid: root
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0); // mtime
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// The archive of `entries`, owned by root. Paths are relative and at most 100
/// bytes (Dockhand's own fixed paths).
pub(crate) fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Entry::Dir { path, mode } => out.extend_from_slice(&header(path, *mode, 0, b'5')),
            Entry::File { path, mode, data } => {
                out.extend_from_slice(&header(path, *mode, data.len() as u64, b'0'));
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
            }
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
