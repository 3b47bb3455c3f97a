//! What a sandbox cannot see or do: root powers, writes outside the workspace, host
//! paths, the network at `none`; and its memory limit.

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;

use super::Fixture;
use super::sandbox;
use super::spec;
use crate::harness::LIMIT;
use crate::harness::exec;
use crate::harness::host_address;
use crate::harness::path_str;
use crate::harness::sh;
use crate::harness::text;

pub(crate) async fn commands_run_unprivileged<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let out = sh(&*sb, "id -u; id -g; id -un; cat /proc/self/status").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("1000"));
    assert_eq!(lines.next(), Some("agent"));
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = format!("{field}:\t0000000000000000");
        assert!(stdout.contains(&line), "no {line:?} in {stdout}");
    }
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
}

pub(crate) async fn only_workspace_and_tmp_are_writable<F: Fixture>(fx: &F) {
    let sb = sandbox(fx).await;
    let out = sh(
        &*sb,
        r#"for d in / /usr /etc /home /var /workspace /tmp; do
            if (echo x > "${d%/}/probe") 2>/dev/null; then echo "$d yes"; else echo "$d no"; fi
        done"#,
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "/ no\n/usr no\n/etc no\n/home no\n/var no\n/workspace yes\n/tmp yes\n"
    );
    assert_eq!(
        std::fs::read_to_string(fx.workspace("t1").join("probe")).unwrap(),
        "x\n"
    );
    // HOME is the writable /tmp.
    let out = sh(&*sb, "echo $HOME; touch $HOME/x && echo ok").await;
    assert_eq!(text(&out.stdout), "/tmp\nok\n");
}

pub(crate) async fn host_paths_are_out_of_reach<F: Fixture>(fx: &F) {
    let secret = fx.host_dir().join("host-secret");
    std::fs::write(&secret, "host-secret-canary").unwrap();
    // A socket standing in for the Docker socket, next to the secret.
    let socket = fx.host_dir().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let other = fx.workspace("t2").join("secret.txt");
    std::fs::write(&other, "other task").unwrap();

    let sb = sandbox(fx).await;
    let script = r#"for p in "$@"; do
        if [ -e "$p" ] || [ -h "$p" ]; then echo "visible $p"; fi
        cat "$p" 2>/dev/null && echo "readable $p"
    done; true"#;
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
    ];
    for path in [&secret, &socket, &other, &fx.host_dir().to_path_buf()] {
        argv.push(path_str(path).to_owned());
    }
    for path in ["/var/run/docker.sock", "/run/docker.sock"] {
        argv.push(path.to_owned());
    }
    let out = exec(&*sb, ExecRequest::new(argv)).await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "the sandbox sees host paths");
}

pub(crate) async fn network_none_reaches_nothing<F: Fixture>(fx: &F) {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = host_address();
    let sb = sandbox(fx).await;

    // Loopback is the sandbox's own, where nothing listens.
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let mut req = ExecRequest::new(["bash", "-c", &connect]);
    req.timeout = LIMIT;
    let out = exec(&*sb, req).await;
    assert_ne!(out.exit_code, Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");

    // The host's own address has no route at all.
    let connect = format!("exec 3<>/dev/tcp/{host}/{port} && echo connected");
    let mut req = ExecRequest::new(["bash", "-c", &connect]);
    req.timeout = LIMIT;
    let out = exec(&*sb, req).await;
    assert_ne!(out.exit_code, Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );
    // The routing table holds its header and nothing else.
    let routes = sh(&*sb, "cat /proc/net/route").await;
    assert_eq!(text(&routes.stdout).lines().count(), 1, "{routes:?}");

    // The listener was reachable from the host all along.
    assert!(std::net::TcpStream::connect((host, port)).is_ok());
}

pub(crate) async fn out_of_memory_is_reported_and_survived<F: Fixture>(fx: &F) {
    let mut spec = spec(fx, "t1", NetworkLevel::None);
    spec.limits.memory_bytes = 64 << 20;
    let sb = fx.provider().create(spec).await.unwrap();
    let before = sb.limit_marks().await;
    let mut req = ExecRequest::new(["python3", "-c", "x = bytearray(512*1024*1024)"]);
    req.timeout = LIMIT;
    let out = exec(&*sb, req).await;
    // A SIGKILL death, reported as 128 + 9.
    assert_eq!(out.exit_code, Some(137), "{}", text(&out.stderr));
    assert!(
        out.killed_reason
            .as_deref()
            .is_some_and(|r| r.contains("out of memory")),
        "{out:?}"
    );
    let after = sb.limit_marks().await;
    assert!(
        after.oom_kills > before.oom_kills,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        sb.explain_limits(before, after).as_deref(),
        Some("command killed: out of memory (limit 64 MiB)")
    );
    assert_eq!(sb.explain_limits(after, after), None);
    // Only the command died.
    assert_eq!(text(&sh(&*sb, "echo alive").await.stdout), "alive\n");
}
