//! The pure half of the local backend: which bubblewrap arguments a command gets.
//!
//! The plan takes away what a sandbox must not have: a user namespace mapping the
//! sandbox user to uid 1000 (itself an unprivileged host uid: the launch drops root
//! before bubblewrap starts), no capabilities, seccomp filters, a fresh environment,
//! every namespace unshared (the network too, at every level), and a read-only root
//! holding only what programs need. Only `/workspace` and `/tmp` are writable; bwrap
//! binds are `nosuid` and `nodev`. No `/run`, `/var/run`, `/home`, `/root`, data dir
//! or other workspace is ever bound (DESIGN.md, "Sandbox").
//!
//! Every command runs under the helper (`/.dockhand/helper run`), which at
//! `allowlist` first opens the forwarder to the egress proxy's socket. At `open`,
//! bubblewrap waits (`--block-fd`) until slirp4netns has given the namespace its
//! user-mode network.

use std::path::Path;

use crate::NetworkLevel;
use crate::SandboxSpec;
use crate::WORKSPACE;
use crate::egress::PROXY_ADDR;
use crate::egress::proxy_env;

/// The sandbox user's uid and gid, whatever uid the coordinator runs as.
pub const SANDBOX_UID: u32 = 1000;

/// `PATH` inside the sandbox.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level directories that hold programs and libraries besides `/usr`. On merged-/usr
/// hosts they are symlinks into `/usr`, which the sandbox recreates as symlinks.
pub const ROOT_DIRS: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The only entries of the host's `/etc` a sandbox sees (read-only, when present):
/// name resolution, TLS roots, the dynamic loader's cache and the time zone.
///
/// The sandbox user maps onto the coordinator's uid, so when the coordinator runs as
/// root the sandbox passes the owner check on every root-owned file it can see, even
/// mode 0600 ones. That is why `/etc/ssl` is not bound whole: its `private/` holds
/// host TLS keys.
pub const ETC_ENTRIES: [&str; 11] = [
    "resolv.conf",
    "hosts",
    "nsswitch.conf",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
];

/// How one of [`ROOT_DIRS`] looks on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootEntry {
    /// A symlink with this target, recreated as the same symlink.
    Symlink(String),
    /// A real directory, bound read-only.
    Directory,
}

/// Where the helper appears in every sandbox.
pub const HELPER_IN_SANDBOX: &str = "/.dockhand/helper";
/// Where the egress proxy's socket appears in an `allowlist` sandbox.
pub const EGRESS_SOCKET: &str = "/.dockhand/egress.sock";
/// The descriptors bubblewrap is given: the two seccomp programs, and at `open`
/// the info pipe (child pid out) and the block pipe (go ahead in).
pub const FD_SECCOMP: [i32; 2] = [3, 4];
/// See [`FD_SECCOMP`].
pub const FD_INFO: i32 = 5;
/// See [`FD_SECCOMP`].
pub const FD_BLOCK: i32 = 6;

/// What the plan needs to know about the host, gathered once by [`HostLayout::probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLayout {
    /// The [`ROOT_DIRS`] the host has, and how each looks; absent ones are left out.
    pub roots: Vec<(String, RootEntry)>,
    /// The generated `/etc/passwd` in the coordinator's state dir.
    pub passwd: String,
    /// The generated `/etc/group` in the coordinator's state dir.
    pub group: String,
    /// Whether this bubblewrap has `--disable-userns` (0.8 and later), which stops the
    /// sandbox from making nested user namespaces and so shrinks the kernel surface.
    pub disable_userns: bool,
    /// The helper program on the host, bound read-only at [`HELPER_IN_SANDBOX`].
    pub helper: String,
    /// The `resolv.conf` of `open` sandboxes: slirp4netns's resolver.
    pub slirp_resolv: String,
}

/// One command to plan.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The sandbox.
    pub spec: &'a SandboxSpec,
    /// The host directory bound at `/workspace`: the spec's, or a bind of it.
    pub workspace: &'a Path,
    /// Program and arguments.
    pub argv: &'a [String],
    /// Working directory: relative to `/workspace`, absolute, or `/workspace` when `None`.
    pub cwd: Option<&'a str>,
    /// Variables added after the spec's.
    pub env: &'a [(String, String)],
    /// At `allowlist`: the host path of this sandbox's egress socket.
    pub egress_socket: Option<&'a str>,
}

impl HostLayout {
    /// Looks at the host's top-level directories; `passwd` and `group` are the
    /// generated files, `disable_userns` what the bubblewrap version allows, `helper`
    /// and `slirp_resolv` the files written for the sandboxes.
    pub fn probe(
        passwd: String,
        group: String,
        disable_userns: bool,
        helper: String,
        slirp_resolv: String,
    ) -> HostLayout {
        let roots = ROOT_DIRS
            .iter()
            .filter_map(|dir| {
                let path = Path::new(dir);
                let meta = std::fs::symlink_metadata(path).ok()?;
                let entry = if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(path).ok()?;
                    RootEntry::Symlink(target.to_str()?.to_owned())
                } else if meta.is_dir() {
                    RootEntry::Directory
                } else {
                    return None;
                };
                Some(((*dir).to_owned(), entry))
            })
            .collect();
        HostLayout {
            roots,
            passwd,
            group,
            disable_userns,
            helper,
            slirp_resolv,
        }
    }
}

/// The bubblewrap arguments (without the `bwrap` program itself) that run the
/// request's command in its sandbox. Pure: runs nothing.
pub fn plan(host: &HostLayout, req: &Request<'_>) -> Vec<String> {
    let spec = req.spec;
    let mut args: Vec<String> = Vec::with_capacity(112 + req.argv.len());
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));

    // Namespaces: all of them, the network included at every level. `--unshare-user`
    // is explicit because `--unshare-all` only tries it.
    push(&["--unshare-all"]);
    let uid = SANDBOX_UID.to_string();
    push(&["--unshare-user", "--uid", &uid, "--gid", &uid]);
    if host.disable_userns {
        push(&["--disable-userns"]);
    }
    push(&["--cap-drop", "ALL"]);
    let [eperm, enosys] = FD_SECCOMP.map(|fd| fd.to_string());
    push(&["--add-seccomp-fd", &eperm, "--add-seccomp-fd", &enosys]);
    if spec.network == NetworkLevel::Open {
        // Wait for slirp4netns to join the namespace before running anything.
        let (info, block) = (FD_INFO.to_string(), FD_BLOCK.to_string());
        push(&["--info-fd", &info, "--block-fd", &block]);
    }
    // With the pid namespace, killing bwrap kills its pid 1 and so every process in it.
    push(&[
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "dockhand",
    ]);

    push(&["--clearenv"]);
    let fixed = [
        ("PATH", SANDBOX_PATH),
        ("HOME", "/tmp"),
        ("USER", "agent"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
    ];
    for (key, value) in fixed {
        push(&["--setenv", key, value]);
    }
    let proxy = match spec.network {
        NetworkLevel::Allowlist => proxy_env(),
        _ => Vec::new(),
    };
    for (key, value) in proxy.iter().chain(&spec.env).chain(req.env) {
        push(&["--setenv", key, value]);
    }

    push(&["--ro-bind", "/usr", "/usr"]);
    for (dir, entry) in &host.roots {
        match entry {
            RootEntry::Symlink(target) => push(&["--symlink", target, dir]),
            RootEntry::Directory => push(&["--ro-bind", dir, dir]),
        }
    }
    for name in ETC_ENTRIES {
        if name == "resolv.conf" && spec.network == NetworkLevel::Open {
            push(&["--ro-bind", &host.slirp_resolv, "/etc/resolv.conf"]);
            continue;
        }
        let path = format!("/etc/{name}");
        // `-try`: skipped if the host has no such entry (or it vanished since).
        push(&["--ro-bind-try", &path, &path]);
    }
    push(&["--ro-bind", &host.passwd, "/etc/passwd"]);
    push(&["--ro-bind", &host.group, "/etc/group"]);
    push(&["--ro-bind", &host.helper, HELPER_IN_SANDBOX]);
    let relay = match (spec.network, req.egress_socket) {
        (NetworkLevel::Allowlist, Some(socket)) => {
            push(&["--bind", socket, EGRESS_SOCKET]);
            true
        }
        _ => false,
    };

    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    let workspace = req.workspace.to_string_lossy();
    push(&["--bind", &workspace, WORKSPACE]);
    let cwd = match req.cwd {
        None => WORKSPACE.to_owned(),
        Some(dir) if dir.starts_with('/') => dir.to_owned(),
        Some(dir) => format!("{WORKSPACE}/{dir}"),
    };
    push(&["--chdir", &cwd]);
    // Last, after every mount point exists: the root tmpfs becomes read-only.
    push(&["--remount-ro", "/"]);

    // `--` so a command that starts with `--` is never read as an option.
    push(&["--", HELPER_IN_SANDBOX, "run"]);
    if relay {
        push(&["--listen", PROXY_ADDR, "--unix", EGRESS_SOCKET]);
    }
    push(&["--"]);
    args.extend(req.argv.iter().cloned());
    args
}

/// The generated `/etc/passwd`: root, the sandbox user and nobody (the owner of files
/// whose host uid has no mapping).
pub(crate) fn passwd_contents() -> String {
    format!(
        "root:x:0:0:root:/root:/bin/sh\n\
         agent:x:{SANDBOX_UID}:{SANDBOX_UID}::/tmp:/bin/bash\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
}

/// The generated `/etc/group`.
pub(crate) fn group_contents() -> String {
    format!("root:x:0:\nagent:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
