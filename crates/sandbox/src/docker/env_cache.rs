//! The per-repository environment cache.
//!
//! A repository's `.dockhand/environment.toml` may give `setup`: system-level
//! commands such as `apt-get update && apt-get install -y jq`. They need root and a
//! few capabilities a task's sandbox lacks, so they run once in a separate build
//! container made from the base image: root, but with only the capabilities a
//! package manager needs, `no-new-privileges`, the task's limits and a network
//! level no higher than the operator's. That
//! container is committed as an image tagged by a hash of (base image ID, setup
//! text, owner, repository, Dockhand version) and labelled with its owner, so one
//! user's image is never another's. Later tasks with the same inputs start from
//! the cached image and run nothing. A changed base image, setup or Dockhand version gives a
//! new tag; `dockhand gc` removes the old ones ([`list_env_images`], [`remove_image`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use bollard::Docker;
use bollard::models::ContainerConfig;
use bollard::models::ContainerCreateBody;
use bollard::models::HostConfig;
use bollard::models::ImageInspect;
use bollard::query_parameters::CommitContainerOptions;
use bollard::query_parameters::ListImagesOptions;
use bollard::query_parameters::LogsOptions;
use bollard::query_parameters::RemoveContainerOptions;
use bollard::query_parameters::RemoveImageOptions;
use bollard::query_parameters::TagImageOptions;
use futures_util::StreamExt;
use sha2::Digest;
use sha2::Sha256;

use super::image::inspect_if_present;
use crate::Limits;
use crate::NetworkLevel;
use crate::SandboxError;
use crate::egress::Egress;

/// The repository of cached environment images.
pub const ENV_IMAGE_REPO: &str = crate::ENVIRONMENT_IMAGE_REPO;
/// Label (`=1`) on every cached environment image.
pub const ENV_LABEL: &str = "dockhand.env";
/// Label on a cached environment image: the ID of the image it was built from.
pub const ENV_BASE_LABEL: &str = "dockhand.env.base";
/// Label on a cached environment image: the id of the user it was built for.
pub const ENV_OWNER_LABEL: &str = "dockhand.owner";
/// Label (`=1`) on build containers, so leftovers of a crashed coordinator can be found.
pub const ENV_BUILD_LABEL: &str = "dockhand.env-build";

/// How much of the setup's output a failure quotes.
const ERROR_TAIL_BYTES: usize = 4096;

/// Why an environment image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EnvCacheError {
    /// The base image is not in the engine (and nothing can be pulled here).
    #[error(
        "base image {image} is not in the Docker engine; build the default one with \
         `dockhand image build`, or `docker pull {image}` where a registry is reachable"
    )]
    BaseImageMissing {
        /// The image as the caller named it.
        image: String,
    },

    /// The setup commands exited non-zero.
    #[error("setup failed with exit code {code}; its last output:\n{tail}")]
    SetupFailed {
        /// The shell's exit code.
        code: i64,
        /// The last 4 KiB of stdout and stderr.
        tail: String,
    },

    /// The setup commands ran longer than allowed and were killed.
    #[error("setup did not finish within {}s and was stopped; its last output:\n{tail}", .timeout.as_secs())]
    TimedOut {
        /// The limit.
        timeout: Duration,
        /// The last 4 KiB of stdout and stderr.
        tail: String,
    },

    /// The setup's network could not be given.
    #[error("giving setup its network: {0}")]
    Network(String),

    /// The engine returned no exit status for the build container.
    #[error("the Docker engine reported no exit status for the setup container")]
    NoExitStatus,

    /// The Docker engine refused or failed a request.
    #[error("{step}: {source}")]
    Docker {
        /// What was being done, such as "committing the environment image".
        step: &'static str,
        /// bollard's error, which carries the engine's message.
        #[source]
        source: bollard::errors::Error,
    },
}

impl From<EnvCacheError> for SandboxError {
    fn from(error: EnvCacheError) -> Self {
        SandboxError::Environment(error.to_string())
    }
}

fn docker_error(step: &'static str) -> impl FnOnce(bollard::errors::Error) -> EnvCacheError {
    move |source| EnvCacheError::Docker { step, source }
}

/// The cached image name for `setup` on the image with ID `base_image_id`, for
/// `owner`'s tasks on `repo`: `dockhand-env:<16 hex of sha256(base id, setup,
/// owner, repo, Dockhand version)>`.
pub fn env_image_tag(base_image_id: &str, setup: &str, owner: &str, repo: &str) -> String {
    let mut hash = Sha256::new();
    for part in [base_image_id, setup, owner, repo, env!("CARGO_PKG_VERSION")] {
        hash.update(part.as_bytes());
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hash.update([0]);
    }
    let digest = hex::encode(hash.finalize());
    format!("{ENV_IMAGE_REPO}:{}", &digest[..16])
}

/// One environment to have ready.
#[derive(Clone, Debug)]
pub struct EnvBuild {
    /// The image the setup runs on: a name or an ID; any image with `/bin/sh`.
    pub base_image: String,
    /// Shell text run with `/bin/sh -c`, as root.
    pub setup: String,
    /// Whose image it is (a user id): part of the cache key, and a label.
    pub owner: String,
    /// The repository it is for: part of the cache key.
    pub repo: String,
    /// The network setup reaches; `allowlist` goes through `egress`.
    pub network: NetworkLevel,
    /// Memory, CPU and process limits, as a task's.
    pub limits: Limits,
    /// Labels for the build container, such as `dockhand.coordinator=<id>`.
    pub labels: HashMap<String, String>,
    /// The build container is killed and removed after this long.
    pub timeout: Duration,
}

/// The image a task should start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvImage {
    /// `dockhand-env:<hash>` (the base image itself when setup is empty).
    pub image: String,
    /// False on a cache hit: nothing ran.
    pub built: bool,
    /// How long the call took.
    pub duration: Duration,
}

/// Returns the cached environment image for `req`, building it first if there is
/// none. Setup output is handed to `on_output` as it comes (only when building).
/// A cache hit re-tags the image, which records its last use for `dockhand gc`
/// ([`EnvImageInfo::last_used`]). The build container is removed in every case.
pub async fn ensure_env_image(
    docker: &Docker,
    req: &EnvBuild,
    egress: Option<Arc<dyn Egress>>,
    mut on_output: impl FnMut(&[u8]) + Send,
) -> Result<EnvImage, EnvCacheError> {
    let started = Instant::now();
    if req.setup.trim().is_empty() {
        return Ok(EnvImage {
            image: req.base_image.clone(),
            built: false,
            duration: started.elapsed(),
        });
    }
    let base = inspect_if_present(docker, &req.base_image)
        .await
        .map_err(docker_error("inspecting the base image"))?
        .ok_or_else(|| EnvCacheError::BaseImageMissing {
            image: req.base_image.clone(),
        })?;
    let base_id = base.id.clone().unwrap_or_else(|| req.base_image.clone());
    let image = env_image_tag(&base_id, &req.setup, &req.owner, &req.repo);
    let (repo, tag) = image.split_once(':').unwrap_or((ENV_IMAGE_REPO, &image));

    if inspect_if_present(docker, &image)
        .await
        .map_err(docker_error("looking for the environment image"))?
        .is_some()
    {
        let options = TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        docker
            .tag_image(&image, Some(options))
            .await
            .map_err(docker_error("recording the environment image's use"))?;
        return Ok(EnvImage {
            image,
            built: false,
            duration: started.elapsed(),
        });
    }

    let container = create_build_container(docker, req, &base, &base_id).await?;
    let result = async {
        let _link = start_network(docker, &container.id, req, egress).await?;
        run_setup(docker, &container.id, req.timeout, &mut on_output).await?;
        let labels = [
            (ENV_LABEL, "1"),
            (ENV_BASE_LABEL, base_id.as_str()),
            (ENV_OWNER_LABEL, req.owner.as_str()),
        ];
        commit(docker, &container.id, &base, &labels, repo, tag).await
    }
    .await;
    container.remove().await;
    result?;
    Ok(EnvImage {
        image,
        built: true,
        duration: started.elapsed(),
    })
}

/// Capabilities a package manager needs as root: owning and moding files,
/// dropping to its own users, and file capabilities.
const SETUP_CAPS: [&str; 7] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETUID",
    "SETGID",
    "SETFCAP",
];

/// The setup waits for this file at `allowlist`, so it starts once the
/// forwarder listens.
const READY: &str = ".dockhand/ready";

/// Starts the container and, at `allowlist`, its egress link, then lets the setup run.
async fn start_network(
    docker: &Docker,
    id: &str,
    req: &EnvBuild,
    egress: Option<Arc<dyn Egress>>,
) -> Result<Option<super::egress::Link>, EnvCacheError> {
    let allowlist = req.network == NetworkLevel::Allowlist;
    if allowlist {
        super::egress::install(docker, id)
            .await
            .map_err(|e| EnvCacheError::Network(e.to_string()))?;
    }
    docker
        .start_container(id, None)
        .await
        .map_err(docker_error("starting the setup container"))?;
    let (true, Some(egress)) = (allowlist, egress) else {
        return Ok(None);
    };
    let link = super::egress::link(
        docker,
        id,
        egress,
        format!("setup of {}", req.repo),
        Default::default(),
    )
    .await
    .map_err(|e| EnvCacheError::Network(e.to_string()))?;
    // Made from inside, so the running container surely sees it.
    let ready = format!("/{READY}");
    super::exec::run_as_root(docker, id, &["touch", "--", &ready])
        .await
        .map_err(|e| EnvCacheError::Network(format!("starting the setup: {e}")))?;
    Ok(Some(link))
}

async fn create_build_container(
    docker: &Docker,
    req: &EnvBuild,
    base: &ImageInspect,
    base_id: &str,
) -> Result<BuildContainer, EnvCacheError> {
    let base_user = base.config.as_ref().and_then(|c| c.user.clone());
    let mut labels = req.labels.clone();
    labels.insert(ENV_BUILD_LABEL.into(), "1".into());
    let allowlist = req.network == NetworkLevel::Allowlist;
    let cmd = if allowlist {
        let wait = format!("while [ ! -e /{READY} ]; do sleep 0.05; done; exec /bin/sh -c \"$0\"");
        vec!["/bin/sh".into(), "-c".into(), wait, req.setup.clone()]
    } else {
        vec!["/bin/sh".into(), "-c".into(), req.setup.clone()]
    };
    let env = if allowlist {
        let proxy = crate::egress::proxy_env();
        Some(proxy.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
    } else {
        None
    };
    let network = match req.network {
        NetworkLevel::None | NetworkLevel::Allowlist => "none",
        NetworkLevel::Open => super::plan::OPEN_NETWORK,
    };
    if req.network == NetworkLevel::Open {
        super::lifecycle::ensure_open_network(docker)
            .await
            .map_err(|e| EnvCacheError::Network(e.to_string()))?;
    }
    let body = ContainerCreateBody {
        // By ID: the tag was computed from it, even if the name moves meanwhile.
        image: Some(base_id.to_owned()),
        cmd: Some(cmd),
        env,
        // The base's entrypoint must not wrap the setup shell.
        entrypoint: Some(Vec::new()),
        // Root is already the default; only a base with a USER needs overriding.
        user: base_user.filter(|u| !u.is_empty()).map(|_| "0".to_owned()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.into()),
            cap_drop: Some(vec!["ALL".to_owned()]),
            cap_add: Some(SETUP_CAPS.iter().map(|c| (*c).to_owned()).collect()),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            memory: Some(req.limits.memory_bytes),
            memory_swap: Some(req.limits.memory_bytes),
            nano_cpus: Some(req.limits.nano_cpus),
            pids_limit: Some(req.limits.pids),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(None, body)
        .await
        .map_err(docker_error("creating the setup container"))?;
    Ok(BuildContainer {
        docker: docker.clone(),
        id: created.id,
    })
}

/// Starts the container, streams its output and returns its exit code; kills it
/// (through the caller's removal) when `timeout` passes first.
async fn run_setup(
    docker: &Docker,
    id: &str,
    timeout: Duration,
    on_output: &mut (impl FnMut(&[u8]) + Send),
) -> Result<(), EnvCacheError> {
    let mut tail = Vec::new();
    let run = async {
        let mut logs = docker.logs(
            id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        while let Some(chunk) = logs.next().await {
            let chunk = chunk.map_err(docker_error("reading the setup output"))?;
            let bytes = chunk.into_bytes();
            on_output(&bytes);
            tail.extend_from_slice(&bytes);
            if tail.len() > 2 * ERROR_TAIL_BYTES {
                tail.drain(..tail.len() - ERROR_TAIL_BYTES);
            }
        }
        // The log stream ends when the container stops; wait only collects the code.
        match docker.wait_container(id, None).next().await {
            Some(Ok(exit)) => Ok(exit.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(docker_error("waiting for the setup container")(e)),
            None => Err(EnvCacheError::NoExitStatus),
        }
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    let tail_text = || {
        let start = tail.len().saturating_sub(ERROR_TAIL_BYTES);
        String::from_utf8_lossy(&tail[start..]).into_owned()
    };
    match outcome {
        Err(_elapsed) => Err(EnvCacheError::TimedOut {
            timeout,
            tail: tail_text(),
        }),
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => Err(EnvCacheError::SetupFailed {
            code,
            tail: tail_text(),
        }),
        Ok(Err(e)) => Err(e),
    }
}

/// Commits the finished container. The build container's command, user and
/// entrypoint are replaced by the base image's, so the cached image behaves like
/// the base with the setup's files added.
async fn commit(
    docker: &Docker,
    id: &str,
    base: &ImageInspect,
    add_labels: &[(&str, &str)],
    repo: &str,
    tag: &str,
) -> Result<(), EnvCacheError> {
    let base_config = base.config.clone().unwrap_or_default();
    let mut labels = base_config.labels.unwrap_or_default();
    for (k, v) in add_labels {
        labels.insert((*k).to_owned(), (*v).to_owned());
    }
    let cmd = base_config
        .cmd
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| vec!["sleep".into(), "infinity".into()]);
    // Fields left `None` are filled from the container's own config by the engine
    // (env, working dir, and an empty entrypoint, which means none).
    // The base's own environment, not the build's (the setup's proxy must not stay).
    let config = ContainerConfig {
        env: Some(base_config.env.unwrap_or_default()),
        cmd: Some(cmd),
        entrypoint: base_config.entrypoint.filter(|e| !e.is_empty()),
        user: base_config.user.filter(|u| !u.is_empty()),
        labels: Some(labels),
        ..Default::default()
    };
    let options = CommitContainerOptions {
        container: Some(id.to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        comment: Some("dockhand environment setup".into()),
        // The container has exited; there is nothing to pause.
        pause: false,
        ..Default::default()
    };
    docker
        .commit_container(options, config)
        .await
        .map_err(docker_error("committing the environment image"))?;
    Ok(())
}

/// The build container; [`BuildContainer::remove`] removes it, and dropping it
/// without that (a cancelled build) removes it in the background.
struct BuildContainer {
    docker: Docker,
    id: String,
}

impl BuildContainer {
    async fn remove(mut self) {
        let id = std::mem::take(&mut self.id);
        remove_container(&self.docker, &id).await;
    }
}

impl Drop for BuildContainer {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { remove_container(&docker, &id).await });
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        // Labelled `dockhand.env-build`, so the start-up sweep finds it later.
        tracing::warn!(container = id, error = %e, "could not remove the setup container");
    }
}

/// A cached environment image, for `dockhand gc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvImageInfo {
    /// `dockhand-env:<hash>`, or the ID when the tag has moved to a newer build.
    pub image: String,
    /// The image ID.
    pub id: String,
    /// When it was built.
    pub created: SystemTime,
    /// When it was last built or used (its last tagging); `None` when unknown.
    pub last_used: Option<SystemTime>,
}

/// Every cached environment image in the engine.
pub async fn list_env_images(docker: &Docker) -> Result<Vec<EnvImageInfo>, EnvCacheError> {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{ENV_LABEL}=1")],
        )])),
        ..Default::default()
    };
    let summaries = docker
        .list_images(Some(options))
        .await
        .map_err(docker_error("listing environment images"))?;
    let mut images = Vec::with_capacity(summaries.len());
    for summary in summaries {
        // Gone since the listing (a concurrent gc): skip it.
        let Some(inspect) = inspect_if_present(docker, &summary.id)
            .await
            .map_err(docker_error("inspecting an environment image"))?
        else {
            continue;
        };
        let last_used = inspect
            .metadata
            .and_then(|m| m.last_tag_time)
            .and_then(|t| parse_time(&t));
        images.push(EnvImageInfo {
            image: summary
                .repo_tags
                .into_iter()
                .find(|t| t.starts_with(&format!("{ENV_IMAGE_REPO}:")))
                .unwrap_or_else(|| summary.id.clone()),
            id: summary.id,
            created: SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(summary.created).unwrap_or(0)),
            last_used,
        });
    }
    Ok(images)
}

/// RFC 3339 from the engine; its "never" is year 1, before the epoch.
fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let since_epoch = u64::try_from(parsed.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(since_epoch))
}

/// Removes an image (name or ID); one that is already gone is not an error.
pub async fn remove_image(docker: &Docker, image: &str) -> Result<(), EnvCacheError> {
    match docker
        .remove_image(image, None::<RemoveImageOptions>, /*credentials*/ None)
        .await
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(docker_error("removing the image")(e)),
    }
}
