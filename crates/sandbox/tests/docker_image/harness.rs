//! What the image and environment-cache tests share: the engine, unique names, a
//! cleanup guard, throwaway containers and the base image.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::ListContainersOptions;
use bollard::query_parameters::LogsOptions;
use bollard::query_parameters::RemoveContainerOptions;
use bollard::query_parameters::TagImageOptions;
use dockhand_sandbox::Limits;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::docker::env_cache::EnvBuild;
use dockhand_sandbox::docker::image::BuildOptions;
use dockhand_sandbox::docker::image::build_default_image;
use dockhand_sandbox::docker::image::image_exists;
use futures_util::StreamExt;

const TEST_BASE: &str = "dockhand-sandbox:test";
/// The owner and repository the tests' environment images are built for.
pub(crate) const OWNER: &str = "42";
pub(crate) const REPO: &str = "acme/app";

pub(crate) async fn docker() -> Docker {
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
pub(crate) fn unique(prefix: &str) -> String {
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
pub(crate) struct Cleanup {
    pub(crate) images: Vec<String>,
    pub(crate) label: String,
}

impl Cleanup {
    pub(crate) fn new() -> Self {
        Cleanup {
            images: Vec::new(),
            label: format!("dockhand.coordinator={}", unique("test")),
        }
    }

    pub(crate) fn labels(&self) -> HashMap<String, String> {
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
pub(crate) async fn containers_with(docker: &Docker, label: &str) -> Vec<String> {
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
pub(crate) async fn run_in(
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
pub(crate) async fn run_with(
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
pub(crate) async fn base_image(docker: &Docker) -> String {
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

pub(crate) fn env_build(base: &str, setup: &str, cleanup: &Cleanup) -> EnvBuild {
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
