//! read_file, write_file and file_kind, including symlinks planted to reach the host.

use dockhand_sandbox::FileKind;
use dockhand_sandbox::SandboxError;

use crate::harness::ADMIN_TOKEN;
use crate::harness::Host;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_through_the_workspace() {
    let host = Host::new();
    let sb = host.sandbox(false).await;

    let out = sh(&*sb, "echo from-sandbox > /workspace/made.txt").await;
    assert_eq!(out.exit_code, Some(0));
    let on_host = std::fs::read_to_string(host.workspace("t1").join("made.txt")).unwrap();
    assert_eq!(on_host, "from-sandbox\n");

    sb.write_file("/workspace/deep/er/notes.txt", b"one\ntwo\n")
        .await
        .unwrap();
    sb.write_file("deep/er/notes.txt", b"replaced")
        .await
        .unwrap();
    let on_host = std::fs::read(host.workspace("t1").join("deep/er/notes.txt")).unwrap();
    assert_eq!(on_host, b"replaced");
    let back = sb
        .read_file("/workspace/deep/er/notes.txt", 8)
        .await
        .unwrap();
    assert_eq!(back, b"replaced");

    assert_eq!(
        sb.file_kind("/workspace/deep").await.unwrap(),
        FileKind::Directory
    );
    assert_eq!(
        sb.file_kind("deep/er/notes.txt").await.unwrap(),
        FileKind::File
    );
    assert_eq!(sb.file_kind("/dev/null").await.unwrap(), FileKind::Other);
    assert_eq!(
        sb.file_kind("/workspace/nope").await.unwrap(),
        FileKind::Missing
    );
    // A path that looks like an option is still a path.
    sb.write_file("-n", b"dash").await.unwrap();
    assert_eq!(sb.read_file("-n", 100).await.unwrap(), b"dash");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_file_refuses_what_it_should() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    std::fs::write(host.workspace("t1").join("hundred"), [b'a'; 100]).unwrap();

    let err = sb.read_file("/workspace/missing", 10).await.unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "reading /workspace/missing: no such file");

    let err = sb.read_file("/workspace", 10).await.unwrap_err();
    assert!(matches!(err, SandboxError::IsDirectory { .. }), "{err:?}");
    let err = sb.write_file("/workspace", b"x").await.unwrap_err();
    assert!(matches!(err, SandboxError::IsDirectory { .. }), "{err:?}");

    let err = sb.read_file("/workspace/hundred", 99).await.unwrap_err();
    assert!(
        matches!(err, SandboxError::TooLarge { limit: 99, .. }),
        "{err:?}"
    );
    assert_eq!(
        sb.read_file("/workspace/hundred", 100).await.unwrap().len(),
        100
    );

    let err = sb.write_file("/usr/planted", b"x").await.unwrap_err();
    assert!(matches!(err, SandboxError::Failed { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("writing /usr/planted: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_resolve_inside_the_sandbox() {
    let host = Host::new();
    let ws = host.workspace("t1");
    std::os::unix::fs::symlink(host.admin_token(), ws.join("token")).unwrap();
    std::os::unix::fs::symlink(&host.data, ws.join("datadir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.join("passwd")).unwrap();
    let sb = host.sandbox(false).await;

    let err = sb.read_file("/workspace/token", 1 << 20).await.unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");
    assert_eq!(
        sb.file_kind("/workspace/token").await.unwrap(),
        FileKind::Missing
    );
    let err = sb
        .read_file("/workspace/datadir/admin-token", 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");

    assert!(
        sb.write_file("/workspace/token", b"overwritten")
            .await
            .is_err()
    );
    assert!(
        sb.write_file("/workspace/datadir/admin-token", b"overwritten")
            .await
            .is_err()
    );
    assert_eq!(
        std::fs::read_to_string(host.admin_token()).unwrap(),
        ADMIN_TOKEN
    );

    // A link to a path the sandbox does have leads to the sandbox's file: the
    // generated passwd, not the host's.
    let passwd = text(&sb.read_file("/workspace/passwd", 1 << 20).await.unwrap());
    assert!(
        passwd.contains("agent:x:1000:1000::/tmp:/bin/bash"),
        "{passwd}"
    );
}
