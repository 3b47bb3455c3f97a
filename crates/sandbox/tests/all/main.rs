//! The sandbox backends against the real thing: bubblewrap and real processes for
//! `local`, the machine's Docker engine for `docker`.
//!
//! [`conformance`] is what every backend must do, written once and run for each;
//! [`local`] and [`docker`] hold each backend's fixture and what only it does.
//!
//! Every test makes its own tree under the target dir (not under the host's `/tmp`,
//! which the sandbox replaces with its own tmpfs, so absence there would prove
//! nothing): workspaces, host files no sandbox may reach and, for `local`, the
//! provider's state dir. Every docker test labels its containers with a coordinator
//! id of its own and removes them when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod docker;
mod harness;
mod local;
