use std::collections::HashMap;
use std::path::PathBuf;

use bollard::models::ContainerCreateBody;
use bollard::models::HostConfig;

use super::Role;
use super::container_name;
use super::labels;
use super::plan;
use super::validate_spec;
use crate::Limits;
use crate::NetworkLevel;
use crate::SandboxError;
use crate::SandboxSpec;
use crate::docker::DockerConfig;

fn config() -> DockerConfig {
    DockerConfig::new("coord-1", "dockhand-sandbox:1.0")
}

fn spec(network: NetworkLevel) -> SandboxSpec {
    SandboxSpec {
        task_id: "t1".to_owned(),
        workspace: PathBuf::from("/data/workspaces/t1"),
        network,
        limits: Limits::default(),
        env: vec![("CI".to_owned(), "1".to_owned())],
        image: None,
    }
}

fn task_plan(config: &DockerConfig, spec: &SandboxSpec) -> (ContainerCreateBody, HostConfig) {
    let body = plan(
        config,
        spec,
        labels(&config.coordinator_id, &Role::Task("t1".into())),
    );
    let host = body.host_config.clone().unwrap();
    (body, host)
}

#[test]
fn drops_every_capability_and_privilege() {
    let (body, host) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.cap_add, None);
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_owned()])
    );
    assert_eq!(host.privileged, Some(false));
    assert_eq!(body.user.as_deref(), Some("1000:1000"));
    // No sharing of the host's namespaces.
    assert_eq!(host.pid_mode, None);
    assert_eq!(host.ipc_mode, None);
    assert_eq!(host.uts_mode, None);
    assert_eq!(host.userns_mode, None);
    assert_eq!(host.devices, None);
    assert_eq!(host.cgroup_parent, None);
}

#[test]
fn pid_1_is_an_init_that_sleeps() {
    let (body, host) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(host.init, Some(true));
    assert_eq!(
        body.cmd,
        Some(vec!["sleep".to_owned(), "infinity".to_owned()])
    );
    // An image's own entrypoint must not wrap the sleep.
    assert_eq!(body.entrypoint, Some(Vec::new()));
    assert_eq!(body.working_dir.as_deref(), Some("/workspace"));
    assert_eq!(host.auto_remove, Some(false));
}

#[test]
fn limits_memory_without_swap_cpu_and_pids() {
    let mut spec = spec(NetworkLevel::None);
    spec.limits = Limits {
        memory_bytes: 64 << 20,
        nano_cpus: 500_000_000,
        pids: 64,
    };
    let (_, host) = task_plan(&config(), &spec);
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(64));
}

#[test]
fn defaults_are_two_gib_two_cpus_512_pids() {
    let (_, host) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(host.memory, Some(2 << 30));
    assert_eq!(host.memory_swap, Some(2 << 30));
    assert_eq!(host.nano_cpus, Some(2_000_000_000));
    assert_eq!(host.pids_limit, Some(512));
    assert_eq!(
        host.tmpfs,
        Some(HashMap::from([(
            "/tmp".to_owned(),
            "rw,exec,nosuid,size=512m".to_owned()
        )]))
    );
}

#[test]
fn binds_only_the_workspace() {
    let (body, host) = task_plan(&config(), &spec(NetworkLevel::Open));
    assert_eq!(
        host.binds,
        Some(vec!["/data/workspaces/t1:/workspace:rw".to_owned()])
    );
    assert_eq!(host.mounts, None);
    assert_eq!(host.volumes_from, None);
    assert_eq!(body.volumes, None);
    let everything = serde_json::to_string(&body).unwrap();
    assert!(!everything.contains("docker.sock"), "{everything}");
    assert_eq!(host.readonly_rootfs, Some(false));
}

#[test]
fn only_open_gets_a_network_and_it_is_the_isolated_one() {
    for level in [NetworkLevel::None, NetworkLevel::Allowlist] {
        let (_, host) = task_plan(&config(), &spec(level));
        assert_eq!(host.network_mode.as_deref(), Some("none"), "{level}");
    }
    let (_, host) = task_plan(&config(), &spec(NetworkLevel::Open));
    assert_eq!(host.network_mode.as_deref(), Some("dockhand-open"));
}

#[test]
fn runtime_passes_through_when_configured() {
    let (_, host) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(host.runtime, None);
    let mut config = config();
    config.runtime = Some("runsc".to_owned());
    let (_, host) = task_plan(&config, &spec(NetworkLevel::None));
    assert_eq!(host.runtime.as_deref(), Some("runsc"));
}

#[test]
fn image_is_the_specs_or_the_default() {
    let (body, _) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(body.image.as_deref(), Some("dockhand-sandbox:1.0"));
    let mut spec = spec(NetworkLevel::None);
    spec.image = Some("my-toolchain:3".to_owned());
    let (body, _) = task_plan(&config(), &spec);
    assert_eq!(body.image.as_deref(), Some("my-toolchain:3"));
}

#[test]
fn environment_has_the_basics_and_the_specs() {
    let mut spec = spec(NetworkLevel::None);
    spec.env.push(("TERM".to_owned(), "xterm".to_owned()));
    let (body, _) = task_plan(&config(), &spec);
    assert_eq!(
        body.env.unwrap(),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/tmp",
            "USER=agent",
            "LANG=C.UTF-8",
            "CI=1",
            "TERM=xterm",
        ]
    );
}

#[test]
fn labels_name_the_coordinator_and_the_task_or_pool_slot() {
    let (body, _) = task_plan(&config(), &spec(NetworkLevel::None));
    assert_eq!(
        body.labels.unwrap(),
        HashMap::from([
            ("dockhand.coordinator".to_owned(), "coord-1".to_owned()),
            ("dockhand.task".to_owned(), "t1".to_owned()),
        ])
    );
    assert_eq!(
        labels("coord-1", &Role::Pool("slot-3".into())),
        HashMap::from([
            ("dockhand.coordinator".to_owned(), "coord-1".to_owned()),
            ("dockhand.pool".to_owned(), "slot-3".to_owned()),
        ])
    );
}

#[test]
fn container_names_are_docker_safe() {
    assert_eq!(
        container_name(&Role::Task("t1".into()), "ab12"),
        "dockhand-t1-ab12"
    );
    assert_eq!(
        container_name(&Role::Task("a/b c:d".into()), "ab12"),
        "dockhand-a-b-c-d-ab12"
    );
    assert_eq!(
        container_name(&Role::Pool("3".into()), "ab12"),
        "dockhand-pool-3-ab12"
    );
}

#[test]
fn rejects_workspaces_the_bind_cannot_express() {
    let mut bad = spec(NetworkLevel::None);
    for path in ["relative/ws", "/data/a:b", "/data/a,b"] {
        bad.workspace = PathBuf::from(path);
        assert!(
            matches!(validate_spec(&bad), Err(SandboxError::Invalid(_))),
            "{path}"
        );
    }
    let mut bad_env = spec(NetworkLevel::None);
    bad_env.env.push(("A=B".to_owned(), "c".to_owned()));
    assert!(matches!(
        validate_spec(&bad_env),
        Err(SandboxError::Invalid(_))
    ));
    assert!(validate_spec(&spec(NetworkLevel::None)).is_ok());
}
