//! Integration tests of the coordinator: real SQLite, real git, real bubblewrap,
//! the fake Anthropic API from testkit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "all/common.rs"]
mod common;

#[path = "all/access.rs"]
mod access;
#[path = "all/accounts.rs"]
mod accounts;
#[path = "all/api.rs"]
mod api;
#[path = "all/concurrency.rs"]
mod concurrency;
#[path = "all/docker.rs"]
mod docker;
#[path = "all/e2e.rs"]
mod e2e;
#[path = "all/faults.rs"]
mod faults;
#[path = "all/gc.rs"]
mod gc;
#[path = "all/images.rs"]
mod images;
#[path = "all/local.rs"]
mod local;
#[path = "all/network.rs"]
mod network;
#[path = "all/pull_requests.rs"]
mod pull_requests;
#[path = "all/security.rs"]
mod security;
#[path = "all/tools.rs"]
mod tools;
#[path = "all/ui.rs"]
mod ui;
#[path = "all/ws.rs"]
mod ws;
