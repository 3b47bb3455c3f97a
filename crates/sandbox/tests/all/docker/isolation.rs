//! What only a docker sandbox is: Docker's init, one bind mount, the `open` bridge,
//! and how a missing image, runtime or engine is named.

use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;

use super::DockerHost;
use super::require_docker;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_pid_1_is_dockers_init() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    // Not a shell the agent could talk to.
    let out = sh(&*sb, "tr '\\0' ' ' < /proc/1/cmdline").await;
    assert!(text(&out.stdout).contains("init"), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_only_the_workspace_is_mounted_from_the_host() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::Open).await;
    // The only host directory mounted in is the workspace.
    let out = sh(&*sb, "cat /proc/self/mountinfo").await;
    let mounts = text(&out.stdout);
    assert!(!mounts.contains("docker.sock"), "{mounts}");
    let binds: Vec<&str> = mounts
        .lines()
        .filter(|line| line.contains(" /workspace "))
        .collect();
    assert_eq!(binds.len(), 1, "{mounts}");
    assert!(
        !mounts.contains(host.workspace("t2").to_str().unwrap()),
        "another task's workspace is mounted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_open_reaches_the_host_through_its_bridge() {
    let host = DockerHost::new().await;
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The host as the bridge network sees it: the default gateway of a container on it.
    let on = host.sandbox(NetworkLevel::Open).await;
    let routes = text(&sh(&*on, "cat /proc/net/route").await.stdout);
    let gateway = default_gateway(&routes).expect(&routes);
    let connect = format!("echo hi > /dev/tcp/{gateway}/{port} && echo connected");
    let mut req = ExecRequest::new(["bash", "-c", &connect]);
    req.timeout = LIMIT;
    let out = exec(&*on, req).await;
    assert_eq!(text(&out.stdout), "connected\n", "{}", text(&out.stderr));
}

/// The default route's gateway in a `/proc/net/route` table (hex, little-endian).
fn default_gateway(routes: &str) -> Option<std::net::Ipv4Addr> {
    routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"00000000"))
            .then(|| u32::from_str_radix(fields.get(2)?, 16).ok())
            .flatten()
            .map(|gw| std::net::Ipv4Addr::from(gw.to_le_bytes()))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_missing_image_is_named() {
    let host = DockerHost::new().await;
    let mut spec = host.spec("t1", NetworkLevel::None);
    spec.image = Some("dockhand-sandbox:no-such-tag".to_owned());
    let err = host
        .provider
        .create(spec)
        .await
        .err()
        .expect("no such image");
    let message = err.to_string();
    assert!(matches!(err, SandboxError::Failed { .. }), "{err:?}");
    assert!(
        message.contains("creating container for task t1")
            && message.contains("image dockhand-sandbox:no-such-tag not found")
            && message.contains("dockhand image build"),
        "{message}"
    );
    assert_eq!(host.provider.list().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_unknown_runtime_is_named() {
    let host = DockerHost::with(|c| c.runtime = Some("no-such-runtime".to_owned())).await;
    let err = host
        .provider
        .create(host.spec("t1", NetworkLevel::None))
        .await
        .err()
        .expect("no such runtime");
    let message = err.to_string();
    assert!(
        message.contains("runtime no-such-runtime is not known"),
        "{message}"
    );
    let check = host.provider.check().await.unwrap();
    let runtime = check.runtime.expect("a runtime is configured");
    assert!(!runtime.ok);
    assert!(runtime.detail.contains("runc"), "{}", runtime.detail);
    assert!(runtime.fix.is_some());
    assert_eq!(host.provider.list().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_check_reports_engine_and_image() {
    let host = DockerHost::with(|c| c.runtime = Some("runc".to_owned())).await;
    let check = host.provider.check().await.unwrap();
    assert!(check.engine.contains("(API 1."), "{}", check.engine);
    assert!(check.image.ok, "{:?}", check.image);
    assert!(check.runtime.unwrap().ok);

    let mut config = host.config.clone();
    config.image = "dockhand-sandbox:no-such-tag".to_owned();
    let provider = DockerProvider::connect(config).await.unwrap();
    let check = provider.check().await.unwrap();
    assert!(!check.image.ok);
    assert!(check.image.fix.unwrap().contains("dockhand image build"));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_unreachable_engine_is_unavailable() {
    // The engine itself must be up, or this would pass for the wrong reason.
    require_docker().await;
    let mut config = DockerConfig::new("test-unreachable", "dockhand-sandbox:test");
    config.socket = Some("/nonexistent/docker.sock".to_owned());
    let err = tokio::time::timeout(Duration::from_secs(30), DockerProvider::connect(config))
        .await
        .unwrap()
        .err()
        .expect("no engine there");
    assert!(matches!(err, SandboxError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("DOCKHAND_SANDBOX=local"), "{err}");
}
