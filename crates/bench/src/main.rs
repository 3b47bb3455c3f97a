//! `dockhand-bench`: Dockhand's speed and memory figures, each beside a raw
//! baseline measured in the same run on the same machine, printed as a markdown
//! table (figure | dockhand | baseline | ratio | target | pass/fail).
//!
//! Run it in release mode:
//!
//! ```text
//! cargo run --release -p dockhand-bench                 # everything (under 2 minutes on 2 cores)
//! cargo run --release -p dockhand-bench -- --quick      # a smaller run (under 1 minute)
//! cargo run --release -p dockhand-bench -- --only latency,memory
//! cargo run --release -p dockhand-bench -- --dockhand target/release/dockhand
//! ```
//!
//! Sections:
//! - `eventlog`: durable events/s through the store's group-commit writer with
//!   1, 100 and 1,000 concurrently writing tasks on a 1M-row events table, beside
//!   plain rusqlite inserting the same rows (prepared statement, 1,000 rows per
//!   transaction, same schema and pragmas).
//! - `latency`: publish-to-receive latency (p50, p99) of durable events with 100
//!   and 1,000 WebSocket subscribers at 100 events/s, from an in-process
//!   coordinator, beside a plain tokio-tungstenite server fanning out the same
//!   bytes; plus two diagnostics in the notes (the store's append→publish time
//!   alone, and a plain rusqlite one-row commit at the same rate).
//! - `memory`: server RSS per idle WebSocket subscriber, measured on a separate
//!   `dockhand serve` process (built with `cargo build --release -p dockhand-cli`
//!   or brought up to date), beside no baseline.
//! - `startup`: task start-up overhead on the docker backend, from
//!   `POST /api/v1/tasks` until the model receives its first request, on a
//!   1,000-file repository (second and later tasks), for a cold container, a
//!   warm-pool container and an environment-cache image, beside the raw
//!   `docker run --rm IMAGE true`; and cancel until the running command is gone.
//!   Needs Docker and the sandbox image (`dockhand image build`).
//! - `checkpoint`: checkpoint cost per turn (snapshot, bundle, store) for a
//!   1-file and a 1,000-file change in a 1,000-file repository, on the local
//!   backend and on docker, beside one `true` through the same sandbox's exec;
//!   and the time to restore the chain into a fresh repository.
//! - `seed`: seed and publish time of a 50-file repository on docker and local
//!   (the coordinator's bundle, uploaded and fetched in the sandbox; the
//!   sandbox's commit and bundle, downloaded and fetched back), beside a raw
//!   host `git clone --no-local` into the bind-mounted workspace and a host
//!   commit, `git bundle create` and `git fetch`; the container is started
//!   before the clock on both sides.
//!
//! Progress goes to stderr; the report (machine, table, notes) to stdout.

#![allow(clippy::print_stdout)]

mod checkpoint;
mod commit;
mod eventlog;
mod latency;
mod memory;
mod seed;
mod startup;
mod wsclient;

use std::process::Command;

use anyhow::Context;
use anyhow::Result;

/// One line of the results table.
#[derive(Debug)]
pub struct Row {
    figure: String,
    dockhand: String,
    baseline: String,
    ratio: String,
    target: String,
    pass: Option<bool>,
}

impl Row {
    /// A row; `pass` is `None` for informational figures.
    pub fn new(
        figure: impl Into<String>,
        dockhand: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
        target: impl Into<String>,
        pass: Option<bool>,
    ) -> Row {
        Row {
            figure: figure.into(),
            dockhand: dockhand.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
            target: target.into(),
            pass,
        }
    }

    /// A row for a section that could not run.
    pub fn failed(figure: impl Into<String>, why: &anyhow::Error) -> Row {
        Row::new(
            figure,
            format!("error: {why:#}"),
            "—",
            "—",
            "—",
            Some(false),
        )
    }
}

/// What a section reports: table rows and notes printed below the table.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn extend(&mut self, other: Report) {
        self.rows.extend(other.rows);
        self.notes.extend(other.notes);
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `text` cut to at most `max` characters.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

struct Args {
    quick: bool,
    eventlog: bool,
    latency: bool,
    memory: bool,
    startup: bool,
    checkpoint: bool,
    seed: bool,
    dockhand: Option<std::path::PathBuf>,
}

const USAGE: &str =
    "usage: dockhand-bench [--quick] [--only eventlog,latency,memory,startup,checkpoint,seed] [--dockhand PATH]

  --quick          a smaller run (fewer events, shorter latency runs)
  --only LIST      run only these sections (comma-separated: eventlog, latency, memory,
                   startup, checkpoint, seed; startup needs Docker and the sandbox image)
  --eventlog, --latency, --memory, --startup, --checkpoint, --seed
                   the same, one flag per section (may be combined)
  --dockhand PATH  the dockhand binary for the memory section
                   (default: target/release/dockhand, built or brought
                   up to date with cargo build --release -p dockhand-cli)";

/// The arguments; `Ok(None)` after `--help`, `Err` with a message for bad usage.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        quick: false,
        eventlog: false,
        latency: false,
        memory: false,
        startup: false,
        checkpoint: false,
        seed: false,
        dockhand: None,
    };
    let mut any = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut select = |name: &str| -> Result<(), String> {
            match name.trim() {
                "eventlog" => args.eventlog = true,
                "latency" => args.latency = true,
                "memory" => args.memory = true,
                "startup" => args.startup = true,
                "checkpoint" => args.checkpoint = true,
                "seed" => args.seed = true,
                other => return Err(format!("unknown section {other:?}")),
            }
            any = true;
            Ok(())
        };
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--eventlog" | "--latency" | "--memory" | "--startup" | "--checkpoint" | "--seed" => {
                select(&arg[2..])?
            }
            "--only" => {
                let list = it.next().ok_or("--only needs a list")?;
                for name in list.split(',') {
                    select(name)?;
                }
            }
            "--dockhand" => {
                args.dockhand = Some(it.next().ok_or("--dockhand needs a path")?.into());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !any {
        args.eventlog = true;
        args.latency = true;
        args.memory = true;
        args.startup = true;
        args.checkpoint = true;
        args.seed = true;
    }
    Ok(Some(args))
}

fn machine_info() -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.trim_start_matches("MemTotal:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let profile = if cfg!(debug_assertions) {
        "debug (numbers are not meaningful: use --release)"
    } else {
        "release"
    };
    vec![
        format!("- cores: {cores} ({cpu})"),
        format!("- memory: {mem}"),
        format!("- kernel: Linux {kernel}"),
        format!("- rustc: {rustc}"),
        format!("- build: {profile}"),
    ]
}

fn print_table(rows: &[Row]) {
    println!("| figure | dockhand | baseline | ratio | target | pass/fail |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let pass = match r.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "—",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.dockhand, r.baseline, r.ratio, r.target, pass
        );
    }
}

/// Lets this process (and the `dockhand serve` it starts) hold thousands of sockets.
fn raise_nofile(want: u64) -> Result<u64> {
    use rustix::process::Resource;
    let lim = rustix::process::getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    if current >= want {
        return Ok(current);
    }
    let target = lim.maximum.map_or(want, |m| m.min(want.max(current)));
    rustix::process::setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        },
    )
    .context("raising RLIMIT_NOFILE")?;
    Ok(target)
}

fn main() -> Result<()> {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return Ok(()),
        Err(msg) => {
            eprintln_progress(&format!("{msg}\n{USAGE}"));
            std::process::exit(2);
        }
    };
    let started = std::time::Instant::now();
    let nofile = raise_nofile(8192)?;
    println!(
        "# Dockhand benchmark{}\n",
        if args.quick { " (--quick)" } else { "" }
    );
    for line in machine_info() {
        println!("{line}");
    }
    println!("- open file limit: {nofile}\n");

    let mut report = Report::default();
    let sections: [(bool, &str, &str); 6] = [
        (
            args.eventlog,
            "eventlog",
            "durable events/s through the event log",
        ),
        (
            args.latency,
            "latency",
            "publish-to-receive latency over WebSocket",
        ),
        (
            args.memory,
            "memory",
            "server RSS per idle WebSocket subscriber",
        ),
        (
            args.startup,
            "startup",
            "task start-up on the docker backend, and cancel",
        ),
        (
            args.checkpoint,
            "checkpoint",
            "checkpoint cost per turn and restore, local and docker",
        ),
        (
            args.seed,
            "seed",
            "seed and publish against a host clone plus a bind mount",
        ),
    ];
    for (wanted, name, what) in sections {
        if !wanted {
            continue;
        }
        eprintln_progress(&format!("{name}: {what}"));
        let watch = CpuWatch::start();
        report.extend(match name {
            "eventlog" => eventlog::run(&eventlog::Opts::new(args.quick)),
            "latency" => latency::run(&latency::Opts::new(args.quick)),
            "startup" => startup::run(&startup::Opts::new(args.quick)),
            "checkpoint" => checkpoint::run(&checkpoint::Opts::new(args.quick)),
            "seed" => seed::run(&seed::Opts::new(args.quick)),
            _ => memory::run(&memory::Opts::new(args.quick, args.dockhand.clone())),
        });
        if let Some(note) = watch.note(name) {
            report.notes.push(note);
        }
    }

    print_table(&report.rows);
    if !report.notes.is_empty() {
        println!("\nNotes:");
        for n in &report.notes {
            println!("- {n}");
        }
    }
    println!("\nTotal time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Watches for other work on the machine during a section: CPU time used by
/// processes other than this one (and the children it waited for), and iowait.
struct CpuWatch {
    at: std::time::Instant,
    machine: Option<(u64, u64)>,
    own: Option<u64>,
}

/// Linux reports these in USER_HZ, which is 100.
const TICKS_PER_SEC: f64 = 100.0;

impl CpuWatch {
    fn start() -> CpuWatch {
        CpuWatch {
            at: std::time::Instant::now(),
            machine: machine_ticks(),
            own: own_ticks(),
        }
    }

    fn note(&self, section: &str) -> Option<String> {
        let (busy0, wait0) = self.machine?;
        let (busy1, wait1) = machine_ticks()?;
        let own = own_ticks()?.saturating_sub(self.own?);
        let others = busy1.saturating_sub(busy0).saturating_sub(own) as f64 / TICKS_PER_SEC;
        let iowait = wait1.saturating_sub(wait0) as f64 / TICKS_PER_SEC;
        let wall = self.at.elapsed().as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let share = others / (wall * cores).max(0.001);
        let verdict = if share > 0.05 {
            ": the machine was NOT quiet, so these figures may be disturbed; run again"
        } else {
            ""
        };
        Some(format!(
            "{section}: other processes used {others:.1} CPU-s in {wall:.0} s ({:.0}% of the machine), iowait {iowait:.1} s{verdict}",
            share * 100.0
        ))
    }
}

/// Busy and iowait ticks of the whole machine, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some((busy, *v.get(4)?))
}

/// CPU ticks of this process and its reaped children, from /proc/self/stat.
fn own_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let v: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.len() == 4).then(|| v.iter().sum())
}

/// Progress goes to stderr so that stdout is only the report.
pub fn eprintln_progress(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "[bench] {msg}");
}
