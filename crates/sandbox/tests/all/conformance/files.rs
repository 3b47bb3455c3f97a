//! read_file, write_file and file_kind, including symlinks planted to reach the host.

use std::os::unix::fs::MetadataExt;

use dockhand_sandbox::FileKind;
use dockhand_sandbox::SandboxError;

use super::Fixture;
use super::sandbox;
use crate::harness::sh;
use crate::harness::text;

pub(crate) async fn files_round_trip_through_the_workspace<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let ws = fx.workspace("t1");

    let out = sh(&*sb, "echo from-sandbox > /workspace/made.txt").await;
    assert_eq!(out.exit_code, Some(0));
    let made = ws.join("made.txt");
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "from-sandbox\n");
    // On the host it belongs to the uid the workspace does: the sandbox user's.
    let owner = fx
        .provider()
        .workspace_owner()
        .unwrap_or_else(|| rustix::process::geteuid().as_raw());
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), owner);

    sb.write_file("/workspace/deep/er/notes.txt", b"one\ntwo\n")
        .await
        .unwrap();
    sb.write_file("deep/er/notes.txt", b"replaced")
        .await
        .unwrap();
    let on_host = std::fs::read(ws.join("deep/er/notes.txt")).unwrap();
    assert_eq!(on_host, b"replaced");
    let back = sb
        .read_file("/workspace/deep/er/notes.txt", 8)
        .await
        .unwrap();
    assert_eq!(back, b"replaced");
    assert_eq!(
        sb.read_file("/workspace/made.txt", 100).await.unwrap(),
        b"from-sandbox\n"
    );

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

pub(crate) async fn files_refuses_what_it_should<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    std::fs::write(fx.workspace("t1").join("hundred"), [b'a'; 100]).unwrap();

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

pub(crate) async fn files_symlinks_resolve_inside_the_sandbox<F: Fixture>(fx: &F) {
    let secret = fx.host_dir().join("host-secret");
    std::fs::write(&secret, "host-secret-canary").unwrap();
    let ws = fx.workspace("t1");
    std::os::unix::fs::symlink(&secret, ws.join("token")).unwrap();
    std::os::unix::fs::symlink(fx.host_dir(), ws.join("hostdir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.join("passwd")).unwrap();
    let sb = sandbox(fx).await;

    let err = sb.read_file("/workspace/token", 1 << 20).await.unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");
    assert_eq!(
        sb.file_kind("/workspace/token").await.unwrap(),
        FileKind::Missing
    );
    let err = sb
        .read_file("/workspace/hostdir/host-secret", 1 << 20)
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");

    assert!(
        sb.write_file("/workspace/token", b"overwritten")
            .await
            .is_err()
    );
    assert!(
        sb.write_file("/workspace/hostdir/host-secret", b"overwritten")
            .await
            .is_err()
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "host-secret-canary"
    );

    // A link to a path the sandbox does have leads to the sandbox's file, not the
    // host's.
    let through_link = text(&sb.read_file("/workspace/passwd", 1 << 20).await.unwrap());
    let inside = text(&sh(&*sb, "cat /etc/passwd").await.stdout);
    assert_eq!(through_link, inside);
    assert!(
        through_link.contains("agent:x:1000:1000:"),
        "{through_link}"
    );
    assert_ne!(
        through_link,
        std::fs::read_to_string("/etc/passwd").unwrap()
    );
}

pub(crate) async fn bundles_go_in_and_come_back_whole<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    // Every byte value, and more than one pipe or tar block.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    sh(&*sb, "mkdir -p /workspace/in").await;
    sb.write_file("/workspace/in/seed.bundle", &data)
        .await
        .unwrap();
    let out = sh(
        &*sb,
        "cksum < /workspace/in/seed.bundle; wc -c < /workspace/in/seed.bundle",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    let wc = text(&out.stdout);
    assert!(wc.ends_with(&format!("\n{}\n", data.len())), "{wc}");
    // The sandbox user can read it, and replace it with its own.
    let out = sh(
        &*sb,
        "cp /workspace/in/seed.bundle /workspace/out.bundle && echo done",
    )
    .await;
    assert_eq!(text(&out.stdout), "done\n", "{}", text(&out.stderr));
    let back = sb
        .download("/workspace/out.bundle", data.len())
        .await
        .unwrap();
    assert!(back == data, "the bundle came back changed");

    assert!(matches!(
        sb.download("/workspace/out.bundle", data.len() - 1).await,
        Err(SandboxError::TooLarge { .. })
    ));
    assert!(matches!(
        sb.download("/workspace/none.bundle", 10).await,
        Err(SandboxError::NotFound { .. })
    ));
    assert!(matches!(
        sb.download("/workspace/in", 10).await,
        Err(SandboxError::IsDirectory { .. })
    ));
    // A symlink is refused, never followed, wherever it points.
    sh(
        &*sb,
        "ln -s /etc/passwd /workspace/link.bundle; ln -s out.bundle /workspace/near.bundle",
    )
    .await;
    for link in ["/workspace/link.bundle", "/workspace/near.bundle"] {
        let err = sb.download(link, 1 << 20).await.unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{link}: {err}");
    }
}
