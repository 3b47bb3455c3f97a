//! Helpers every backend's tests use: running commands, reading output, and looking at
//! the host.

use std::path::Path;
use std::time::Duration;

use dockhand_sandbox::ExecOutput;
use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::Sandbox;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;

/// Bounds every wait that could hang if the behaviour under test broke.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

pub(crate) async fn sh(sb: &dyn Sandbox, script: &str) -> ExecOutput {
    exec(sb, ExecRequest::new(["sh", "-c", script])).await
}

pub(crate) async fn exec(sb: &dyn Sandbox, req: ExecRequest) -> ExecOutput {
    sb.exec(req, &mut |_, _| {}).await.unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A `sleep` argument no other test uses, so looking for it on the host finds only
/// this test's processes while the other backend runs the same test.
pub(crate) fn needle() -> String {
    format!("1000.{:09}", rand::random::<u32>() % 1_000_000_000)
}

/// Shell input that starts `sleep SECS` in the background and says "started" once
/// the sleep has replaced its forked shell (before that, its command line is "sh").
pub(crate) fn wait_for_sleep(secs: &str) -> String {
    format!(
        "sleep {secs} & until grep -q {secs} /proc/$!/cmdline 2>/dev/null; do :; done; \
         echo started; wait\n"
    )
}

/// Host processes whose command line contains `needle`.
pub(crate) fn host_processes_matching(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Processes come and go while we scan; a vanished one matches nothing.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = text(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", name.to_string_lossy()));
        }
    }
    found
}

/// An IPv4 address of this host other than loopback, read from the kernel's table of
/// local addresses.
pub(crate) fn host_address() -> std::net::Ipv4Addr {
    let table = std::fs::read_to_string("/proc/net/fib_trie").unwrap();
    let mut last = None;
    for line in table.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.parse::<std::net::Ipv4Addr>().ok();
        } else if line == "/32 host LOCAL"
            && let Some(addr) = last.filter(|a| !a.is_loopback())
        {
            return addr;
        }
    }
    panic!("this host has no IPv4 address besides loopback:\n{table}")
}

/// Reads `output` until what was read contains `needle`.
pub(crate) async fn read_until(
    output: &mut (dyn AsyncRead + Send + Unpin),
    needle: &str,
) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(LIMIT, async {
        while !text(&seen).contains(needle) {
            let n = output.read(&mut buf).await.unwrap();
            assert!(n > 0, "output ended before {needle:?}: {}", text(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in output: {}", text(&seen)));
    text(&seen)
}

/// Reads `output` to end-of-file, which comes once every process holding it is gone.
pub(crate) async fn read_to_eof(output: &mut (dyn AsyncRead + Send + Unpin)) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(LIMIT, output.read_to_end(&mut all))
        .await
        .expect("output never ended: something in the sandbox survived")
        .unwrap();
    text(&all)
}
