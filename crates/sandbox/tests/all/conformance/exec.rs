//! One-shot commands: exit codes, arguments, output, stdin, timeouts, environment and
//! working directory.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::OutputStream;
use dockhand_sandbox::SandboxError;

use super::Fixture;
use super::sandbox;
use super::wait_for_process;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::needle;
use crate::harness::sh;
use crate::harness::text;

pub(crate) async fn exec_exit_codes_and_argv<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let out = sh(&*sb, "exit 7").await;
    assert_eq!(out.exit_code, Some(7));
    assert!(!out.timed_out);

    // Arguments reach the program untouched, without a shell in between.
    let out = exec(
        &*sb,
        ExecRequest::new(["printf", "%s|", "a b", "$HOME", "'q'"]),
    )
    .await;
    assert_eq!(text(&out.stdout), "a b|$HOME|'q'|");
    let out = exec(&*sb, ExecRequest::new(["no-such-program"])).await;
    assert_eq!(out.exit_code, Some(127));
    // A command named like a bwrap option is run (and not found), not obeyed.
    let out = exec(&*sb, ExecRequest::new(["--bind", "/", "/host"])).await;
    assert_eq!(out.exit_code, Some(127));
    let out = sh(&*sb, "test -e /host").await;
    assert_ne!(out.exit_code, Some(0));

    let err = sb
        .exec(ExecRequest::new(Vec::<String>::new()), &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::Invalid(_)), "{err:?}");
}

pub(crate) async fn exec_keeps_stdout_and_stderr_apart<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    // Stderr is the command's alone: no bookkeeping of the backend's shows.
    let out = sh(&*sb, "echo err >&2; echo out").await;
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(text(&out.stdout), "out\n");
}

pub(crate) async fn exec_output_over_the_cap_is_cut_and_counted<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
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

pub(crate) async fn exec_output_streams_while_the_command_runs<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let out = sh(&*sb, "mkfifo /workspace/gate").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    let gate = fx.workspace("t1").join("gate");

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

pub(crate) async fn exec_stdin_is_fed_then_closed<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
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

pub(crate) async fn exec_timeout_kills_the_whole_tree<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let needle = needle();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let running = tokio::spawn({
        let sb = Arc::clone(&sb);
        let script = format!("sleep {needle} & echo started; sleep {needle}; wait");
        async move {
            let mut req = ExecRequest::new(["sh", "-c", &script]);
            req.timeout = Duration::from_secs(1);
            let mut started = Some(started_tx);
            let mut sink = move |_: OutputStream, chunk: &[u8]| {
                if text(chunk).contains("started")
                    && let Some(tx) = started.take()
                {
                    let _ = tx.send(());
                    // Holds the command's output loop, and with it the timeout, until
                    // the test has seen the command running.
                    let _ = tokio::task::block_in_place(|| seen_rx.recv());
                }
            };
            sb.exec(req, &mut sink).await.unwrap()
        }
    });
    tokio::time::timeout(LIMIT, started_rx)
        .await
        .expect("the command never ran")
        .unwrap();
    wait_for_process(fx, &*sb, &needle).await;
    seen_tx.send(()).unwrap();

    let out = tokio::time::timeout(LIMIT, running).await.unwrap().unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        fx.processes_matching(&*sb, &needle).await,
        Vec::<String>::new()
    );
    // The sandbox itself lives on.
    assert_eq!(text(&sh(&*sb, "echo alive").await.stdout), "alive\n");
}

pub(crate) async fn exec_env_is_the_sandboxs_own<F: Fixture>(fx: &F) {
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "the test runner should set CARGO_MANIFEST_DIR on the host"
    );
    let sb = sandbox(fx).await;
    let mut req = ExecRequest::new(["env", "-0"]);
    req.env = vec![("REQ_VAR".to_owned(), "from-request".to_owned())];
    let out = exec(&*sb, req).await;
    let inside: BTreeSet<String> = text(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expected = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/tmp",
        "USER=agent",
        "LANG=C.UTF-8",
        "TERM=dumb",
        "SPEC_VAR=from-spec",
        "REQ_VAR=from-request",
    ];
    for var in expected {
        assert!(inside.contains(var), "no {var} in {inside:?}");
    }
    for (key, value) in std::env::vars_os() {
        let host = format!("{}={}", key.to_string_lossy(), value.to_string_lossy());
        assert!(
            expected.contains(&host.as_str()) || !inside.contains(&host),
            "the host's {host} leaked in"
        );
    }
    assert!(
        !inside.iter().any(|v| v.starts_with("CARGO_MANIFEST_DIR=")),
        "{inside:?}"
    );
}

pub(crate) async fn exec_cwd_is_the_workspace_unless_asked<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    assert_eq!(
        text(&exec(&*sb, ExecRequest::new(["pwd"])).await.stdout),
        "/workspace\n"
    );
    std::fs::create_dir(fx.workspace("t1").join("sub")).unwrap();
    for (cwd, expected) in [("sub", "/workspace/sub\n"), ("/tmp", "/tmp\n")] {
        let mut req = ExecRequest::new(["pwd"]);
        req.cwd = Some(cwd.to_owned());
        assert_eq!(text(&exec(&*sb, req).await.stdout), expected);
    }
}
