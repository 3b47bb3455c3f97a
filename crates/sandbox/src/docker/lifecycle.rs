//! A container's life on the engine: created and started for a spec, removed, and the
//! `open` network it may need.

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::CreateContainerOptions;
use bollard::query_parameters::RemoveContainerOptions;

use super::api::api_error;
use super::api::message;
use super::api::short;
use super::config::DockerConfig;
use super::plan;
use super::plan::Role;
use crate::NetworkLevel;
use crate::Result;
use crate::SandboxError;
use crate::SandboxSpec;

/// Creates and starts a container for `spec`; returns its id.
pub(crate) async fn launch(
    docker: &Docker,
    config: &DockerConfig,
    spec: &SandboxSpec,
    role: &Role,
) -> Result<String> {
    plan::validate_spec(spec)?;
    let what = || match role {
        Role::Task(task) => format!("creating container for task {task}"),
        Role::Pool(slot) => format!("creating pool container {slot}"),
    };
    if !spec.workspace.is_dir() {
        return Err(SandboxError::Invalid(format!(
            "{}: workspace {} is not a directory",
            what(),
            spec.workspace.display()
        )));
    }
    if spec.network == NetworkLevel::Open {
        ensure_open_network(docker).await?;
    }
    let image = plan::image(config, spec);
    // The runtime has been seen to fail a start now and then under heavy
    // concurrent container churn ("stat /sbin/docker-init: permission
    // denied"); a fresh container then starts. Nothing ran, so one more try is safe.
    let mut retried = false;
    loop {
        let body = plan::plan(config, spec, plan::labels(&config.coordinator_id, role));
        let suffix = format!("{:08x}", rand::random::<u32>());
        let options = CreateContainerOptions {
            name: Some(plan::container_name(role, &suffix)),
            ..Default::default()
        };
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| create_error(what(), image, config.runtime.as_deref(), e))?;
        if spec.network == NetworkLevel::Allowlist
            && let Err(e) = super::egress::install(docker, &created.id).await
        {
            let _ = remove(docker, &created.id).await;
            return Err(e);
        }
        match docker.start_container(&created.id, None).await {
            Ok(()) => {
                tracing::debug!(container = short(&created.id), role = ?role, "container started");
                return Ok(created.id);
            }
            Err(e) => {
                // A container that never ran is of no use to anyone.
                let _ = remove(docker, &created.id).await;
                let transient = message(&e).contains("OCI runtime create failed")
                    && !message(&e).to_ascii_lowercase().contains("runtime \"");
                if transient && !retried {
                    tracing::warn!(role = ?role, error = %message(&e), "starting a container failed; trying once more");
                    retried = true;
                    continue;
                }
                return Err(create_error(what(), image, config.runtime.as_deref(), e));
            }
        }
    }
}

/// Makes the `open` network if the engine lacks it: a bridge with
/// inter-container traffic off, so sandboxes cannot reach one another.
pub(crate) async fn ensure_open_network(docker: &Docker) -> Result<()> {
    match docker.inspect_network(plan::OPEN_NETWORK, None).await {
        Ok(_) => return Ok(()),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(api_error("looking for the open network", e)),
    }
    let request = bollard::models::NetworkCreateRequest {
        name: plan::OPEN_NETWORK.to_owned(),
        driver: Some("bridge".to_owned()),
        options: Some(std::collections::HashMap::from([(
            "com.docker.network.bridge.enable_icc".to_owned(),
            "false".to_owned(),
        )])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        // 409: made meanwhile by another task.
        Ok(_)
        | Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(api_error("creating the open network (dockhand-open)", e)),
    }
}

/// Explains a failed create or start, naming the image or runtime when they are the cause.
fn create_error(
    what: String,
    image: &str,
    runtime: Option<&str>,
    err: DockerError,
) -> SandboxError {
    let text = message(&err);
    let lower = text.to_ascii_lowercase();
    let message = if lower.contains("no such image") {
        format!(
            "image {image} not found; build it with `dockhand image build` \
             (or, for an image of your own, build or load it on this host: nothing is pulled)"
        )
    } else if lower.contains("runtime")
        && let Some(runtime) = runtime
    {
        format!(
            "runtime {runtime} is not known to the Docker daemon ({text}); install it and \
             add it to the daemon's \"runtimes\" in daemon.json, or unset the runtime"
        )
    } else {
        text
    };
    SandboxError::Failed { what, message }
}

/// Removes a container and its anonymous volumes, stopping it first. Already gone is fine.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // Docker answers 409 when a removal of this container is already under way.
        Err(DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        }) if message.contains("already in progress") => Ok(()),
        Err(e) => Err(api_error(format!("removing container {}", short(id)), e)),
    }
}
