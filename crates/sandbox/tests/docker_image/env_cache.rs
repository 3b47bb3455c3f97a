//! The environment cache: building an image from a repository's `setup` once, as root
//! but with few powers, and hitting it afterwards.

use std::time::Duration;

use bollard::models::ContainerConfig;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CommitContainerOptions;
use dockhand_sandbox::Limits;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::docker::env_cache::EnvBuild;
use dockhand_sandbox::docker::env_cache::EnvCacheError;
use dockhand_sandbox::docker::env_cache::ensure_env_image;
use dockhand_sandbox::docker::env_cache::env_image_tag;
use dockhand_sandbox::docker::env_cache::list_env_images;
use dockhand_sandbox::docker::env_cache::remove_image;
use dockhand_sandbox::docker::image::image_exists;

use crate::harness::Cleanup;
use crate::harness::OWNER;
use crate::harness::REPO;
use crate::harness::base_image;
use crate::harness::containers_with;
use crate::harness::docker;
use crate::harness::env_build;
use crate::harness::run_in;
use crate::harness::run_with;
use crate::harness::unique;

#[test]
fn env_image_tag_is_stable_and_keyed_by_base_setup_owner_and_repo() {
    let key = |base: &str, setup: &str| env_image_tag(base, setup, "7", "acme/app");
    let tag = key("sha256:aaaa", "apt-get install -y jq");
    assert_eq!(tag, key("sha256:aaaa", "apt-get install -y jq"));
    let (repo, hash) = tag.split_once(':').unwrap();
    assert_eq!(repo, "dockhand-env");
    assert_eq!(hash.len(), 16);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(tag, key("sha256:aaaa", "apt-get install -y jq "));
    assert_ne!(tag, key("sha256:bbbb", "apt-get install -y jq"));
    let jq = "apt-get install -y jq";
    assert_ne!(
        tag,
        env_image_tag("sha256:aaaa", jq, "8", "acme/app"),
        "another owner"
    );
    assert_ne!(
        tag,
        env_image_tag("sha256:aaaa", jq, "7", "acme/other"),
        "another repository"
    );
    // The parts are separated, not just concatenated.
    assert_ne!(key("ab", "c"), key("a", "bc"));
}

#[tokio::test]
async fn env_cache_builds_once_as_root_then_hits_without_running_setup() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let mut cleanup = Cleanup::new();
    let token = unique("token");
    let setup = format!("echo built > /opt/marker && id -u > /opt/uid && echo {token}");
    let req = env_build(&base, &setup, &cleanup);

    let mut output = Vec::new();
    let first = ensure_env_image(&docker, &req, None, |chunk| output.extend_from_slice(chunk))
        .await
        .unwrap();
    cleanup.images.push(first.image.clone());
    eprintln!("env build took {:?}", first.duration);
    assert!(first.built);
    let base_id = docker.inspect_image(&base).await.unwrap().id.unwrap();
    assert_eq!(first.image, env_image_tag(&base_id, &setup, OWNER, REPO));
    assert!(String::from_utf8_lossy(&output).contains(&token));
    assert_eq!(
        containers_with(&docker, &cleanup.label).await,
        Vec::<String>::new(),
        "the build container is removed"
    );

    let (code, files) = run_in(
        &docker,
        &cleanup,
        &first.image,
        "1000",
        "cat /opt/marker /opt/uid",
    )
    .await;
    assert_eq!((code, files.as_str()), (0, "built\n0\n"));
    let config = docker
        .inspect_image(&first.image)
        .await
        .unwrap()
        .config
        .unwrap();
    assert_eq!(config.cmd.unwrap(), ["sleep", "infinity"]);
    assert_eq!(config.user.unwrap_or_default(), "", "USER stays unset");
    let labels = config.labels.unwrap();
    assert_eq!(labels.get("dockhand.env").map(String::as_str), Some("1"));
    assert_eq!(labels.get("dockhand.env.base"), Some(&base_id));
    assert_eq!(
        labels.get("dockhand.owner").map(String::as_str),
        Some(OWNER)
    );

    let listed = list_env_images(&docker).await.unwrap();
    let before = listed
        .iter()
        .find(|i| i.image == first.image)
        .unwrap()
        .clone();
    assert!(before.last_used.is_some());

    let mut again = Vec::new();
    let second = ensure_env_image(&docker, &req, None, |chunk| again.extend_from_slice(chunk))
        .await
        .unwrap();
    eprintln!("env cache hit took {:?}", second.duration);
    assert_eq!(
        (second.image.as_str(), second.built),
        (first.image.as_str(), false)
    );
    assert!(again.is_empty(), "a cache hit runs nothing: {again:?}");
    let listed = list_env_images(&docker).await.unwrap();
    let after = listed.iter().find(|i| i.image == first.image).unwrap();
    assert_eq!(after.id, before.id);
    assert!(after.last_used > before.last_used, "a hit records its use");

    remove_image(&docker, &first.image).await.unwrap();
    assert!(!image_exists(&docker, &first.image).await.unwrap());
    remove_image(&docker, &first.image).await.unwrap();
}

#[tokio::test]
async fn env_cache_failing_setup_reports_exit_code_and_leaves_no_container() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let mut cleanup = Cleanup::new();
    let setup = format!("echo oops; echo {} >&2; exit 3", unique("token"));
    let req = env_build(&base, &setup, &cleanup);
    let base_id = docker.inspect_image(&base).await.unwrap().id.unwrap();
    cleanup
        .images
        .push(env_image_tag(&base_id, &setup, OWNER, REPO));

    let err = ensure_env_image(&docker, &req, None, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnvCacheError::SetupFailed { code: 3, .. }),
        "{err:?}"
    );
    let message = SandboxError::from(err).to_string();
    assert!(
        message.contains("setup failed with exit code 3"),
        "{message}"
    );
    assert!(message.contains("oops"), "{message}");
    assert_eq!(
        containers_with(&docker, &cleanup.label).await,
        Vec::<String>::new()
    );
    assert!(
        !image_exists(&docker, &env_image_tag(&base_id, &setup, OWNER, REPO))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn env_cache_setup_past_its_timeout_is_stopped_and_removed() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let cleanup = Cleanup::new();
    let setup = format!("echo started {}; exec sleep 600", unique("token"));
    let req = EnvBuild {
        timeout: Duration::from_secs(2),
        ..env_build(&base, &setup, &cleanup)
    };
    let err = ensure_env_image(&docker, &req, None, |_| {})
        .await
        .unwrap_err();
    match &err {
        EnvCacheError::TimedOut { tail, .. } => assert!(tail.contains("started"), "{tail}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        err.to_string().contains("did not finish within 2s"),
        "{err}"
    );
    assert_eq!(
        containers_with(&docker, &cleanup.label).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn env_cache_setup_without_network_sees_only_loopback() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let mut cleanup = Cleanup::new();
    let setup = format!("ls /sys/class/net; echo {}", unique("token"));
    let mut output = Vec::new();
    for open in [false, true] {
        let network = if open {
            NetworkLevel::Open
        } else {
            NetworkLevel::None
        };
        let req = EnvBuild {
            network,
            ..env_build(&base, &setup, &cleanup)
        };
        output.clear();
        // The network is not part of the key: each run removes its image so the next builds.
        let built = ensure_env_image(&docker, &req, None, |c| output.extend_from_slice(c))
            .await
            .unwrap();
        cleanup.images.push(built.image.clone());
        let interfaces: Vec<_> = String::from_utf8_lossy(&output)
            .split_whitespace()
            .filter(|w| !w.starts_with("token-"))
            .map(str::to_owned)
            .collect();
        if open {
            assert!(interfaces.len() > 1, "{interfaces:?}");
        } else {
            assert_eq!(interfaces, ["lo"]);
        }
        remove_image(&docker, &built.image).await.unwrap();
    }
}

#[tokio::test]
async fn env_cache_runs_setup_as_root_on_a_base_with_user_and_entrypoint_and_keeps_them() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let mut cleanup = Cleanup::new();
    // A base like a user's own image: a USER and an ENTRYPOINT that would swallow setup.
    let custom = format!("{}:base", unique("dockhand-test-custom"));
    cleanup.images.push(custom.clone());
    let body = ContainerCreateBody {
        image: Some(base.clone()),
        cmd: Some(vec!["true".into()]),
        labels: Some(cleanup.labels()),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    let (repo, tag) = custom.split_once(':').unwrap();
    let options = CommitContainerOptions {
        container: Some(id),
        repo: Some(repo.into()),
        tag: Some(tag.into()),
        ..Default::default()
    };
    let config = ContainerConfig {
        user: Some("1000:1000".into()),
        entrypoint: Some(vec!["/bin/false".into()]),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        ..Default::default()
    };
    docker.commit_container(options, config).await.unwrap();

    let setup = format!("id -u > /opt/uid; echo {}", unique("token"));
    let built = ensure_env_image(&docker, &env_build(&custom, &setup, &cleanup), None, |_| {})
        .await
        .unwrap();
    cleanup.images.push(built.image.clone());
    let config = docker
        .inspect_image(&built.image)
        .await
        .unwrap()
        .config
        .unwrap();
    assert_eq!(config.user.as_deref(), Some("1000:1000"));
    assert_eq!(config.entrypoint.unwrap(), ["/bin/false"]);
    assert_eq!(config.cmd.unwrap(), ["sleep", "infinity"]);
    // Read the file past the entrypoint: run the image as a plain shell.
    let reader = ContainerCreateBody {
        entrypoint: Some(vec!["cat".into()]),
        cmd: Some(vec!["/opt/uid".into()]),
        ..Default::default()
    };
    let (code, out) = run_with(&docker, &cleanup, &built.image, reader).await;
    assert_eq!((code, out.as_str()), (0, "0\n"));
}

#[tokio::test]
async fn env_cache_missing_base_image_is_a_clear_error() {
    let docker = docker().await;
    let cleanup = Cleanup::new();
    let missing = format!("{}:nope", unique("dockhand-no-such-image"));
    let err = ensure_env_image(
        &docker,
        &env_build(&missing, "true", &cleanup),
        None,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, EnvCacheError::BaseImageMissing { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&missing), "{message}");
    assert!(message.contains("dockhand image build"), "{message}");
}

#[tokio::test]
async fn env_cache_setup_runs_with_few_capabilities_no_new_privileges_and_the_tasks_limits() {
    let docker = docker().await;
    let base = base_image(&docker).await;
    let mut cleanup = Cleanup::new();
    let setup = format!(
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
         echo {}",
        unique("token")
    );
    let req = EnvBuild {
        network: NetworkLevel::None,
        limits: Limits {
            memory_bytes: 300 << 20,
            nano_cpus: 1_000_000_000,
            pids: 99,
        },
        ..env_build(&base, &setup, &cleanup)
    };
    let mut output = Vec::new();
    let built = ensure_env_image(&docker, &req, None, |c| output.extend_from_slice(c))
        .await
        .unwrap();
    cleanup.images.push(built.image.clone());
    let text = String::from_utf8_lossy(&output);
    // CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID and SETFCAP, nothing more.
    assert!(text.contains("CapEff:\t00000000800000db"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains(&format!("{}\n99\n", 300u64 << 20)), "{text}");
    // The build's own proxy settings are not baked into the image.
    let env = docker
        .inspect_image(&built.image)
        .await
        .unwrap()
        .config
        .and_then(|c| c.env)
        .unwrap_or_default();
    assert!(
        !env.iter().any(|e| e.to_lowercase().contains("proxy")),
        "{env:?}"
    );
    remove_image(&docker, &built.image).await.unwrap();
}
