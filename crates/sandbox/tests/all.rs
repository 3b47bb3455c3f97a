//! The local backend against real bubblewrap and real processes.
//!
//! Every test makes its own tree under the target dir (not under the host's `/tmp`,
//! which the sandbox replaces with its own tmpfs, so absence there would prove
//! nothing): a fake data dir with an admin token and a Docker-like socket, the
//! provider's state dir and two task workspaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "all/files.rs"]
mod files;
#[path = "all/harness.rs"]
mod harness;
#[path = "all/isolation.rs"]
mod isolation;
#[path = "all/processes.rs"]
mod processes;
#[path = "all/provider.rs"]
mod provider;
