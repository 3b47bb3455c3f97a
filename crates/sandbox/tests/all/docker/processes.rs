//! Processes in a docker container: the working directory an exec needs, and the
//! init that kill_all must spare.

use std::sync::Arc;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;

use super::DockerHost;
use super::processes_matching;
use crate::conformance::wait_for_process;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_missing_working_directory_is_an_error_naming_it() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    let mut req = ExecRequest::new(["pwd"]);
    req.cwd = Some("/nowhere".to_owned());
    let err = sb.exec(req, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, SandboxError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("/nowhere"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_kill_all_spares_the_init_and_its_sleep() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    let running = tokio::spawn({
        let sb = Arc::clone(&sb);
        async move { exec(&*sb, ExecRequest::new(["sleep", "600"])).await }
    });
    wait_for_process(&host, &*sb, "sleep 600").await;

    tokio::time::timeout(LIMIT, sb.kill_all())
        .await
        .unwrap()
        .unwrap();
    let out = tokio::time::timeout(LIMIT, running).await.unwrap().unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out);
    // The container lives on: its init's only child, the `sleep`, survived.
    assert_eq!(processes_matching(&*sb, ": sleep infinity").await.len(), 1);
    assert_eq!(text(&sh(&*sb, "echo again").await.stdout), "again\n");
}
