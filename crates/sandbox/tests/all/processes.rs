//! Running commands: timeouts, output caps and streaming, stdin, shells, kills.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::OutputStream;
use dockhand_sandbox::SandboxError;
use tokio::io::AsyncWriteExt;

use crate::harness::Host;
use crate::harness::LIMIT;
use crate::harness::WAIT_FOR_SLEEP;
use crate::harness::exec;
use crate::harness::processes_matching;
use crate::harness::read_to_eof;
use crate::harness::read_until;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn timeout_kills_the_whole_tree() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    let needle = "1000.123";
    let mut seen_running = 0;
    let mut sink = |_: OutputStream, chunk: &[u8]| {
        if text(chunk).contains("started") {
            // At least the shell, whose command line holds the script, is running.
            seen_running = processes_matching(needle).len();
        }
    };
    let mut req = ExecRequest::new([
        "sh",
        "-c",
        "sleep 1000.123 & echo started; sleep 1000.123; wait",
    ]);
    req.timeout = Duration::from_secs(1);
    // `exec` returns only after bwrap is reaped and its output pipes closed, which
    // happens when the last process holding them (the sleeps) has died.
    let out = sb.exec(req, &mut sink).await.unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert!(seen_running > 0, "the command never ran");
    assert_eq!(processes_matching(needle), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_over_the_cap_is_cut_and_counted() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    let mut streamed = 0usize;
    let mut sink = |_: OutputStream, chunk: &[u8]| streamed += chunk.len();
    let mut req = ExecRequest::new([
        "sh",
        "-c",
        "head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2",
    ]);
    req.output_cap = 1000;
    let out = sb.exec(req, &mut sink).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr.len(), 1000);
    assert_eq!(out.dropped_bytes, 299_000 + 4_000);
    assert_eq!(streamed, 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_streams_while_the_command_runs() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    let gate = host.workspace("t1").join("gate");
    let out = sh(&*sb, "mkfifo /workspace/gate").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));

    // The command prints, then blocks on the FIFO until the sink, on seeing that
    // print, opens it. Without streaming the sink would hear nothing before the end
    // and the command would run into its timeout.
    let mut sink = |stream: OutputStream, chunk: &[u8]| {
        if stream == OutputStream::Stdout && text(chunk).contains("ready") {
            let mut fifo = std::fs::OpenOptions::new().write(true).open(&gate).unwrap();
            fifo.write_all(b"released\n").unwrap();
        }
    };
    let mut req = ExecRequest::new(["sh", "-c", "echo ready; cat /workspace/gate"]);
    req.timeout = LIMIT;
    let out = sb.exec(req, &mut sink).await.unwrap();
    assert!(!out.timed_out);
    assert_eq!(text(&out.stdout), "ready\nreleased\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_fed_then_closed() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    // More than a pipe buffer each way, so feeding and reading must overlap.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = ExecRequest::new(["cat"]);
    req.stdin = Some(data.clone());
    req.output_cap = data.len();
    let out = exec(&*sb, req).await;
    assert_eq!(out.exit_code, Some(0));
    assert!(out.stdout == data, "cat returned other bytes");

    // Without stdin, a reader sees end-of-file at once instead of hanging.
    let out = exec(&*sb, ExecRequest::new(["wc", "-c"])).await;
    assert_eq!(text(&out.stdout).trim(), "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_and_requests_pass_through() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    let out = sh(&*sb, "exit 7").await;
    assert_eq!(out.exit_code, Some(7));
    assert!(!out.timed_out);

    std::fs::create_dir(host.workspace("t1").join("sub")).unwrap();
    let mut req = ExecRequest::new(["pwd"]);
    req.cwd = Some("sub".to_owned());
    assert_eq!(text(&exec(&*sb, req).await.stdout), "/workspace/sub\n");
    assert_eq!(
        text(&exec(&*sb, ExecRequest::new(["pwd"])).await.stdout),
        "/workspace\n"
    );

    // A command named like a bwrap option is run (and not found), not obeyed.
    let out = exec(&*sb, ExecRequest::new(["--bind", "/", "/host"])).await;
    assert_ne!(out.exit_code, Some(0));
    let out = sh(&*sb, "test -e /host").await;
    assert_ne!(out.exit_code, Some(0));

    let err = sb
        .exec(ExecRequest::new(Vec::<String>::new()), &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_keeps_state_and_merges_stderr_in_order() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn kill_all_kills_shells_and_commands() {
    let host = Host::new();
    let sb = host.sandbox(false).await;

    let mut shell = sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    shell
        .stdin
        .write_all(WAIT_FOR_SLEEP.replace("SECS", "1000.456").as_bytes())
        .await
        .unwrap();
    read_until(&mut *shell.output, "started").await;

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn({
        let sb = Arc::clone(&sb);
        async move {
            let mut started = Some(started_tx);
            let mut sink = move |_: OutputStream, chunk: &[u8]| {
                if text(chunk).contains("go")
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                }
            };
            let req = ExecRequest::new(["sh", "-c", "echo go; sleep 1000.789"]);
            sb.exec(req, &mut sink).await.unwrap()
        }
    });
    tokio::time::timeout(LIMIT, started_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(!processes_matching("1000.456").is_empty());
    assert!(!processes_matching("1000.789").is_empty());

    tokio::time::timeout(LIMIT, sb.kill_all())
        .await
        .unwrap()
        .unwrap();
    let out = tokio::time::timeout(LIMIT, running).await.unwrap().unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out);
    // End-of-file on the shell's output: every process that held it is gone.
    read_to_eof(&mut *shell.output).await;
    assert_eq!(processes_matching("1000.456"), Vec::<String>::new());
    assert_eq!(processes_matching("1000.789"), Vec::<String>::new());

    // The sandbox stays usable.
    assert_eq!(text(&sh(&*sb, "echo again").await.stdout), "again\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_shell_ends_it_and_its_children() {
    let host = Host::new();
    let sb = host.sandbox(false).await;
    let mut shell = sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    shell
        .stdin
        .write_all(WAIT_FOR_SLEEP.replace("SECS", "1000.321").as_bytes())
        .await
        .unwrap();
    read_until(&mut *shell.output, "started").await;
    assert!(!processes_matching("1000.321").is_empty());
    tokio::time::timeout(LIMIT, shell.control.kill())
        .await
        .unwrap();
    read_to_eof(&mut *shell.output).await;
    assert_eq!(processes_matching("1000.321"), Vec::<String>::new());
    assert_eq!(shell.control.killed_reason().await, None);
}
