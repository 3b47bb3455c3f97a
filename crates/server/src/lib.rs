//! The coordinator: HTTP API, WebSocket hub, scheduler and runner, wired together.

pub mod actor;
pub mod auth;
pub mod checkpoint;
pub mod config;
mod coordinator;
mod data_dir;
pub mod egress;
mod error;
pub mod http;
pub mod hub;
pub mod janitor;
mod metrics;
mod policy;
mod publish;
mod ratelimit;
mod runner;
pub mod sandboxes;
pub mod scheduler;
pub mod secrets;
mod services;
pub mod tasks;
mod text;
mod triggers;

/// The scripts the coordinator runs inside a sandbox, so the benchmark harness
/// runs exactly the same steps.
pub mod sandbox_scripts {
    pub use crate::publish::commit::BUNDLE as RESULT_BUNDLE;
    pub use crate::publish::commit::SCRIPT as COMMIT;
    pub use crate::runner::provision::seed::SCRIPT as SEED;
}

pub use config::Config;
pub use coordinator::Coordinator;
pub use error::StartError;
pub use services::Forge;
pub use services::Services;
