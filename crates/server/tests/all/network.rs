//! Network levels, on both backends, from inside real sandboxes. Every target is
//! first shown reachable from the host; then the sandbox tries it.
//! - `none` and `allowlist` reach nothing directly: not a listener on
//!   169.254.169.254 (the cloud metadata address, added to `lo` for the test),
//!   not the coordinator bound to 0.0.0.0, not a loopback service.
//! - `allowlist` reaches an allowed name through the egress proxy, and only that.
//! - `open` reaches out, but never the host's loopback, nor another sandbox.

use std::net::TcpListener;
use std::net::TcpStream;
use std::time::Duration;

use dockhand_protocol::EventBody;
use dockhand_protocol::NetworkLevel;
use dockhand_protocol::TaskStatus;
use dockhand_server::Config;
use dockhand_server::config::Backend;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

/// 169.254.169.254 on `lo` while the test runs, one test at a time (an
/// exclusive lock across test processes); removed even when the test fails.
struct Metadata {
    listener: TcpListener,
    _lock: std::fs::File,
}

const METADATA: &str = "169.254.169.254";

impl Metadata {
    fn add() -> Metadata {
        let lock = std::fs::File::create(std::env::temp_dir().join("dockhand-test-metadata.lock"))
            .unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        // A run that died may have left it; adding twice fails, so remove first.
        let _ = ip(&["addr", "del", &format!("{METADATA}/32"), "dev", "lo"]);
        assert!(ip(&["addr", "add", &format!("{METADATA}/32"), "dev", "lo"]));
        let listener = TcpListener::bind((METADATA, 0)).unwrap();
        Metadata {
            listener,
            _lock: lock,
        }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        let _ = ip(&["addr", "del", &format!("{METADATA}/32"), "dev", "lo"]);
    }
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// The host's first non-loopback IPv4 address: where a sandbox would reach the
/// coordinator bound to 0.0.0.0.
fn host_address(backend: Backend) -> String {
    if backend == Backend::Docker {
        // Containers reach the host at the bridge's gateway.
        let out = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "docker0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(addr) = text.split_whitespace().skip_while(|w| *w != "inet").nth(1) {
            return addr.split('/').next().unwrap().to_owned();
        }
    }
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| !a.is_loopback())
        })
        .expect("a non-loopback IPv4 address")
        .to_owned()
}

fn reachable_from_host(host: &str, port: u16) -> bool {
    let addr = format!("{host}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
}

/// Prints the sandbox's network interfaces, one per line.
const INTERFACES: &str = "awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev";

/// A bash line that prints `REACHED <name>` or `BLOCKED <name>`.
fn probe(name: &str, host: &str, port: u16) -> String {
    format!(
        "if timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null; \
         then echo REACHED {name}; else echo BLOCKED {name}; fi"
    )
}

async fn harness(backend: Backend, scenario: Scenario, tweak: impl FnOnce(&mut Config)) -> Harness {
    if backend == Backend::Docker {
        require_docker();
    }
    Harness::start_public(scenario, |c| {
        c.sandbox.backend = Some(backend);
        c.sandbox.pool_size = 0;
        tweak(c);
    })
    .await
}

/// Runs one task on a fresh repository and returns its tool results' text.
async fn run(h: &Harness, files: &[(&str, &str)]) -> (dockhand_protocol::Task, Vec<String>) {
    let repo = h.repo(files);
    let task = h.submit(&repo, "probe").await;
    let done = h.wait_done(task.id.as_str()).await;
    let outputs = h
        .events(task.id.as_str())
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::ToolResult(r) => Some(r.output),
            _ => None,
        })
        .collect();
    (done, outputs)
}

async fn nothing_is_reachable_directly(backend: Backend, level: NetworkLevel) {
    let metadata = Metadata::add();
    let loopback = TcpListener::bind("127.0.0.1:0").unwrap();
    let lo_port = loopback.local_addr().unwrap().port();
    let script = |coordinator_port: u16| {
        [
            probe("metadata", METADATA, metadata.port()),
            probe("coordinator", &host_address(backend), coordinator_port),
            probe("loopback", "127.0.0.1", lo_port),
        ]
        .join("; ")
    };
    // The coordinator's port is known only once it listens; the command reads it.
    let command = "cat /workspace/probe.sh | bash";
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({ "command": command })))
        .text("Done.");
    let h = harness(backend, scenario, |c| c.sandbox.network.level = level).await;
    let coordinator_port = h.coord().addr().port();
    assert!(reachable_from_host(METADATA, metadata.port()));
    assert!(reachable_from_host(
        &host_address(backend),
        coordinator_port
    ));
    assert!(reachable_from_host("127.0.0.1", lo_port));
    let (done, outputs) = run(&h, &[("probe.sh", &script(coordinator_port))]).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let out = &outputs[0];
    for name in ["metadata", "coordinator", "loopback"] {
        assert!(
            out.contains(&format!("BLOCKED {name}")),
            "{backend:?} {level}: {out}"
        );
    }
    let events = h.events(done.id.as_str()).await;
    let shown = events
        .iter()
        .any(|e| matches!(&e.body, EventBody::Phase(p) if p.network == Some(level)));
    assert!(shown, "the level shows in the container phase");
}

#[tokio::test(flavor = "multi_thread")]
async fn none_reaches_nothing_on_local() {
    nothing_is_reachable_directly(Backend::Local, NetworkLevel::None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn none_reaches_nothing_on_docker() {
    nothing_is_reachable_directly(Backend::Docker, NetworkLevel::None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlist_reaches_nothing_directly_on_local() {
    nothing_is_reachable_directly(Backend::Local, NetworkLevel::Allowlist).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlist_reaches_nothing_directly_on_docker() {
    nothing_is_reachable_directly(Backend::Docker, NetworkLevel::Allowlist).await;
}

/// A one-line HTTP server on loopback that answers every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::Read;
            use std::io::Write;
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    port
}

async fn allowlist_goes_through_the_proxy(backend: Backend) {
    let port = http_server("hello through the proxy");
    assert!(reachable_from_host("127.0.0.1", port));
    let fetch = |url: &str| {
        format!(
            "python3 -c \"import urllib.request as u; print(u.urlopen('{url}', timeout=10).read().decode())\" 2>&1 | tail -1"
        )
    };
    // `localhost.`: plain loopback names are in NO_PROXY (a sandbox's own servers
    // stay direct); the fully qualified one goes through the proxy.
    let scenario = Scenario::new()
        .turn(Turn::tool(
            "bash",
            json!({ "command": fetch(&format!("http://localhost.:{port}/")) }),
        ))
        .turn(Turn::tool(
            "bash",
            json!({ "command": fetch("http://not-allowed.example/") }),
        ))
        .turn(Turn::tool(
            "bash",
            json!({ "command": probe("direct", "127.0.0.1", port) }),
        ))
        .text("Done.");
    let h = harness(backend, scenario, |c| {
        c.sandbox.network.level = NetworkLevel::Allowlist;
        c.sandbox.allow_domains = Some(vec![format!("localhost:{port}")]);
        c.sandbox.allow_addresses = vec!["127.0.0.0/8".into(), "::1".into()];
    })
    .await;
    let (done, outputs) = run(&h, &[("README", "r\n")]).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert!(
        outputs[0].contains("hello through the proxy"),
        "{backend:?}: {}",
        outputs[0]
    );
    assert!(outputs[1].contains("403"), "{}", outputs[1]);
    assert!(
        outputs[1].contains("egress refused: not-allowed.example:80 (not on the allowlist)"),
        "the model is told: {}",
        outputs[1]
    );
    assert!(outputs[2].contains("BLOCKED direct"), "{}", outputs[2]);
    let metrics = reqwest::get(format!("{}/metrics", h.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dockhand_egress_refused_total{reason=\"not_allowed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlist_goes_through_the_proxy_on_local() {
    allowlist_goes_through_the_proxy(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlist_goes_through_the_proxy_on_docker() {
    allowlist_goes_through_the_proxy(Backend::Docker).await;
}

/// `open` has a route out; the host's loopback and the other task's sandbox
/// (listening, started first) stay out of reach.
async fn open_is_out_but_not_in(backend: Backend) {
    let loopback = TcpListener::bind("127.0.0.1:0").unwrap();
    let lo_port = loopback.local_addr().unwrap().port();
    let listen = "python3 -m http.server 8765 --bind 0.0.0.0 >/dev/null 2>&1 & \
                  until (exec 3<>/dev/tcp/127.0.0.1/8765) 2>/dev/null; do sleep 0.05; done; \
                  hostname -I; while [ ! -e /workspace/.git/go ]; do sleep 0.05; done";
    let reach = "until [ -e /workspace/.git/target ]; do sleep 0.05; done; \
                 bash /workspace/.git/target";
    // The fake model plays turns in request order: A's command (which waits),
    // then B's command and B's answer, then A's answer once its gate opens.
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({ "command": listen })))
        .turn(Turn::tool(
            "bash",
            json!({ "command": format!("{reach}; {INTERFACES}") }),
        ))
        .text("Reached.")
        .text("Listened.")
        .global();
    let h = harness(backend, scenario, |c| {
        c.sandbox.network.level = NetworkLevel::Open;
        c.scheduler.max_concurrent = 2;
    })
    .await;
    assert!(reachable_from_host("127.0.0.1", lo_port));
    let a = h.submit(&h.repo(&[("README", "a\n")]), "listen").await;
    let mut ws = h.ws(a.id.as_str(), 0).await;
    let started = read_until(&mut ws, |e| {
        matches!(&e.body, EventBody::ToolOutput(o) if o.text.split_whitespace().count() > 0)
            || is_end(e)
    })
    .await;
    let a_ip = started
        .iter()
        .rev()
        .find_map(|e| match &e.body {
            EventBody::ToolOutput(o) => o.text.split_whitespace().next().map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("A ended before its address: {started:#?}"));
    assert!(a_ip.parse::<std::net::Ipv4Addr>().is_ok(), "{a_ip}");
    if backend == Backend::Docker {
        // The neighbour serves: the host reaches it on the bridge.
        assert!(reachable_from_host(&a_ip, 8765));
    }
    let b = h.submit(&h.repo(&[("README", "b\n")]), "reach").await;
    // Its command runs (and waits for the target) once its workspace exists.
    let mut b_ws = h.ws(b.id.as_str(), 0).await;
    let waited = tokio::time::timeout(PATIENCE / 2, read_until(&mut b_ws, is_tool_call)).await;
    if waited.is_err() {
        let a_events = h.events(a.id.as_str()).await;
        let b_events = h.events(b.id.as_str()).await;
        panic!("B never ran its command.\nA: {a_events:#?}\nB: {b_events:#?}");
    }
    let targets = [
        probe("neighbour", &a_ip, 8765),
        probe("loopback", "127.0.0.1", lo_port),
    ]
    .join("; ");
    std::fs::write(workspace(&h, b.id.as_str()).join(".git/target"), targets).unwrap();
    let done = h.wait_done(b.id.as_str()).await;
    open_gate(&h, a.id.as_str());
    h.wait_done(a.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let out: String = h
        .events(b.id.as_str())
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::ToolResult(r) => Some(r.output),
            _ => None,
        })
        .collect();
    assert!(
        out.contains("BLOCKED neighbour"),
        "{backend:?} ({a_ip}): {out}"
    );
    assert!(out.contains("BLOCKED loopback"), "{backend:?}: {out}");
    // It does have an interface beyond loopback.
    assert!(
        out.lines()
            .any(|l| l.starts_with("eth") || l.starts_with("tap")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_reaches_neither_the_hosts_loopback_nor_another_sandbox_on_local() {
    open_is_out_but_not_in(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn open_reaches_neither_the_hosts_loopback_nor_another_sandbox_on_docker() {
    open_is_out_but_not_in(Backend::Docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_asking_for_more_gets_the_operators_level() {
    let scenario = Scenario::new()
        .turn(Turn::tool("bash", json!({ "command": INTERFACES })))
        .text("Done.");
    let h = harness(Backend::Local, scenario, |c| {
        c.sandbox.network.level = NetworkLevel::None;
    })
    .await;
    let env = "network = \"open\"\n[limits]\nmemory_mb = 999999\npids = 64\n";
    let (done, outputs) = run(&h, &[(".dockhand/environment.toml", env)]).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert_eq!(outputs[0].trim(), "lo", "no interface: {outputs:?}");
    let events = h.events(done.id.as_str()).await;
    let policy: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Phase(p) if p.phase == "policy" => p.detail.clone(),
            _ => None,
        })
        .collect();
    assert!(
        policy.contains(
            &"network: the repository asked for \"open\"; sandbox.network = \"none\" applies"
                .to_owned()
        ),
        "{policy:?}"
    );
    assert!(
        policy
            .iter()
            .any(|p| p.starts_with("memory_mb: the repository asked for 999999")),
        "{policy:?}"
    );
    assert!(
        !policy.iter().any(|p| p.starts_with("pids")),
        "narrowing is no news: {policy:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_at_allowlist_reaches_only_allowed_names() {
    let port = http_server("setup fetched this");
    let fetch = |url: &str| {
        format!(
            "python3 -c \\\"import urllib.request as u; print(u.urlopen('{url}', timeout=10).read().decode())\\\" 2>&1 | tail -1"
        )
    };
    let setup = format!(
        "{}; {}; cat /proc/net/dev | grep -c :",
        fetch(&format!("http://localhost.:{port}/")),
        fetch("http://not-allowed.example/")
    );
    let scenario = Scenario::new().text("Done.");
    let h = harness(Backend::Docker, scenario, |c| {
        c.sandbox.network.level = NetworkLevel::Allowlist;
        c.sandbox.allow_domains = Some(vec![format!("localhost:{port}")]);
        c.sandbox.allow_addresses = vec!["127.0.0.0/8".into()];
    })
    .await;
    let env = format!("setup = \"{setup}\"\n");
    let (done, _) = run(&h, &[(".dockhand/environment.toml", &env)]).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let setup_output: String = h
        .events(done.id.as_str())
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::ToolOutput(o) if o.id == "setup" => Some(o.text),
            _ => None,
        })
        .collect();
    let lines: Vec<&str> = setup_output.lines().collect();
    assert_eq!(lines.first(), Some(&"setup fetched this"), "{setup_output}");
    assert!(lines.iter().any(|l| l.contains("403")), "{setup_output}");
    // Loopback only: one interface.
    assert_eq!(lines.last(), Some(&"1"), "{setup_output}");
}
