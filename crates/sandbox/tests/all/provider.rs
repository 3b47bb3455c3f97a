//! Making, listing, attaching and checking sandboxes.

use std::path::PathBuf;

use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;

use crate::harness::Host;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn provider_lists_attaches_and_destroys() {
    let host = Host::new();
    let provider = &host.provider;
    assert_eq!(provider.backend(), "local");
    let sb = provider.create(host.spec("t1", false)).await.unwrap();
    let info = sb.info();
    assert_eq!(info.id, "local-t1");
    assert_eq!(info.task_id.as_deref(), Some("t1"));
    assert_eq!(provider.list().await.unwrap(), vec![info.clone()]);

    let again = provider
        .attach("local-t1", host.spec("t1", false))
        .await
        .unwrap()
        .expect("the workspace still exists");
    assert_eq!(text(&sh(&*again, "echo hi").await.stdout), "hi\n");
    assert!(
        provider
            .attach("local-t2", host.spec("t1", false))
            .await
            .unwrap()
            .is_none()
    );
    let mut gone = host.spec("t3", false);
    gone.workspace = host.data.join("workspaces/t3");
    assert!(provider.attach("local-t3", gone).await.unwrap().is_none());

    again.destroy().await.unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_the_version() {
    let host = Host::new();
    let version = host.provider.check().await.unwrap();
    assert!(version.starts_with("bubblewrap "), "{version}");
}

#[test]
fn missing_bubblewrap_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalConfig::new(dir.path().join("state"));
    config.bwrap = PathBuf::from("no-such-bwrap-binary");
    let err = LocalProvider::new(config).err().expect("no such program");
    assert!(matches!(err, SandboxError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("apt-get install bubblewrap"),
        "{err}"
    );
}
