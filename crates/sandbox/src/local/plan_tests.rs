use std::path::PathBuf;

use super::HostLayout;
use super::Request;
use super::RootEntry;
use super::plan;
use crate::NetworkLevel;
use crate::SandboxSpec;

fn host() -> HostLayout {
    HostLayout {
        roots: vec![
            ("/bin".to_owned(), RootEntry::Symlink("usr/bin".to_owned())),
            ("/lib".to_owned(), RootEntry::Symlink("usr/lib".to_owned())),
            ("/lib64".to_owned(), RootEntry::Directory),
        ],
        passwd: "/state/etc/passwd".to_owned(),
        group: "/state/etc/group".to_owned(),
        disable_userns: true,
        helper: "/state/helper".to_owned(),
        slirp_resolv: "/state/etc/resolv-slirp.conf".to_owned(),
    }
}

fn spec(network: NetworkLevel) -> SandboxSpec {
    SandboxSpec {
        task_id: "t1".to_owned(),
        workspace: PathBuf::from("/data/workspaces/t1"),
        network,
        limits: crate::Limits::default(),
        env: vec![("CI".to_owned(), "1".to_owned())],
        image: None,
    }
}

fn argv() -> Vec<String> {
    vec!["echo".to_owned(), "hi".to_owned()]
}

/// The plan of `argv()` in `spec`, with `cwd`, `env` and an egress socket.
fn plan_of(spec: &SandboxSpec, cwd: Option<&str>, env: &[(String, String)]) -> Vec<String> {
    plan_with(&host(), spec, &argv(), cwd, env)
}

fn plan_with(
    host: &HostLayout,
    spec: &SandboxSpec,
    argv: &[String],
    cwd: Option<&str>,
    env: &[(String, String)],
) -> Vec<String> {
    let req = Request {
        spec,
        workspace: &spec.workspace,
        argv,
        cwd,
        env,
        egress_socket: Some("/state/egress/t1.sock"),
    };
    plan(host, &req)
}

/// True when `args` holds `window` as consecutive items.
fn has(args: &[String], window: &[&str]) -> bool {
    args.windows(window.len())
        .any(|w| w.iter().zip(window).all(|(a, b)| a == b))
}

#[test]
fn drops_root_powers() {
    let args = plan_of(&spec(NetworkLevel::None), None, &[]);
    assert!(has(&args, &["--cap-drop", "ALL"]));
    assert!(has(
        &args,
        &["--unshare-user", "--uid", "1000", "--gid", "1000"]
    ));
    assert!(has(&args, &["--unshare-all"]));
    assert!(has(&args, &["--disable-userns"]));
    for flag in ["--clearenv", "--new-session", "--die-with-parent"] {
        assert!(args.iter().any(|a| a == flag), "missing {flag}");
    }
}

#[test]
fn never_shares_the_hosts_network() {
    for level in [
        NetworkLevel::None,
        NetworkLevel::Allowlist,
        NetworkLevel::Open,
    ] {
        let args = plan_of(&spec(level), None, &[]);
        assert!(!args.iter().any(|a| a == "--share-net"), "{level}");
        assert!(has(
            &args,
            &["--add-seccomp-fd", "3", "--add-seccomp-fd", "4"]
        ));
    }
}

#[test]
fn allowlist_relays_through_the_helper_and_open_waits_for_slirp() {
    let args = plan_of(&spec(NetworkLevel::Allowlist), None, &[]);
    assert!(has(
        &args,
        &["--bind", "/state/egress/t1.sock", "/.dockhand/egress.sock"]
    ));
    assert!(has(
        &args,
        &[
            "--",
            "/.dockhand/helper",
            "run",
            "--listen",
            "127.0.0.1:3128",
            "--unix",
            "/.dockhand/egress.sock",
            "--",
            "echo",
            "hi"
        ]
    ));
    assert!(has(
        &args,
        &["--setenv", "https_proxy", "http://127.0.0.1:3128"]
    ));
    assert!(!args.iter().any(|a| a == "--info-fd"));
    let open = plan_of(&spec(NetworkLevel::Open), None, &[]);
    assert!(has(&open, &["--info-fd", "5", "--block-fd", "6"]));
    assert!(has(
        &open,
        &[
            "--ro-bind",
            "/state/etc/resolv-slirp.conf",
            "/etc/resolv.conf"
        ]
    ));
    assert!(has(
        &open,
        &["--", "/.dockhand/helper", "run", "--", "echo", "hi"]
    ));
    assert!(!open.iter().any(|a| a.contains("proxy")), "{open:?}");
    let none = plan_of(&spec(NetworkLevel::None), None, &[]);
    assert!(!none.iter().any(|a| a.contains("egress")), "{none:?}");
}

#[test]
fn binds_only_what_programs_need() {
    let args = plan_of(&spec(NetworkLevel::None), None, &[]);
    assert!(has(&args, &["--bind", "/data/workspaces/t1", "/workspace"]));
    assert!(has(&args, &["--ro-bind", "/usr", "/usr"]));
    assert!(has(&args, &["--symlink", "usr/bin", "/bin"]));
    assert!(has(&args, &["--ro-bind", "/lib64", "/lib64"]));
    assert!(has(
        &args,
        &["--ro-bind", "/state/etc/passwd", "/etc/passwd"]
    ));
    // The only read-write bind is the workspace.
    let rw = args
        .iter()
        .filter(|a| *a == "--bind" || *a == "--bind-try")
        .count();
    assert_eq!(rw, 1, "{args:?}");
    assert!(has(
        &args,
        &["--ro-bind", "/state/helper", "/.dockhand/helper"]
    ));
    // Nothing from /run, /var, /home, /root or the data dir besides the workspace.
    let commandless = &args[..args.len() - 2];
    for arg in commandless {
        for banned in ["/run", "/var", "/home", "/root", "/data/admin-token"] {
            assert!(!arg.starts_with(banned), "{arg} in {args:?}");
        }
    }
    // Host TLS keys live in /etc/ssl/private: only the certificates are bound.
    assert!(has(
        &args,
        &["--ro-bind-try", "/etc/ssl/certs", "/etc/ssl/certs"]
    ));
    assert!(
        !args
            .iter()
            .any(|a| a == "/etc/ssl" || a.starts_with("/etc/ssl/private"))
    );
    // The root is made read-only after every mount, just before the command.
    assert!(has(
        &args,
        &[
            "--remount-ro",
            "/",
            "--",
            "/.dockhand/helper",
            "run",
            "--",
            "echo",
            "hi"
        ]
    ));
}

#[test]
fn environment_is_fixed_then_spec_then_request() {
    let env = [("X".to_owned(), "2".to_owned())];
    let args = plan_of(&spec(NetworkLevel::None), None, &env);
    let clear = args.iter().position(|a| a == "--clearenv");
    let home = args
        .windows(3)
        .position(|w| w == ["--setenv", "HOME", "/tmp"]);
    let ci = args.windows(3).position(|w| w == ["--setenv", "CI", "1"]);
    let x = args.windows(3).position(|w| w == ["--setenv", "X", "2"]);
    assert!(
        clear.is_some() && clear < home && home < ci && ci < x,
        "{args:?}"
    );
}

#[test]
fn cwd_defaults_to_workspace_and_resolves_relative_paths() {
    let args = plan_of(&spec(NetworkLevel::None), None, &[]);
    assert!(has(&args, &["--chdir", "/workspace"]));
    let args = plan_of(&spec(NetworkLevel::None), Some("src"), &[]);
    assert!(has(&args, &["--chdir", "/workspace/src"]));
    let args = plan_of(&spec(NetworkLevel::None), Some("/tmp"), &[]);
    assert!(has(&args, &["--chdir", "/tmp"]));
}

#[test]
fn a_command_that_looks_like_an_option_stays_a_command() {
    let evil = vec!["--bind".to_owned(), "/".to_owned(), "/".to_owned()];
    let args = plan_with(&host(), &spec(NetworkLevel::None), &evil, None, &[]);
    assert!(has(&args, &["--", "--bind", "/", "/"]));
}

#[test]
fn old_bubblewrap_gets_no_disable_userns() {
    let mut old = host();
    old.disable_userns = false;
    let args = plan_with(&old, &spec(NetworkLevel::None), &argv(), None, &[]);
    assert!(!args.iter().any(|a| a == "--disable-userns"));
}
