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

pub use config::Config;
pub use coordinator::Coordinator;
pub use error::StartError;
pub use services::Forge;
pub use services::Services;
