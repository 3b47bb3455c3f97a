use super::BLOCK;
use super::Entry;
use super::NotAFile;
use super::first_entry;
use super::only_file;
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

fn gnu_tar(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--format=pax", "-cf", "-"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn only_file_reads_one_file_and_refuses_links_and_directories() {
    let data = b"bundle bytes".repeat(100);
    let ours = tar(&[Entry::File {
        path: "b.bundle",
        mode: 0o644,
        data: &data,
    }]);
    assert_eq!(only_file(&ours).unwrap(), &data[..]);

    let dir = tempfile::tempdir().unwrap();
    let long = "n".repeat(150);
    std::fs::write(dir.path().join(&long), &data).unwrap();
    // A long name comes with a PAX header first.
    assert_eq!(
        only_file(&gnu_tar(dir.path(), &[&long])).unwrap(),
        &data[..]
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
    assert_eq!(
        only_file(&gnu_tar(dir.path(), &["link"])),
        Err(NotAFile::Symlink)
    );
    std::fs::create_dir(dir.path().join("d")).unwrap();
    assert_eq!(
        only_file(&gnu_tar(dir.path(), &["d"])),
        Err(NotAFile::Directory)
    );
    assert_eq!(only_file(&ours[..BLOCK + 10]), Err(NotAFile::Truncated));
    // The first header decides, before the body has arrived.
    assert_eq!(first_entry(&ours[..100]), Ok(None));
    assert_eq!(first_entry(&ours[..BLOCK]), Ok(Some((BLOCK, data.len()))));
    let dir_tar = tar(&[Entry::Dir {
        path: "d",
        mode: 0o755,
    }]);
    assert_eq!(first_entry(&dir_tar[..BLOCK]), Err(NotAFile::Directory));
    assert_eq!(only_file(&[]), Err(NotAFile::Truncated));
}
