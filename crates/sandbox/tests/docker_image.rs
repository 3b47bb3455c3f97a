//! The sandbox image builder and the environment cache, against the real Docker
//! engine and real mmdebstrap. A missing engine fails every test here: Docker is
//! part of this machine (DESIGN.md, "Testing").
//!
//! Every image and container a test makes has a unique name or label and is removed
//! by a [`Cleanup`] guard, also when the test fails. The environment-cache tests
//! start from `dockhand-sandbox:test`; when it is missing, the first test to need it
//! builds the default image (about a minute) and tags it so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use bollard::Docker;
use bollard::models::ContainerConfig;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CommitContainerOptions;
use bollard::query_parameters::ListContainersOptions;
use bollard::query_parameters::LogsOptions;
use bollard::query_parameters::RemoveContainerOptions;
use bollard::query_parameters::TagImageOptions;
use dockhand_sandbox::Limits;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxError;
use dockhand_sandbox::docker::env_cache::EnvBuild;
use dockhand_sandbox::docker::env_cache::EnvCacheError;
use dockhand_sandbox::docker::env_cache::ensure_env_image;
use dockhand_sandbox::docker::env_cache::env_image_tag;
use dockhand_sandbox::docker::env_cache::list_env_images;
use dockhand_sandbox::docker::env_cache::remove_image;
use dockhand_sandbox::docker::image::BuildOptions;
use dockhand_sandbox::docker::image::ImageBuildEvent;
use dockhand_sandbox::docker::image::ImageError;
use dockhand_sandbox::docker::image::build_default_image;
use dockhand_sandbox::docker::image::default_image;
use dockhand_sandbox::docker::image::image_exists;
use futures_util::StreamExt;

const TEST_BASE: &str = "dockhand-sandbox:test";
/// The owner and repository the tests' environment images are built for.
const OWNER: &str = "42";
const REPO: &str = "acme/app";

async fn docker() -> Docker {
    let fail = |e: bollard::errors::Error| -> Docker {
        panic!(
            "the Docker engine is not reachable ({e}); these tests need one \
             (start it with `systemctl start docker` or `dockerd &`)"
        )
    };
    let docker = Docker::connect_with_local_defaults().unwrap_or_else(fail);
    docker.negotiate_version().await.unwrap_or_else(fail)
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// Removes the listed images and every container carrying `label` when dropped.
/// Uses the docker CLI because Drop cannot await.
struct Cleanup {
    images: Vec<String>,
    label: String,
}

impl Cleanup {
    fn new() -> Self {
        Cleanup {
            images: Vec::new(),
            label: format!("dockhand.coordinator={}", unique("test")),
        }
    }

    fn labels(&self) -> HashMap<String, String> {
        let (key, value) = self.label.split_once('=').unwrap();
        HashMap::from([(key.to_owned(), value.to_owned())])
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let listed = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label={}", self.label)])
            .output();
        if let Ok(listed) = listed {
            for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        for image in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
    }
}

/// Containers that still carry the test's label.
async fn containers_with(docker: &Docker, label: &str) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".into(), vec![label.to_owned()])])),
        ..Default::default()
    };
    let found = docker.list_containers(Some(options)).await.unwrap();
    found.into_iter().filter_map(|c| c.id).collect()
}

/// Runs `script` with `/bin/sh -c` in a throwaway container of `image` as `user`;
/// returns the exit code and the output.
async fn run_in(
    docker: &Docker,
    cleanup: &Cleanup,
    image: &str,
    user: &str,
    script: &str,
) -> (i64, String) {
    let body = ContainerCreateBody {
        user: Some(user.into()),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    };
    run_with(docker, cleanup, image, body).await
}

/// Runs a throwaway container of `image` made from `body`; returns the exit code
/// and the output.
async fn run_with(
    docker: &Docker,
    cleanup: &Cleanup,
    image: &str,
    body: ContainerCreateBody,
) -> (i64, String) {
    let body = ContainerCreateBody {
        image: Some(image.into()),
        labels: Some(cleanup.labels()),
        ..body
    };
    let id = docker.create_container(None, body).await.unwrap().id;
    docker.start_container(&id, None).await.unwrap();
    let mut output = String::new();
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(&id, Some(options));
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.unwrap().to_string());
    }
    let code = match docker.wait_container(&id, None).next().await.unwrap() {
        Ok(exit) => exit.status_code,
        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
        Err(e) => panic!("waiting for {id}: {e}"),
    };
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    docker.remove_container(&id, Some(remove)).await.unwrap();
    (code, output)
}

/// `dockhand-sandbox:test`, built from the default recipe first when it is missing.
/// A file lock keeps parallel test processes from building it twice.
async fn base_image(docker: &Docker) -> String {
    if image_exists(docker, TEST_BASE).await.unwrap() {
        return TEST_BASE.into();
    }
    let lock =
        File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-test-base.lock")).unwrap();
    lock.lock().unwrap();
    if !image_exists(docker, TEST_BASE).await.unwrap() {
        let opts = BuildOptions {
            work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            ..BuildOptions::default()
        };
        let built = build_default_image(docker, &opts, |_| {}).await.unwrap();
        let (repo, tag) = TEST_BASE.split_once(':').unwrap();
        let options = TagImageOptions {
            repo: Some(repo.into()),
            tag: Some(tag.into()),
        };
        docker.tag_image(&built.image, Some(options)).await.unwrap();
    }
    TEST_BASE.into()
}

fn env_build(base: &str, setup: &str, cleanup: &Cleanup) -> EnvBuild {
    EnvBuild {
        base_image: base.into(),
        setup: setup.into(),
        owner: OWNER.into(),
        repo: REPO.into(),
        network: NetworkLevel::Open,
        limits: Limits::default(),
        labels: cleanup.labels(),
        timeout: Duration::from_secs(120),
    }
}

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

/// Writes an executable stand-in for mmdebstrap into `dir`.
fn fake_mmdebstrap(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-mmdebstrap");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Build options into a unique repository, with the tar and scratch in `work`.
fn test_build(work: &Path, mmdebstrap: PathBuf) -> BuildOptions {
    BuildOptions {
        repo: unique("dockhand-sandbox-test"),
        work_dir: work.to_owned(),
        mmdebstrap,
        ..BuildOptions::default()
    }
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn the_default_image_tag_follows_the_recipe_and_the_version() {
    let base = BuildOptions::default();
    let tag = base.tag();
    assert!(tag.starts_with(concat!(env!("CARGO_PKG_VERSION"), "-")));
    assert_eq!(tag.len(), env!("CARGO_PKG_VERSION").len() + 1 + 8);
    assert_eq!(default_image(), format!("dockhand-sandbox:{tag}"));
    let mut reordered = base.clone();
    reordered.packages.reverse();
    assert_eq!(
        reordered.tag(),
        tag,
        "package order is not part of the recipe"
    );
    let mut more = base.clone();
    more.packages.push("jq".into());
    assert_ne!(more.tag(), tag);
    let other_suite = BuildOptions {
        suite: "trixie".into(),
        ..base
    };
    assert_ne!(other_suite.tag(), tag);
}

#[test]
fn mmdebstrap_args_name_suite_packages_hooks_and_target_and_refuse_options() {
    let args: Vec<String> = BuildOptions::default()
        .mmdebstrap_args(Path::new("/w/r.tar"))
        .unwrap()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(args[0], "--variant=apt");
    assert_eq!(
        args[1],
        "--include=bash,coreutils,git,curl,ca-certificates,build-essential,python3,procps"
    );
    assert!(
        args.iter()
            .any(|a| a.starts_with("--customize-hook=") && a.contains("useradd"))
    );
    assert_eq!(args[args.len() - 2..], ["bookworm", "/w/r.tar"]);

    for bad in ["--foreign", "git,evil", ""] {
        let mut opts = BuildOptions::default();
        opts.packages.push(bad.into());
        let err = opts.mmdebstrap_args(Path::new("/t")).unwrap_err();
        assert!(matches!(err, ImageError::Invalid(_)), "{bad:?}: {err:?}");
    }
    let opts = BuildOptions {
        suite: "--aptopt=x".into(),
        ..BuildOptions::default()
    };
    assert!(opts.mmdebstrap_args(Path::new("/t")).is_err());
}

#[tokio::test]
async fn image_build_without_mmdebstrap_says_how_to_install_it() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let opts = test_build(work.path(), work.path().join("no-such-mmdebstrap"));
    let err = build_default_image(&docker, &opts, |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mmdebstrap is not installed; apt-get install mmdebstrap"
    );
    assert!(matches!(
        SandboxError::from(err),
        SandboxError::Unavailable { .. }
    ));
}

#[tokio::test]
async fn image_build_failing_mmdebstrap_quotes_its_last_lines_and_leaves_no_tar() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let script = fake_mmdebstrap(
        work.path(),
        "for last; do :; done\necho partial > \"$last\"\necho 'I: downloading' >&2\n\
         echo 'E: cannot reach the mirror' >&2\nexit 1",
    );
    let scratch = work.path().join("scratch");
    let opts = test_build(&scratch, script);
    let mut lines = Vec::new();
    let err = build_default_image(&docker, &opts, |event| {
        if let ImageBuildEvent::BootstrapLine(line) = event {
            lines.push(line);
        }
    })
    .await
    .unwrap_err();
    assert_eq!(lines, ["I: downloading", "E: cannot reach the mirror"]);
    assert_eq!(
        err.to_string(),
        "building the sandbox image: mmdebstrap failed (exit 1): \
         I: downloading\nE: cannot reach the mirror"
    );
    assert_eq!(leftovers(&scratch), Vec::<PathBuf>::new());
    assert!(!image_exists(&docker, &opts.image()).await.unwrap());
}

#[tokio::test]
async fn image_build_streams_the_tar_into_the_engine_and_then_is_current() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    // A stand-in that writes a one-file root file system to its last argument.
    let script = fake_mmdebstrap(
        work.path(),
        "for last; do :; done\necho \"I: fake $*\" >&2\nd=$(mktemp -d)\n\
         echo hello > \"$d/hello\"\ntar -C \"$d\" -cf \"$last\" .\nrm -rf \"$d\"",
    );
    let scratch = work.path().join("scratch");
    let opts = test_build(&scratch, script);
    let mut cleanup = Cleanup::new();
    cleanup.images = vec![opts.image(), format!("{}:latest", opts.repo)];

    let mut events = Vec::new();
    let first = build_default_image(&docker, &opts, |e| events.push(e))
        .await
        .unwrap();
    assert_eq!(
        (first.image.as_str(), first.built),
        (opts.image().as_str(), true)
    );
    assert!(matches!(&events[0], ImageBuildEvent::Checking { image } if *image == first.image));
    assert!(
        matches!(&events[1], ImageBuildEvent::Bootstrapping { suite, .. } if suite == "bookworm")
    );
    assert!(matches!(&events[2], ImageBuildEvent::BootstrapLine(l) if l.contains("--variant=apt")));
    let Some(ImageBuildEvent::Importing { sent, total }) = events
        .iter()
        .rev()
        .find(|e| matches!(e, ImageBuildEvent::Importing { .. }))
    else {
        panic!("no import progress in {events:?}");
    };
    assert!(*total > 0 && sent == total, "{sent} of {total}");
    assert!(
        matches!(events.last(), Some(ImageBuildEvent::Done { .. })),
        "{events:?}"
    );
    assert_eq!(
        leftovers(&scratch),
        Vec::<PathBuf>::new(),
        "the tar is removed"
    );

    let inspect = docker.inspect_image(&first.image).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.cmd.unwrap(), ["sleep", "infinity"]);
    assert_eq!(config.working_dir.unwrap(), "/workspace");
    assert!(
        config
            .env
            .unwrap()
            .iter()
            .any(|e| e.starts_with("PATH=/usr/local/sbin:"))
    );
    let latest = docker
        .inspect_image(&format!("{}:latest", opts.repo))
        .await
        .unwrap();
    assert_eq!(latest.id, inspect.id);

    events.clear();
    let second = build_default_image(&docker, &opts, |e| events.push(e))
        .await
        .unwrap();
    assert!(!second.built);
    assert_eq!(
        events,
        [
            ImageBuildEvent::Checking {
                image: first.image.clone()
            },
            ImageBuildEvent::Current {
                image: first.image.clone()
            },
        ]
    );

    let forced = BuildOptions {
        force: true,
        ..opts.clone()
    };
    let third = build_default_image(&docker, &forced, |_| {}).await.unwrap();
    assert!(third.built);
    let rebuilt = docker.inspect_image(&first.image).await.unwrap();
    assert_ne!(rebuilt.id, inspect.id, "force imports a new image");
    cleanup.images.push(inspect.id.unwrap());
}

/// The real thing: mmdebstrap bootstraps Debian (about a minute), the engine
/// imports it, and the result runs as the `agent` user with the promised tools.
#[tokio::test]
async fn default_image_real_mmdebstrap_build_takes_about_a_minute() {
    let docker = docker().await;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = test_build(work.path(), "mmdebstrap".into());
    let mut cleanup = Cleanup::new();
    cleanup.images = vec![opts.image(), format!("{}:latest", opts.repo)];

    let mut events = Vec::new();
    let mut import_started = None;
    let built = build_default_image(&docker, &opts, |e| {
        if matches!(e, ImageBuildEvent::Importing { .. }) && import_started.is_none() {
            import_started = Some(Instant::now());
        }
        events.push(e);
    })
    .await
    .unwrap();
    assert!(built.built);
    let bootstrapped = events.iter().find_map(|e| match e {
        ImageBuildEvent::Bootstrapped { bytes, duration } => Some((*bytes, *duration)),
        _ => None,
    });
    let (bytes, mmdebstrap_took) = bootstrapped.expect("a Bootstrapped event");
    eprintln!(
        "mmdebstrap: {mmdebstrap_took:?} for {} MB; import: {:?}; total: {:?}",
        bytes / 1_000_000,
        import_started.unwrap().elapsed(),
        built.duration
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ImageBuildEvent::BootstrapLine(l) if l.contains("useradd")))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ImageBuildEvent::Importing { sent, total } if sent == total))
    );

    let (code, out) = run_in(
        &docker,
        &cleanup,
        &built.image,
        "1000",
        "id -un; echo $HOME; pwd",
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "agent\n/home/agent\n/workspace\n")
    );
    let (code, out) = run_in(
        &docker,
        &cleanup,
        &built.image,
        "1000",
        "for t in git python3 curl gcc make ps; do command -v $t >/dev/null || echo missing $t; done",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""));

    let again = build_default_image(&docker, &opts, |_| {}).await.unwrap();
    eprintln!("second build (current): {:?}", again.duration);
    assert!(!again.built);
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
