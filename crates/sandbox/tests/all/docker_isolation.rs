//! What a docker sandbox can and cannot reach.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;

use crate::docker_harness::DockerHost;
use crate::docker_harness::require_docker;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_commands_run_as_uid_1000_without_privileges() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;
    let out = sh(
        &*sb,
        "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status",
    )
    .await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "1000\n1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t0000000000000000\nNoNewPrivs:\t1\n"
    );
    // PID 1 is Docker's init, not a shell the agent could talk to.
    let out = sh(&*sb, "tr '\\0' ' ' < /proc/1/cmdline").await;
    assert!(text(&out.stdout).contains("init"), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_workspace_is_the_hosts_directory() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;
    let out = sh(&*sb, "pwd; echo from-sandbox > /workspace/made.txt").await;
    assert_eq!(text(&out.stdout), "/workspace\n");
    let made = host.workspace("t1").join("made.txt");
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "from-sandbox\n");
    // Owned by the sandbox user on the host too: no user-namespace remapping.
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), 1000);

    // The file operations are execs inside the container.
    sb.write_file("/workspace/dir/b.txt", b"bytes")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(host.workspace("t1").join("dir/b.txt")).unwrap(),
        b"bytes"
    );
    assert_eq!(
        sb.read_file("/workspace/made.txt", 100).await.unwrap(),
        b"from-sandbox\n"
    );
    let err = sb.read_file("/workspace/nothing", 100).await.unwrap_err();
    assert!(matches!(err, SandboxError::NotFound { .. }), "{err:?}");
    // HOME is the writable tmpfs.
    let out = sh(&*sb, "echo $HOME; touch $HOME/x && echo ok").await;
    assert_eq!(text(&out.stdout), "/tmp\nok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_socket_and_host_paths_are_absent() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(true).await;
    for path in ["/var/run/docker.sock", "/run/docker.sock"] {
        let out = exec(&*sb, ExecRequest::new(["test", "-e", path])).await;
        assert_eq!(out.exit_code, Some(1), "{path} exists in the sandbox");
    }
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
async fn docker_network_is_off_unless_allowed() {
    let host = DockerHost::new().await;
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The host as the bridge network sees it: the default gateway of a container on it.
    let on = host.provider.create(host.spec("t2", true)).await.unwrap();
    let routes = text(&sh(&*on, "cat /proc/net/route").await.stdout);
    let gateway = default_gateway(&routes).expect(&routes);
    let connect = format!("echo hi > /dev/tcp/{gateway}/{port} && echo connected");

    let off = host.sandbox(false).await;
    let mut req = ExecRequest::new(["bash", "-c", &connect]);
    req.timeout = LIMIT;
    let out = exec(&*off, req.clone()).await;
    assert_ne!(out.exit_code, Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );

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
    let mut spec = host.spec("t1", false);
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
        .create(host.spec("t1", false))
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
