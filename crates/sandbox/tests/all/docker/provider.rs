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
    provider.remove_container(&info.id).await.unwrap();
    provider.remove_container(&t2.info().id).await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn docker_warm_pool_hands_out_started_containers() {
    let host = DockerHost::new().await;
    let provider = &host.provider;
    provider
        .fill_pool(vec![
            ("p1".to_owned(), host.workspace("p1")),
            ("p2".to_owned(), host.workspace("p2")),
        ])
        .await
        .unwrap();
    let pooled: Vec<_> = provider
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.labels.get(LABEL_COORDINATOR) == Some(&host.config.coordinator_id))
        .collect();
    assert_eq!(pooled.len(), 2);
    assert!(pooled.iter().all(|c| c.state == "running"));
    let mut slots: Vec<&str> = pooled
        .iter()
        .map(|c| c.labels[LABEL_POOL].as_str())
        .collect();
    slots.sort();
    assert_eq!(slots, ["p1", "p2"]);
    assert!(pooled.iter().all(|c| !c.labels.contains_key(LABEL_TASK)));

    let sb = provider
        .take_pool("p1", "t9")
        .await
        .expect("slot p1 is filled");
    assert_eq!(sb.info().task_id.as_deref(), Some("t9"));
    assert!(provider.take_pool("p1", "t10").await.is_none());
    assert!(provider.take_pool("nope", "t10").await.is_none());
    sh(&*sb, "echo pooled > /workspace/a.txt").await;
    assert_eq!(
        std::fs::read_to_string(host.workspace("p1").join("a.txt")).unwrap(),
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
}
