use std::path::Path;

use super::Source;
use super::explain;
use super::human_bytes;
use super::parse_exec;
use super::probe;
use super::proc_cgroups;
use super::read_host;
use crate::LimitMarks;

const ID: &str = "b47b5244478fa19fd58e151d403e3caa2dde1a5fc350ca61d7dd0779a7650364";

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn finds_cgroupfs_v1_directories() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        &format!("memory/docker/{ID}/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        root.path(),
        &format!("pids/docker/{ID}/pids.events"),
        "max 7\n",
    );
    let source = probe(root.path(), ID, None, None);
    let Source::Host { memory, pids } = source else {
        panic!("not found: {source:?}");
    };
    assert_eq!(
        read_host(&memory, &pids),
        Some(LimitMarks {
            oom_kills: 2,
            pid_limit_hits: 7,
            ..LimitMarks::default()
        })
    );
}

#[test]
fn finds_systemd_v2_scopes_without_mixing_up_max_lines() {
    let root = tempfile::tempdir().unwrap();
    let dir = format!("system.slice/docker-{ID}.scope");
    // memory.events' own `max` counts memory-limit hits, not PID-limit hits.
    write(
        root.path(),
        &format!("{dir}/memory.events"),
        "low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\n",
    );
    write(root.path(), &format!("{dir}/pids.events"), "max 0\n");
    let Source::Host { memory, pids } = probe(root.path(), ID, None, None) else {
        panic!("not found");
    };
    assert_eq!(
        read_host(&memory, &pids),
        Some(LimitMarks {
            oom_kills: 1,
            pid_limit_hits: 0,
            ..LimitMarks::default()
        })
    );
}

#[test]
fn honours_a_custom_cgroup_parent() {
    let root = tempfile::tempdir().unwrap();
    write(
        root.path(),
        &format!("memory/sandboxes/{ID}/memory.oom_control"),
        "oom_kill 0\n",
    );
    write(
        root.path(),
        &format!("pids/sandboxes/{ID}/pids.events"),
        "max 0\n",
    );
    assert!(matches!(
        probe(root.path(), ID, Some("/sandboxes"), None),
        Source::Host { .. }
    ));
    assert_eq!(probe(root.path(), ID, None, None), Source::Exec);
}

#[test]
fn falls_back_to_exec_when_nothing_is_on_the_host() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(probe(root.path(), ID, None, Some(0)), Source::Exec);
}

#[test]
fn reads_proc_cgroup_lines() {
    let text = "9:name=systemd:/docker/abc\n8:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n";
    let found = proc_cgroups(text);
    assert_eq!(found.memory.as_deref(), Some("docker/abc"));
    assert_eq!(found.unified, None);
    let v2 = proc_cgroups("0::/system.slice/docker-abc.scope\n");
    assert_eq!(v2.unified.as_deref(), Some("system.slice/docker-abc.scope"));
}

#[test]
fn parses_exec_output_for_v1_and_v2() {
    let v1 = "@memory\noom_kill_disable 0\nunder_oom 0\noom_kill 3\n@pids\nmax 12\n";
    assert_eq!(
        parse_exec(v1),
        LimitMarks {
            oom_kills: 3,
            pid_limit_hits: 12,
            ..LimitMarks::default()
        }
    );
    let v2 = "@memory\nlow 0\nmax 99\noom_kill 1\n@pids\nmax 0\n";
    assert_eq!(
        parse_exec(v2),
        LimitMarks {
            oom_kills: 1,
            pid_limit_hits: 0,
            ..LimitMarks::default()
        }
    );
    assert_eq!(parse_exec(""), LimitMarks::default());
}

#[test]
fn explains_what_moved() {
    let zero = LimitMarks::default();
    let oom = LimitMarks {
        oom_kills: 1,
        pid_limit_hits: 0,
        ..LimitMarks::default()
    };
    let pids = LimitMarks {
        oom_kills: 0,
        pid_limit_hits: 5,
        ..LimitMarks::default()
    };
    assert_eq!(explain(zero, zero, 2 << 30, 512), None);
    assert_eq!(
        explain(zero, oom, 2 << 30, 512).as_deref(),
        Some("command killed: out of memory (limit 2 GiB)")
    );
    assert_eq!(
        explain(zero, pids, 64 << 20, 64).as_deref(),
        Some("the sandbox hit its process limit (64 processes); new processes could not start")
    );
    let both = LimitMarks {
        oom_kills: 3,
        pid_limit_hits: 1,
        ..LimitMarks::default()
    };
    assert_eq!(
        explain(zero, both, 64 << 20, 64).as_deref(),
        Some(
            "command killed: out of memory (limit 64 MiB; 3 processes killed); \
             the sandbox hit its process limit (64 processes); new processes could not start"
        )
    );
    // A replaced container starts from zero: no false alarm.
    assert_eq!(explain(both, zero, 64 << 20, 64), None);
}

#[test]
fn formats_sizes() {
    assert_eq!(human_bytes(2 << 30), "2 GiB");
    assert_eq!(human_bytes(64 << 20), "64 MiB");
    assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    assert_eq!(human_bytes(1000), "1000 bytes");
}
