use super::BLOCK;
use super::Entry;
use super::tar;

#[test]
fn gnu_tar_reads_it_back() {
    let archive = tar(&[
        Entry::Dir {
            path: ".dockhand",
            mode: 0o755,
        },
        Entry::File {
            path: ".dockhand/helper",
            mode: 0o755,
            data: b"#!/bin/sh\necho hi\n",
        },
    ]);
    assert_eq!(archive.len() % BLOCK, 0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.tar");
    std::fs::write(&file, &archive).unwrap();
    let out = std::process::Command::new("tar")
        .args(["-tvf", file.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("drwxr-xr-x root/root") || listing.contains("drwxr-xr-x 0/0"),
        "{listing}"
    );
    assert!(listing.contains(".dockhand/helper"), "{listing}");
    assert!(listing.contains("-rwxr-xr-x"), "{listing}");
    let out = std::process::Command::new("tar")
        .args(["-xOf", file.to_str().unwrap(), ".dockhand/helper"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"#!/bin/sh\necho hi\n");
}
