//! Local sandbox ids, checking the host, and a killed coordinator's leftovers.

use std::path::PathBuf;
use std::process::Command;

use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::local::LocalConfig;
use dockhand_sandbox::local::LocalProvider;

use super::Host;
use crate::conformance::spec;

#[tokio::test(flavor = "multi_thread")]
async fn ids_name_the_task_and_attach_needs_its_workspace() {
    let host = Host::new();
    let provider = &host.provider;
    let sb = provider
        .create(spec(&host, "t1", NetworkLevel::None))
        .await
        .unwrap();
    assert_eq!(sb.info().id, "local-t1");
    // Another task's id, or a workspace that is gone, finds nothing.
    assert!(
        provider
            .attach("local-t2", spec(&host, "t1", NetworkLevel::None))
            .await
            .unwrap()
            .is_none()
    );
    let mut gone = spec(&host, "t1", NetworkLevel::None);
    gone.task_id = "t3".to_owned();
    gone.workspace = host.data.join("workspaces/t3");
    assert!(provider.attach("local-t3", gone).await.unwrap().is_none());
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

#[test]
fn a_killed_coordinators_runtime_goes_and_its_workspaces_stay() {
    use rustix::fs::FlockOperation;
    let host = Host::new();
    assert!(
        rustix::process::geteuid().is_root(),
        "the local sandbox tests run as root, as CI does"
    );
    // What a coordinator killed mid-task leaves: its runtime directory, with a
    // workspace still bound in it. Locked while it is set up, as a live one is.
    let stale =
        std::path::Path::new("/run/dockhand").join(format!("{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(stale.join("ws/0")).unwrap();
    std::fs::create_dir_all(stale.join("etc")).unwrap();
    std::fs::write(stale.join("etc/passwd"), "x").unwrap();
    let lock = std::fs::File::create(stale.join("lock")).unwrap();
    rustix::fs::flock(&lock, FlockOperation::LockExclusive).unwrap();
    let bound = Command::new("mount")
        .arg("--bind")
        .arg(host.workspace("t2"))
        .arg(stale.join("ws/0"))
        .status()
        .unwrap();
    assert!(bound.success());
    assert!(stale.join("ws/0/secret.txt").exists());

    // While its lock is held, a coordinator starting leaves it alone.
    let _live = LocalProvider::new(LocalConfig::new(host.data.join("state-live"))).unwrap();
    assert!(stale.join("ws/0/secret.txt").exists());

    drop(lock);
    let _next = LocalProvider::new(LocalConfig::new(host.data.join("state-next"))).unwrap();
    assert!(!stale.exists(), "the stale runtime directory is removed");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(stale.to_str().unwrap()), "{mounts}");
    assert_eq!(
        std::fs::read_to_string(host.workspace("t2").join("secret.txt")).unwrap(),
        "other task",
        "the workspace that was bound there is untouched"
    );
}
