//! The sandbox conformance suite: what every backend must do, written once against
//! `&dyn SandboxProvider` and run for each backend.
//!
//! A backend proves itself by implementing [`Fixture`] (how to make its provider, a
//! workspace, and how to see the processes in a sandbox) and adding a line to the
//! [`conformance!`] invocations at the end of this file; each test then runs as
//! `conformance::<backend>::<test>`. What only one backend does (bubblewrap's plan,
//! seccomp and cgroups; Docker's labels, images, pool and replacement) is tested
//! beside that backend's fixture instead.

mod exec;
mod files;
mod isolation;
mod processes;
mod provider;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use dockhand_sandbox::Limits;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxProvider;
use dockhand_sandbox::SandboxSpec;

use crate::harness::LIMIT;

/// What the suite needs from a backend.
pub(crate) trait Fixture: Sized {
    /// What [`SandboxProvider::backend`] answers.
    const BACKEND: &'static str;

    /// A provider with state of its own, for one test; it cleans up when dropped.
    async fn new() -> Self;

    /// The provider under test.
    fn provider(&self) -> &dyn SandboxProvider;

    /// A host directory of this test's, outside every workspace, for things no
    /// sandbox may reach.
    fn host_dir(&self) -> &Path;

    /// The workspace of `task` on the host: made on first use and owned as the
    /// provider asks ([`SandboxProvider::workspace_owner`]).
    fn workspace(&self, task: &str) -> PathBuf;

    /// The processes running in `sb` whose command line contains `needle`.
    async fn processes_matching(&self, sb: &dyn Sandbox, needle: &str) -> Vec<String>;
}

/// A spec for `task` at `network` with the default limits and one variable of its own.
pub(crate) fn spec<F: Fixture>(fx: &F, task: &str, network: NetworkLevel) -> SandboxSpec {
    SandboxSpec {
        task_id: task.to_owned(),
        workspace: fx.workspace(task),
        network,
        limits: Limits::default(),
        env: vec![("SPEC_VAR".to_owned(), "from-spec".to_owned())],
        image: None,
    }
}

/// A sandbox for task `t1` without network.
pub(crate) async fn sandbox<F: Fixture>(fx: &F) -> Arc<dyn Sandbox> {
    let spec = spec(fx, "t1", NetworkLevel::None);
    fx.provider().create(spec).await.unwrap()
}

/// Waits (within [`LIMIT`]) until a process whose command line contains `needle` runs
/// in `sb`.
pub(crate) async fn wait_for_process<F: Fixture>(fx: &F, sb: &dyn Sandbox, needle: &str) {
    let found = tokio::time::timeout(LIMIT, async {
        while fx.processes_matching(sb, needle).await.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no process {needle:?} started in the sandbox"
    );
}

/// Makes `mod $backend` with one test per conformance test, each on a fresh `$fixture`.
macro_rules! conformance {
    ($backend:ident, $fixture:ty) => {
        mod $backend {
            conformance!(@tests $fixture;
                exec::exec_exit_codes_and_argv,
                exec::exec_keeps_stdout_and_stderr_apart,
                exec::exec_output_over_the_cap_is_cut_and_counted,
                exec::exec_output_streams_while_the_command_runs,
                exec::exec_stdin_is_fed_then_closed,
                exec::exec_timeout_kills_the_whole_tree,
                exec::exec_env_is_the_sandboxs_own,
                exec::exec_cwd_is_the_workspace_unless_asked,
                files::files_round_trip_through_the_workspace,
                files::files_refuses_what_it_should,
                files::files_symlinks_resolve_inside_the_sandbox,
                files::bundles_go_in_and_come_back_whole,
                processes::shell_keeps_state_and_merges_stderr_in_order,
                processes::kill_all_stops_shells_and_commands,
                processes::killing_a_shell_ends_it_and_only_its_children,
                isolation::commands_run_unprivileged,
                isolation::only_workspace_and_tmp_are_writable,
                isolation::host_paths_are_out_of_reach,
                isolation::network_none_reaches_nothing,
                isolation::out_of_memory_is_reported_and_survived,
                provider::provider_creates_lists_and_destroys,
                provider::attach_finds_the_workspace_again,
            );
        }
    };
    (@tests $fixture:ty; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $test() {
                let fixture = <$fixture as super::Fixture>::new().await;
                super::$module::$test(&fixture).await;
            }
        )*
    };
}

conformance!(docker, crate::docker::DockerHost);
conformance!(local, crate::local::Host);
