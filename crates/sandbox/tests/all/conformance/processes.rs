//! The interactive shell, and stopping processes: kill_all (Cancel) and a shell's kill.

use std::sync::Arc;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::OutputStream;
use tokio::io::AsyncWriteExt;

use super::Fixture;
use super::sandbox;
use super::wait_for_process;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::needle;
use crate::harness::read_to_eof;
use crate::harness::read_until;
use crate::harness::sh;
use crate::harness::text;
use crate::harness::wait_for_sleep;

pub(crate) async fn shell_keeps_state_and_merges_stderr_in_order<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let mut shell = sb
        .spawn_shell(vec![
            "bash".to_owned(),
            "--noprofile".to_owned(),
            "--norc".to_owned(),
        ])
        .await
        .unwrap();
    shell
        .stdin
        .write_all(b"cd /tmp; export X=1\npwd; echo $X\necho e1 >&2; echo o1; echo e2 >&2; echo o2\nexit\n")
        .await
        .unwrap();
    let all = read_to_eof(&mut *shell.output).await;
    assert_eq!(all, "/tmp\n1\ne1\no1\ne2\no2\n");
}

pub(crate) async fn kill_all_stops_shells_and_commands<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let in_shell = needle();
    let in_exec = needle();

    let mut shell = sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    shell
        .stdin
        .write_all(wait_for_sleep(&in_shell).as_bytes())
        .await
        .unwrap();
    read_until(&mut *shell.output, "started").await;

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn({
        let sb = Arc::clone(&sb);
        let script = format!("echo go; exec sleep {in_exec}");
        async move {
            let mut started = Some(started_tx);
            let mut sink = move |_: OutputStream, chunk: &[u8]| {
                if text(chunk).contains("go")
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                }
            };
            let req = ExecRequest::new(["sh", "-c", &script]);
            sb.exec(req, &mut sink).await.unwrap()
        }
    });
    tokio::time::timeout(LIMIT, started_rx)
        .await
        .unwrap()
        .unwrap();
    wait_for_process(fx, &*sb, &in_exec).await;
    assert_eq!(fx.processes_matching(&*sb, &in_shell).await.len(), 1);

    tokio::time::timeout(LIMIT, sb.kill_all())
        .await
        .unwrap()
        .unwrap();
    // Gone as soon as kill_all returns.
    assert_eq!(
        fx.processes_matching(&*sb, &in_exec).await,
        Vec::<String>::new()
    );
    assert_eq!(
        fx.processes_matching(&*sb, &in_shell).await,
        Vec::<String>::new()
    );
    let out = tokio::time::timeout(LIMIT, running).await.unwrap().unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out);
    // End-of-file on the shell's output: every process that held it is gone.
    read_to_eof(&mut *shell.output).await;

    // The sandbox stays usable.
    assert_eq!(text(&sh(&*sb, "echo again").await.stdout), "again\n");
}

pub(crate) async fn killing_a_shell_ends_it_and_only_its_children<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let in_shell = needle();
    let bystanding = needle();

    // An unrelated command, which the shell's kill must leave alone.
    let bystander = tokio::spawn({
        let sb = Arc::clone(&sb);
        let bystanding = bystanding.clone();
        async move { exec(&*sb, ExecRequest::new(["sleep", &bystanding])).await }
    });

    let mut shell = sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    shell
        .stdin
        .write_all(wait_for_sleep(&in_shell).as_bytes())
        .await
        .unwrap();
    read_until(&mut *shell.output, "started").await;
    assert_eq!(fx.processes_matching(&*sb, &in_shell).await.len(), 1);
    tokio::time::timeout(LIMIT, shell.control.kill())
        .await
        .unwrap();
    read_to_eof(&mut *shell.output).await;
    assert_eq!(
        fx.processes_matching(&*sb, &in_shell).await,
        Vec::<String>::new()
    );
    assert_eq!(shell.control.killed_reason().await, None);

    wait_for_process(fx, &*sb, &bystanding).await;
    sb.kill_all().await.unwrap();
    let out = tokio::time::timeout(LIMIT, bystander)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out, "the bystander outlived kill_all: {out:?}");
}
