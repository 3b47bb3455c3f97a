//! What only a bubblewrap sandbox is: its host name and generated users, kernel
//! surface (remounts, nested namespaces, seccomp), host paths bwrap never binds, its
//! exact environment, and `open` through slirp4netns.

use std::collections::BTreeSet;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::NetworkLevel;
use dockhand_sandbox::SandboxProvider;

use super::Host;
use crate::conformance::sandbox;
use crate::conformance::spec;
use crate::harness::exec;
use crate::harness::path_str;
use crate::harness::sh;
use crate::harness::text;

#[tokio::test(flavor = "multi_thread")]
async fn the_host_name_and_users_are_the_sandboxs_own() {
    let host = Host::new();
    let sb = sandbox(&host).await;
    let out = sh(&*sb, "cat /proc/sys/kernel/hostname; cat /etc/passwd").await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("dockhand"));
    // The generated passwd, not the host's.
    assert!(
        stdout.contains("agent:x:1000:1000::/tmp:/bin/bash"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mounts_cannot_be_made_writable() {
    // The mount(2) syscall itself, through perl: util-linux's `mount` refuses a
    // non-root user before ever asking the kernel, so it would prove nothing.
    let mount_nr = match std::env::consts::ARCH {
        "x86_64" => 165,
        "aarch64" => 40,
        arch => panic!("no mount(2) syscall number for {arch} in this test"),
    };
    let script = format!(
        r#"for my $t ("/usr", "/", "/etc/passwd") {{
            for my $flags (32, 4128) {{ # MS_REMOUNT, MS_REMOUNT|MS_BIND
                my ($src, $dst, $fs) = ("none", $t, "none");
                my $r = syscall({mount_nr}, $src, $dst, $fs, $flags, 0);
                print "$t $flags $r ", $! + 0, "\n";
            }}
        }}"#
    );
    let host = Host::new();
    let sb = sandbox(&host).await;
    let out = exec(&*sb, ExecRequest::new(["perl", "-e", &script])).await;
    assert_eq!(out.exit_code, Some(0), "needs perl: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    for line in stdout.lines() {
        // -1 and EPERM: the kernel refused.
        assert!(line.ends_with(" -1 1"), "remount allowed: {line}");
    }
    let out = exec(&*sb, ExecRequest::new(["touch", "/usr/probe"])).await;
    assert_ne!(out.exit_code, Some(0), "/usr is writable");

    // A nested user namespace would make the sandbox root of its own little world.
    if host.provider.host_layout().disable_userns {
        let out = exec(
            &*sb,
            ExecRequest::new(["unshare", "--user", "--map-root-user", "true"]),
        )
        .await;
        assert_ne!(out.exit_code, Some(0), "nested user namespace allowed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_bound_is_readable_only_by_its_owner() {
    // The sandbox user maps onto the coordinator's uid, so as root it passes the
    // owner check on root's files: a file the host keeps from others (a TLS key, a
    // shadow file) must simply not be there. (Directories are left out: bwrap makes
    // the parents of its mount points, such as /etc, mode 0700 for the sandbox user.)
    let host = Host::new();
    let sb = sandbox(&host).await;
    let out = sh(
        &*sb,
        "find /etc /usr /bin /sbin /lib /lib64 -type f -user agent ! -perm -o=r 2>/dev/null; \
         test -e /etc/ssl/private && echo /etc/ssl/private; \
         test -e /etc/shadow && echo /etc/shadow; true",
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "",
        "owner-only files visible in the sandbox"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn state_and_host_directories_are_out_of_reach() {
    let host = Host::new();
    let state_file = host.data.join("state/seccomp-eperm.bpf");
    assert!(
        state_file.exists(),
        "{} should exist on the host",
        state_file.display()
    );

    let sb = sandbox(&host).await;
    let script = r#"for p in "$@"; do
        if [ -e "$p" ] || [ -h "$p" ]; then echo "visible $p"; fi
        cat "$p" 2>/dev/null && echo "readable $p"
    done; true"#;
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script.to_owned(),
        "sh".to_owned(),
        path_str(&state_file).to_owned(),
    ];
    for path in ["/run", "/var/run", "/var", "/home", "/root"] {
        argv.push(path.to_owned());
    }
    let out = exec(&*sb, ExecRequest::new(argv)).await;
    assert_eq!(out.exit_code, Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "the sandbox sees host paths");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environment_is_exactly_the_sandboxs() {
    let host = Host::new();
    let sb = sandbox(&host).await;
    let mut req = ExecRequest::new(["env", "-0"]);
    req.env = vec![("REQ_VAR".to_owned(), "from-request".to_owned())];
    let out = exec(&*sb, req).await;
    let inside: BTreeSet<String> = text(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let expected: BTreeSet<String> = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/tmp",
        "USER=agent",
        "LANG=C.UTF-8",
        "TERM=dumb",
        "SPEC_VAR=from-spec",
        "REQ_VAR=from-request",
        // bwrap sets PWD itself after `--chdir`.
        "PWD=/workspace",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(inside, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_goes_out_through_slirp_but_not_to_the_hosts_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let host = Host::new();
    let open = host
        .provider
        .create(spec(&host, "t1", NetworkLevel::Open))
        .await
        .unwrap();
    let out = exec(&*open, ExecRequest::new(["bash", "-c", &script])).await;
    assert_ne!(out.exit_code, Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
    let route = sh(&*open, "grep -c tap0 /proc/net/route").await;
    assert_eq!(text(&route.stdout), "2\n", "{}", text(&route.stderr));
    // The listener was reachable from the host all along.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seccomp_filter_refuses_kernel_surface_but_threads_still_work() {
    let host = Host::new();
    let sb = sandbox(&host).await;
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING) and bpf(): allowed to
    // any user without the filter, EPERM with it. Threads need clone3's fallback.
    let script = "import ctypes, threading\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  for name, nr, args in [('keyctl', 250, (0, -3, 0)), ('bpf', 321, (0, 0, 0))]:\n\
                  \x20   r = libc.syscall(nr, *args)\n\
                  \x20   print(name, r, ctypes.get_errno())\n\
                  t = threading.Thread(target=lambda: print('thread ran'))\n\
                  t.start(); t.join()\n";
    let out = exec(&*sb, ExecRequest::new(["python3", "-c", script])).await;
    let text = text(&out.stdout);
    assert!(
        text.contains("keyctl -1 1\n"),
        "{text}{}",
        crate::harness::text(&out.stderr)
    );
    assert!(text.contains("bpf -1 1\n"), "{text}");
    assert!(text.contains("thread ran"), "{text}");
}
