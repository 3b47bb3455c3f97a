//! Wire types shared by the coordinator, the CLI and the web UI.
//!
//! Every JSON shape that crosses a process boundary lives here, so the server,
//! the CLI and the browser cannot drift apart. Field names are snake_case.
#![deny(missing_docs)]

mod account;
mod admin;
mod api;
mod event;
mod ids;
mod network;
mod task;
mod ws;

pub use account::*;
pub use admin::*;
pub use api::*;
pub use event::*;
pub use ids::*;
pub use network::NetworkLevel;
pub use task::*;
pub use ws::*;

#[cfg(test)]
mod tests;
