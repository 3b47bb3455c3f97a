//! The coordinator: HTTP API, WebSocket hub, scheduler and runner, wired together.

pub mod api;
pub mod auth;
pub mod config;
mod coordinator;
pub mod egress;
pub mod hub;
pub mod janitor;
mod metrics;
mod policy;
mod pool;
mod provision;
mod publish;
mod ratelimit;
mod runner;
pub mod sandboxes;
pub mod scheduler;
pub mod secrets;

use std::sync::Arc;

use dockhand_store::Store;

pub use config::Config;
pub use coordinator::Coordinator;
pub use coordinator::StartError;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Live events.
    pub hub: hub::Hub,
    /// The scheduler.
    pub scheduler: scheduler::Scheduler,
    /// Configuration.
    pub config: Arc<Config>,
    /// Keys, GitHub sign-in and rate limits.
    pub auth: Arc<auth::AuthState>,
    /// What an operator should know about this start (shown by `/healthz`).
    pub warnings: Arc<Vec<String>>,
}
