//! The process limit in a docker sandbox, and recovering a broken one by replacing
//! its container.

use std::time::Duration;

use bollard::query_parameters::KillContainerOptions;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::LimitMarks;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::SandboxProvider;

use super::DockerHost;
use super::processes_matching;
use crate::harness::LIMIT;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_fork_bomb_hits_the_pid_limit_and_the_sandbox_recovers() {
    let host = DockerHost::with(|c| c.pool_limits.pids = 64).await;
    let sb = host.sandbox(NetworkLevel::None).await;
    sb.write_file("/workspace/kept.txt", b"kept").await.unwrap();
    let before = sb.limit_marks().await;

    // The bomb's first shell returns at once and leaves the bomb running in the
    // background, holding the container's PID limit full.
    let bomb = "timeout 20 bash -c ':(){ :|:& };:' >/dev/null 2>&1; echo launched";
    let mut req = ExecRequest::new(["sh", "-c", bomb]);
    req.timeout = Duration::from_secs(10);
    let launched = match sb.exec(req, &mut |_, _| {}).await {
        Ok(out) => out,
        Err(e) => panic!("launching the bomb: {e}"),
    };
    assert!(text(&launched.stdout).contains("launched"), "{launched:?}");

    let hit = tokio::time::timeout(LIMIT, async {
        loop {
            let now = sb.limit_marks().await;
            if now.pid_limit_hits > before.pid_limit_hits {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the bomb never hit the PID limit");
    let reason = sb.explain_limits(before, hit).unwrap();
    assert!(reason.contains("process limit (64 processes)"), "{reason}");

    // Cancel kills the bomb; if the sandbox could not even do that, it says Broken
    // and a replacement on the same workspace takes over.
    match sb.kill_all().await {
        Ok(()) => {}
        Err(SandboxError::Broken { reason }) => {
            eprintln!("kill_all reported Broken ({reason}); replacing");
            sb.replace().await.unwrap();
        }
        Err(e) => panic!("kill_all: {e}"),
    }
    assert_eq!(
        processes_matching(&*sb, "bash -c").await,
        Vec::<String>::new()
    );
    assert_eq!(
        text(&sh(&*sb, "echo ok; cat /workspace/kept.txt").await.stdout),
        "ok\nkept"
    );
    let settled = sb.limit_marks().await;
    assert_eq!(sb.explain_limits(settled, sb.limit_marks().await), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_replace_gives_a_fresh_container_on_the_same_workspace() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    let old = sb.info().id;
    sh(
        &*sb,
        "echo ws > /workspace/kept.txt; echo tmp > /tmp/lost.txt",
    )
    .await;
    sb.replace().await.unwrap();
    let new = sb.info().id;
    assert_ne!(old, new);
    assert_eq!(sb.info().task_id.as_deref(), Some("t1"));
    assert!(
        host.docker.inspect_container(&old, None).await.is_err(),
        "the old container still exists"
    );
    let out = sh(
        &*sb,
        "cat /workspace/kept.txt; test -e /tmp/lost.txt || echo fresh",
    )
    .await;
    assert_eq!(text(&out.stdout), "ws\nfresh\n");
    let listed: Vec<String> = host
        .provider
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![new]);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_a_lost_container_is_replaced_at_its_next_use() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(NetworkLevel::None).await;
    sb.write_file("/workspace/kept.txt", b"kept").await.unwrap();
    let lost = sb.info().id;
    host.docker
        .kill_container(&lost, None::<KillContainerOptions>)
        .await
        .unwrap();
    assert_eq!(sb.take_notice(), None, "nothing happened yet");
    let out = sb
        .exec(
            ExecRequest::new(["cat", "/workspace/kept.txt"]),
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"kept", "the command ran in a fresh container");
    assert_ne!(sb.info().id, lost);
    let notice = sb.take_notice().expect("the model is told");
    assert!(
        notice.contains(&lost[..12]) && notice.contains("replaced"),
        "{notice}"
    );
    assert_eq!(sb.take_notice(), None, "told once");
    // Counters of the new container start afresh.
    assert_eq!(sb.limit_marks().await, LimitMarks::default());

    // A shell too starts in a replacement.
    let again = sb.info().id;
    host.docker
        .kill_container(&again, None::<KillContainerOptions>)
        .await
        .unwrap();
    sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    assert_ne!(sb.info().id, again);
    assert!(sb.take_notice().is_some());
}
