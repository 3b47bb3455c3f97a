//! Container names and labels, re-attaching after a restart, and the warm pool.

use std::sync::Arc;

use bollard::query_parameters::StopContainerOptions;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::OutputStream;
use dockhand_sandbox::SandboxInfo;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::docker::LABEL_COORDINATOR;
use dockhand_sandbox::docker::LABEL_POOL;
use dockhand_sandbox::docker::LABEL_TASK;

use super::DockerHost;
use super::processes_matching;
use crate::conformance::wait_for_process;
use crate::harness::LIMIT;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_containers_are_named_and_labelled_for_their_task() {
    let host = DockerHost::new().await;
    let provider = &host.provider;
    let t1 = provider
        .create(host.spec("t1", NetworkLevel::None))
        .await
        .unwrap();
    let t2 = provider
        .create(host.spec("t2", NetworkLevel::Open))
        .await
        .unwrap();
    let info = t1.info();
    assert_eq!(info.id.len(), 64, "a full container id: {}", info.id);

    let all = provider.list_all().await.unwrap();
    let mine = all.iter().find(|c| c.id == info.id).unwrap();
    assert_eq!(mine.state, "running");
    assert!(mine.name.starts_with("dockhand-t1-"), "{}", mine.name);
    assert_eq!(mine.labels[LABEL_COORDINATOR], host.config.coordinator_id);
    assert_eq!(mine.labels[LABEL_TASK], "t1");

    // Removing a gone container, or one still running, is fine.
    t1.destroy().await.unwrap();
    provider.remove(&info.id).await.unwrap();
    provider.remove(&t2.info().id).await.unwrap();
    assert_eq!(provider.list().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_attach_after_a_restart_kills_leftovers() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    let id = sb.info().id;

    // A command that was running when the coordinator died.
    let interrupted = tokio::spawn({
        let sb = Arc::clone(&sb);
        async move {
            let mut req = ExecRequest::new(["sleep", "1000.555"]);
            req.timeout = LIMIT * 10;
            sb.exec(req, &mut |_: OutputStream, _: &[u8]| {}).await
        }
    });
    wait_for_process(&host, &*sb, "1000.555").await;

    let restarted = host.restarted_provider().await;
    assert_eq!(
        restarted.list().await.unwrap(),
        vec![SandboxInfo {
            backend: "docker".to_owned(),
            id: id.clone(),
            task_id: Some("t1".to_owned()),
        }]
    );
    let again = restarted
        .attach(&id, host.spec("t1", NetworkLevel::None))
        .await
        .unwrap()
        .expect("the container still exists");
    assert_eq!(again.info().id, id);
    assert_eq!(
        processes_matching(&*again, "1000.555").await,
        Vec::<String>::new()
    );
    assert_eq!(text(&sh(&*again, "echo hi").await.stdout), "hi\n");
    let out = tokio::time::timeout(LIMIT, interrupted)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(out.exit_code, Some(0));

    // A stopped container is started again.
    host.docker
        .stop_container(&id, None::<StopContainerOptions>)
        .await
        .unwrap();
    let again = restarted
        .attach(&id, host.spec("t1", NetworkLevel::None))
        .await
        .unwrap()
        .expect("a stopped container still exists");
    assert_eq!(text(&sh(&*again, "echo up").await.stdout), "up\n");

    // Another coordinator's container, and a removed one, are not attached.
    let mut stranger_config = host.config.clone();
    stranger_config.coordinator_id = format!("{}-other", host.config.coordinator_id);
    let stranger = dockhand_sandbox::docker::DockerProvider::connect(stranger_config)
        .await
        .unwrap();
    assert!(
        stranger
            .attach(&id, host.spec("t1", NetworkLevel::None))
            .await
            .unwrap()
            .is_none()
    );
    again.destroy().await.unwrap();
    assert!(
        restarted
            .attach(&id, host.spec("t1", NetworkLevel::None))
            .await
            .unwrap()
            .is_none()
    );
}

/// This host's containers waiting in the warm pool, by container id.
async fn pool_containers(host: &DockerHost) -> Vec<dockhand_sandbox::docker::DockerContainer> {
    let mine = Some(&host.config.coordinator_id);
    let all = host.provider.list_all().await.unwrap();
    all.into_iter()
        .filter(|c| c.labels.get(LABEL_COORDINATOR) == mine && c.labels.contains_key(LABEL_POOL))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_warm_pool_hands_out_started_containers() {
    let pool_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let host = DockerHost::with(|c| {
        c.pool_size = 2;
        c.pool_dir = Some(pool_dir.path().to_path_buf());
    })
    .await;
    let provider = &host.provider;
    let pool = provider.warm_pool().expect("a pool is configured");
    pool.fill().await;
    assert_eq!(pool.ready(), 2);
    let pooled = pool_containers(&host).await;
    assert_eq!(pooled.len(), 2);
    assert!(pooled.iter().all(|c| c.state == "running"));
    assert!(pooled.iter().all(|c| !c.labels.contains_key(LABEL_TASK)));
    assert_ne!(pooled[0].labels[LABEL_POOL], pooled[1].labels[LABEL_POOL]);
    // Waiting containers are the pool's, not sandboxes a janitor may remove.
    assert_eq!(provider.list().await.unwrap(), vec![]);
    // A full pool starts nothing more.
    pool.fill().await;
    assert_eq!(pool_containers(&host).await.len(), 2);

    let warm = pool.take("t9").await.expect("the pool is filled");
    assert_eq!(pool.ready(), 1);
    let sb = warm.sandbox.clone();
    assert_eq!(sb.info().task_id.as_deref(), Some("t9"));
    let mut wanted = host.spec("t9", NetworkLevel::Allowlist);
    wanted.workspace = warm.workspace.clone();
    wanted.env.clear();
    assert!(warm.fits(&wanted));
    wanted.env = vec![("A".into(), "1".into())];
    assert!(!warm.fits(&wanted), "variables are fixed at start");
    wanted.env.clear();
    wanted.image = Some(host.config.image.clone());
    assert!(!warm.fits(&wanted), "a named image is not the pool's");
    sh(&*sb, "echo pooled > /workspace/a.txt").await;
    assert_eq!(
        std::fs::read_to_string(warm.workspace.join("a.txt")).unwrap(),
        "pooled\n"
    );
    // Pool containers get the operator's default level: `allowlist`, no interface.
    let out = sh(&*sb, "ls /sys/class/net").await;
    assert_eq!(text(&out.stdout), "lo\n");

    // A replacement is labelled for the task it now serves.
    sb.replace().await.unwrap();
    let replaced = provider
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.id == sb.info().id)
        .unwrap();
    assert_eq!(replaced.task_id.as_deref(), Some("t9"));

    // A waiting container that stopped is not handed out; it and its workspace go.
    let stopped = pool_containers(&host)
        .await
        .into_iter()
        .find(|c| c.id != warm.sandbox.info().id)
        .unwrap();
    host.docker
        .stop_container(&stopped.id, None::<StopContainerOptions>)
        .await
        .unwrap();
    assert!(pool.take("t10").await.is_none());
    assert!(
        pool_containers(&host)
            .await
            .iter()
            .all(|c| c.id != stopped.id)
    );
    let left: Vec<_> = std::fs::read_dir(pool_dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the taken slot's workspace: {left:?}");

    // Draining removes the waiting containers and their workspaces.
    pool.fill().await;
    assert_eq!(pool.ready(), 2);
    pool.drain().await;
    assert_eq!(pool.ready(), 0);
    assert_eq!(pool_containers(&host).await.len(), 0);
    let left: Vec<_> = std::fs::read_dir(pool_dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_without_a_pool_dir_has_no_warm_pool() {
    let host = DockerHost::with(|c| c.pool_size = 3).await;
    assert!(host.provider.warm_pool().is_none());
    assert!(host.provider.keeps_finished());
    assert_eq!(host.provider.noun(), "container");
}
