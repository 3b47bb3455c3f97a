//! The docker backend's environment images, through the [`Images`] capability:
//! the cache in [`env_cache`](super::env_cache), labelled for this coordinator.

use async_trait::async_trait;

use super::engine::Engine;
use super::env_cache;
use super::env_cache::ENV_LABEL;
use super::env_cache::ENV_OWNER_LABEL;
use super::env_cache::EnvBuild;
use super::image::image_labels;
use super::plan::LABEL_COORDINATOR;
use crate::BuiltImage;
use crate::EnvironmentBuild;
use crate::ImageInfo;
use crate::ImageOwner;
use crate::Images;
use crate::Result;

/// Environment images in one engine.
pub(crate) struct DockerImages {
    pub(crate) engine: Engine,
}

#[async_trait]
impl Images for DockerImages {
    async fn owner(&self, image: &str) -> ImageOwner {
        let labels = image_labels(&self.engine.docker, image)
            .await
            .unwrap_or_default();
        if labels.get(ENV_LABEL).map(String::as_str) == Some("1") {
            ImageOwner::Environment(labels.get(ENV_OWNER_LABEL).cloned())
        } else {
            ImageOwner::by_name(image)
        }
    }

    async fn build(
        &self,
        build: &EnvironmentBuild,
        output: &mut (dyn for<'b> FnMut(&'b [u8]) + Send),
    ) -> Result<BuiltImage> {
        let config = &self.engine.config;
        let request = EnvBuild {
            base_image: build
                .base_image
                .clone()
                .unwrap_or_else(|| config.image.clone()),
            setup: build.setup.clone(),
            owner: build.owner.clone(),
            repo: build.repo.clone(),
            network: build.network,
            limits: build.limits,
            labels: [(LABEL_COORDINATOR.to_owned(), config.coordinator_id.clone())].into(),
            timeout: build.timeout,
        };
        let egress = self.engine.egress.clone();
        let done =
            env_cache::ensure_env_image(&self.engine.docker, &request, egress, |b: &[u8]| {
                output(b)
            })
            .await?;
        Ok(BuiltImage {
            image: done.image,
            built: done.built,
        })
    }

    async fn list(&self) -> Result<Vec<ImageInfo>> {
        let found = env_cache::list_env_images(&self.engine.docker).await?;
        Ok(found
            .into_iter()
            .map(|i| ImageInfo {
                image: i.image,
                created: i.created,
                last_used: i.last_used,
            })
            .collect())
    }

    async fn remove(&self, image: &str) -> Result<()> {
        Ok(env_cache::remove_image(&self.engine.docker, image).await?)
    }
}
