//! The local backend as a coordinator running as root uses it: limits per task
//! from cgroups, and nothing the agent makes gives anyone root, or any other
//! privilege, on the host.

use std::path::Path;
use std::process::Command;

use dockhand_protocol::EventBody;
use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::json;

use crate::common::*;

fn bash(command: &str) -> Turn {
    Turn::tool("bash", json!({ "command": command }))
}

fn outputs(events: &[dockhand_protocol::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ToolResult(r) => Some(r.output.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_and_process_limits_hold_and_the_coordinator_stays_responsive() {
    let scenario = Scenario::new()
        .turn(bash(
            "python3 -c 'x = bytearray(1024 * 1024 * 1024)'; echo after-oom",
        ))
        .turn(bash(
            "timeout 20 bash -c ':(){ :|:& };:' >/dev/null 2>&1; echo launched",
        ))
        .turn(Turn::tool("bash", json!({ "restart": true })))
        .turn(bash("echo recovered"))
        .text("Done.");
    let h = Harness::start_with(scenario, |c| {
        c.sandbox.memory_mb = 256;
        c.sandbox.pids = 64;
    })
    .await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "stress").await;
    // While the sandbox is under pressure the API keeps answering.
    let mut ws = h.ws(task.id.as_str(), 0).await;
    read_until(
        &mut ws,
        |e| matches!(&e.body, EventBody::ToolCall(c) if c.input.to_string().contains(":|:&")),
    )
    .await;
    for _ in 0..20 {
        let (status, _) = h
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{}", task.id),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let r = outputs(&h.events(task.id.as_str()).await);
    assert!(
        r[0].contains("out of memory (limit 256 MiB)") && r[0].contains("after-oom"),
        "{:?}",
        r[0]
    );
    assert!(r[1].contains("process limit (64 processes)"), "{:?}", r[1]);
    assert!(r[3].ends_with("recovered"), "{:?}", r[3]);
}

fn find(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("find").arg(dir).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_the_agent_makes_is_privileged_on_the_host() {
    let make = "cp /bin/bash /workspace/rootshell && chmod 6755 /workspace/rootshell; \
                stat -c '%a %u' /workspace/rootshell; \
                mknod /workspace/null c 1 3 2>&1; mkfifo /workspace/fifo; echo made";
    let scenario = Scenario::new().turn(bash(make)).text("Done.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "make trouble").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let r = outputs(&h.events(task.id.as_str()).await);
    // Inside, the bits were set (by the sandbox user, uid 1000)...
    assert!(r[0].starts_with("6755 1000"), "{:?}", r[0]);
    // ...the device node could not be made...
    assert!(r[0].contains("Operation not permitted"), "{:?}", r[0]);
    // ...and on the host nothing setuid, setgid or device-like is left.
    let data = h.data_dir();
    assert_eq!(find(&data, &["-perm", "/6000"]), "");
    assert_eq!(
        find(&data, &["(", "-type", "b", "-o", "-type", "c", ")"]),
        ""
    );
    let shell = workspace(&h, task.id.as_str()).join("rootshell");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&shell).unwrap();
    assert_ne!(meta.uid(), 0, "the sandbox user is not root on the host");
    assert_eq!(meta.mode() & 0o6000, 0);

    // Even a setuid bit that escaped stripping gives nothing: the workspaces are
    // a nosuid mount. Set it by hand and run the shell as nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let ws = shell.parent().unwrap();
    std::fs::set_permissions(ws, std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(&shell)
        .args(["-p", "-c", "id -u"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "65534",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let workspaces = std::fs::canonicalize(data.join("workspaces")).unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(workspaces.to_str().unwrap()))
        .expect("workspaces is a mount");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
}
