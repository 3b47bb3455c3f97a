//! Git on the coordinator's side: resolving a repository argument, keeping
//! mirrors, bundling what a workspace is seeded from, reading a repository's
//! environment at a commit, and importing a task's bundle back.
//!
//! The host runs git only in directories it owns or the user's own source
//! repository, never in a workspace the agent has touched.

mod checkpoint;
mod environment;
mod error;
mod git;
pub mod github;
mod mirror;
mod remote;
mod repo;
mod seed;

pub use checkpoint::CHECKPOINT_REF;
pub use checkpoint::fetch_checkpoint;
pub use environment::ENVIRONMENT_FILE;
pub use environment::Environment;
pub use environment::Limits;
pub use error::ForgeError;
pub use git::bundle_heads;
pub use git::fetch_bundle;
pub use mirror::Mirrors;
pub use remote::RemotePolicy;
pub use repo::RepoSource;
pub use repo::resolve_repo;
pub use seed::Base;
pub use seed::seed_bundle;

/// Result alias for this crate.
pub type Result<T, E = ForgeError> = std::result::Result<T, E>;
