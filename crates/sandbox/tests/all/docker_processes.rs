//! Running commands in a docker sandbox: streaming, caps, stdin, timeouts, shells, kills.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::OutputStream;
use dockhand_sandbox::SandboxError;
use tokio::io::AsyncWriteExt;

use crate::docker_harness::DockerHost;
use crate::docker_harness::processes_matching;
use crate::docker_harness::wait_for_process;
use crate::harness::LIMIT;
use crate::harness::WAIT_FOR_SLEEP;
use crate::harness::exec;
use crate::harness::read_to_eof;
use crate::harness::read_until;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn docker_output_streams_while_the_command_runs() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;
    let out = sh(&*sb, "mkfifo /workspace/gate").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    let gate = host.workspace("t1").join("gate");

    // The command prints, then blocks on the FIFO until the sink, on seeing that print,
    // opens it. Without streaming the sink would hear nothing before the end and the
    // command would run into its timeout.
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
async fn docker_output_over_the_cap_is_cut_and_counted() {
    let host = DockerHost::new().await;
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
async fn docker_stdin_is_fed_then_closed() {
    let host = DockerHost::new().await;
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
async fn docker_exit_codes_and_requests_pass_through() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;
    let out = sh(&*sb, "exit 7").await;
    assert_eq!(out.exit_code, Some(7));
    assert!(!out.timed_out);

    // Stderr is the command's alone: the wrapper's pid line never shows.
    let out = sh(&*sb, "echo err >&2; echo out").await;
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(text(&out.stdout), "out\n");

    std::fs::create_dir(host.workspace("t1").join("sub")).unwrap();
    let mut req = ExecRequest::new(["pwd"]);
    req.cwd = Some("sub".to_owned());
    assert_eq!(text(&exec(&*sb, req).await.stdout), "/workspace/sub\n");
    assert_eq!(
        text(&exec(&*sb, ExecRequest::new(["pwd"])).await.stdout),
        "/workspace\n"
    );

    // A working directory that does not exist is an error naming it.
    let mut req = ExecRequest::new(["pwd"]);
    req.cwd = Some("/nowhere".to_owned());
    let err = sb.exec(req, &mut |_, _| {}).await.unwrap_err();
    assert!(matches!(err, SandboxError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("/nowhere"), "{err}");

    let mut req = ExecRequest::new(["sh", "-c", "echo $REQ_VAR $SPEC_VAR $USER $LANG"]);
    req.env = vec![("REQ_VAR".to_owned(), "from-request".to_owned())];
    assert_eq!(
        text(&exec(&*sb, req).await.stdout),
        "from-request from-spec agent C.UTF-8\n"
    );

    // Arguments reach the program untouched, without a shell in between.
    let out = exec(
        &*sb,
        ExecRequest::new(["printf", "%s|", "a b", "$HOME", "'q'"]),
    )
    .await;
    assert_eq!(text(&out.stdout), "a b|$HOME|'q'|");
    let out = exec(&*sb, ExecRequest::new(["no-such-program"])).await;
    assert_eq!(out.exit_code, Some(127));

    let err = sb
        .exec(ExecRequest::new(Vec::<String>::new()), &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_timeout_kills_the_whole_tree() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;
    let mut req = ExecRequest::new([
        "sh",
        "-c",
        "sleep 1000.777 & echo started; sleep 1000.777; wait",
    ]);
    req.timeout = Duration::from_secs(1);
    let mut started = false;
    let out = sb
        .exec(req, &mut |_, chunk| {
            started |= text(chunk).contains("started")
        })
        .await
        .unwrap();
    assert!(started, "the command never ran");
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        processes_matching(&*sb, "1000.777").await,
        Vec::<String>::new()
    );
    // The container itself lives on.
    assert_eq!(text(&sh(&*sb, "echo alive").await.stdout), "alive\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_shell_keeps_state_and_merges_stderr_in_order() {
    let host = DockerHost::new().await;
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
async fn docker_kill_all_kills_shells_and_commands() {
    let host = DockerHost::new().await;
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
            let req = ExecRequest::new(["sh", "-c", "echo go; exec sleep 600"]);
            sb.exec(req, &mut sink).await.unwrap()
        }
    });
    tokio::time::timeout(LIMIT, started_rx)
        .await
        .unwrap()
        .unwrap();
    wait_for_process(&*sb, "sleep 600").await;
    assert_eq!(processes_matching(&*sb, "1000.456").await.len(), 1);

    tokio::time::timeout(LIMIT, sb.kill_all())
        .await
        .unwrap()
        .unwrap();
    // Gone as soon as kill_all returns.
    assert_eq!(
        processes_matching(&*sb, "sleep 600").await,
        Vec::<String>::new()
    );
    assert_eq!(
        processes_matching(&*sb, "1000.456").await,
        Vec::<String>::new()
    );
    let out = tokio::time::timeout(LIMIT, running).await.unwrap().unwrap();
    assert_eq!(out.exit_code, None);
    assert!(!out.timed_out);
    read_to_eof(&mut *shell.output).await;

    // The sandbox stays usable, and its init and sleep survived.
    assert_eq!(text(&sh(&*sb, "echo again").await.stdout), "again\n");
    assert_eq!(processes_matching(&*sb, ": sleep infinity").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_killing_a_shell_ends_it_and_only_its_children() {
    let host = DockerHost::new().await;
    let sb = host.sandbox(false).await;

    // An unrelated command, which the shell's kill must leave alone.
    let bystander = tokio::spawn({
        let sb = Arc::clone(&sb);
        async move { exec(&*sb, ExecRequest::new(["sleep", "1000.654"])).await }
    });

    let mut shell = sb.spawn_shell(vec!["sh".to_owned()]).await.unwrap();
    shell
        .stdin
        .write_all(WAIT_FOR_SLEEP.replace("SECS", "1000.321").as_bytes())
        .await
        .unwrap();
    read_until(&mut *shell.output, "started").await;
    assert_eq!(processes_matching(&*sb, "1000.321").await.len(), 1);
    tokio::time::timeout(LIMIT, shell.control.kill())
        .await
        .unwrap();
    read_to_eof(&mut *shell.output).await;
    assert_eq!(
        processes_matching(&*sb, "1000.321").await,
        Vec::<String>::new()
    );
    assert_eq!(shell.control.killed_reason().await, None);

    wait_for_process(&*sb, "1000.654").await;
    sb.kill_all().await.unwrap();
    let out = tokio::time::timeout(LIMIT, bystander)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.exit_code, None);
}
