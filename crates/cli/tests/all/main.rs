//! Tests of the `dockhand` binary: real processes, real SQLite, git and bubblewrap,
//! with the fake Anthropic API running in the test process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod accounts;
mod common;
mod resume;
mod run;
