//! The sandbox image builder and the environment cache, against the real Docker
//! engine and real mmdebstrap. A missing engine fails every test here: Docker is
//! part of this machine (DESIGN.md, "Testing").
//!
//! Every image and container a test makes has a unique name or label and is removed
//! by a [`Cleanup`](harness::Cleanup) guard, also when the test fails. The environment-cache tests
//! start from `dockhand-sandbox:test`; when it is missing, the first test to need it
//! builds the default image (about a minute) and tags it so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod env_cache;
mod harness;
mod image;
