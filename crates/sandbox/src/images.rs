//! Environment images: a repository's `setup` run once on a base image and kept,
//! per owner and repository, for backends that run images.

use std::time::Duration;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::Limits;
use crate::NetworkLevel;
use crate::Result;

/// The repository every environment image is named in (`dockhand-env:<hash>`),
/// on every backend: no other image may take the name.
pub const ENVIRONMENT_IMAGE_REPO: &str = "dockhand-env";

/// An environment image to find in the cache, or to build.
#[derive(Clone, Debug)]
pub struct EnvironmentBuild {
    /// The image `setup` runs on; the backend's default image when `None`.
    pub base_image: Option<String>,
    /// The repository's setup script.
    pub setup: String,
    /// Who the image is for (a user id); another owner never shares it.
    pub owner: String,
    /// The repository (`owner/name` or a path): part of the cache key.
    pub repo: String,
    /// How much of the network `setup` reaches.
    pub network: NetworkLevel,
    /// `setup`'s resource limits.
    pub limits: Limits,
    /// How long `setup` may run.
    pub timeout: Duration,
}

/// The image a task runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltImage {
    /// Its name.
    pub image: String,
    /// True when it was built now, false when it came from the cache.
    pub built: bool,
}

/// A kept environment image, for `dockhand gc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its name, or its id when the name has moved to a newer build.
    pub image: String,
    /// When it was built.
    pub created: SystemTime,
    /// When it was last built or used; `None` when unknown.
    pub last_used: Option<SystemTime>,
}

/// Whose an image is, for the policy on which images a user may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageOwner {
    /// An environment image built for this owner (`None`: it names none).
    Environment(Option<String>),
    /// Named like environment images, but not one of them.
    ReservedName,
    /// Any other image: the operator's list decides.
    Shared,
}

impl ImageOwner {
    /// Whose `image` is by its name alone, for an image that is not an
    /// environment image (or a backend without them).
    pub fn by_name(image: &str) -> ImageOwner {
        match image.split_once(':') {
            Some((ENVIRONMENT_IMAGE_REPO, _)) => ImageOwner::ReservedName,
            _ => ImageOwner::Shared,
        }
    }
}

/// The backend's environment images.
#[async_trait]
pub trait Images: Send + Sync {
    /// Whose `image` is.
    async fn owner(&self, image: &str) -> ImageOwner;

    /// The cached image for `build`, built first when there is none; setup's
    /// output goes to `output` as it comes.
    async fn build(
        &self,
        build: &EnvironmentBuild,
        output: &mut (dyn for<'b> FnMut(&'b [u8]) + Send),
    ) -> Result<BuiltImage>;

    /// Every kept environment image.
    async fn list(&self) -> Result<Vec<ImageInfo>>;

    /// Removes an image; one already gone is fine.
    async fn remove(&self, image: &str) -> Result<()>;
}
