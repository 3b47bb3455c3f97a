//! Integration tests of the coordinator: real SQLite, real git, real bubblewrap,
//! the fake Anthropic API from testkit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

mod access;
mod accounts;
mod api;
mod checkpoints;
mod concurrency;
mod docker;
mod e2e;
mod faults;
mod gc;
mod handback;
mod images;
mod limits;
mod local;
mod network;
mod ownership;
mod pull_requests;
mod router;
mod security;
mod tools;
mod ui;
mod ui_driver;
mod ws;
