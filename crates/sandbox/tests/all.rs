//! The sandbox backends against the real thing: bubblewrap and real processes for
//! `local`, the machine's Docker engine for `docker`.
//!
//! Every local test makes its own tree under the target dir (not under the host's `/tmp`,
//! which the sandbox replaces with its own tmpfs, so absence there would prove
//! nothing): a fake data dir with an admin token and a Docker-like socket, the
//! provider's state dir and two task workspaces. Every docker test labels its
//! containers with a coordinator id of its own and removes them when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "all/docker_harness.rs"]
mod docker_harness;
#[path = "all/docker_isolation.rs"]
mod docker_isolation;
#[path = "all/docker_limits.rs"]
mod docker_limits;
#[path = "all/docker_processes.rs"]
mod docker_processes;
#[path = "all/docker_provider.rs"]
mod docker_provider;
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
