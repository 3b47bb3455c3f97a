//! `dockhand-helper`: the forwarder Dockhand runs inside a sandbox at network level
//! `allowlist`, where the only interface is loopback. It listens on the proxy address
//! and relays every connection to the coordinator over a channel the coordinator
//! controls. It uses std only and is linked statically, so it runs in any Linux
//! x86_64 image (glibc, musl, distroless with a shell). `build.rs` compiles it and the
//! sandbox crate embeds it (`src/helper.rs`).
//!
//! - `mux --listen ADDR`: multiplexes every connection over stdin (host to helper)
//!   and stdout (helper to host) with the protocol in `mux.rs`; the docker backend runs it
//!   as one long-lived exec. Exits 0 when stdin ends (the host went away), 1 on a
//!   protocol error or when the host cannot be written to.
//! - `relay --listen ADDR --unix PATH`: relays each connection to the Unix socket
//!   PATH, which the local backend bind-mounts into the sandbox. Runs until killed.
//! - `run [--listen ADDR --unix PATH] -- PROGRAM ARGS...`: the local backend runs every
//!   command in its own network namespace, so this starts the relay of `relay` on
//!   background threads (bound before the program starts), runs PROGRAM as its child
//!   and exits with its exit code, or 128 + the signal that killed it.
//!
//! `mux` and `relay` print `listening ADDR` (the bound address) as one line on stderr.
//! Each subcommand serves at most 256 connections at once and closes extra ones at
//! once. Errors go to stderr as `dockhand-helper: ...`; bad arguments and a failed bind
//! exit 125, and `run` exits 127 when PROGRAM is not found.

mod mux;
mod relay;
#[path = "../src/mux_wire.rs"]
mod wire;

use std::ffi::OsString;
use std::io;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

/// Connections served at once.
const MAX_CONNS: usize = 256;
/// Stack of each thread; their buffers are on the heap.
const THREAD_STACK: usize = 256 * 1024;
/// Pause after a failed accept (out of file descriptors), so it does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

const EXIT_USAGE: i32 = 125;
const EXIT_NOT_FOUND: i32 = 127;

const USAGE: &str = "usage: dockhand-helper mux --listen ADDR
       dockhand-helper relay --listen ADDR --unix PATH
       dockhand-helper run [--listen ADDR --unix PATH] -- PROGRAM [ARGS...]";

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.to_str(), rest),
        None => (None, &args[..]),
    };
    let result = match command {
        Some("mux") => mux::main(rest),
        Some("relay") => relay::main(rest),
        Some("run") => relay::run(rest),
        _ => Err(usage("expected mux, relay or run")),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(failure) => {
            say(&failure.message);
            std::process::exit(failure.code)
        }
    }
}

/// Why the helper stops, and its exit code.
struct Failure {
    code: i32,
    message: String,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: format!("{}\n{USAGE}", message.into()),
    }
}

/// The options of every subcommand.
#[derive(Default)]
struct Opts {
    listen: Option<String>,
    unix: Option<PathBuf>,
    /// `run`'s program and arguments.
    command: Vec<OsString>,
}

/// Parses `--listen ADDR`, `--unix PATH` and, `with_command`, `-- PROGRAM ARGS...`
/// (the `--` may be left out when PROGRAM does not start with `-`).
fn parse(args: &[OsString], with_command: bool) -> Result<Opts, Failure> {
    let mut opts = Opts::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--listen") => {
                let addr = rest.next().and_then(|a| a.to_str());
                let addr = addr.ok_or_else(|| usage("--listen needs an address"))?;
                opts.listen = Some(addr.to_owned());
            }
            Some("--unix") => {
                let path = rest.next().ok_or_else(|| usage("--unix needs a path"))?;
                opts.unix = Some(PathBuf::from(path));
            }
            Some("--") if with_command => {
                opts.command = rest.cloned().collect();
                break;
            }
            _ if with_command && !arg.to_string_lossy().starts_with('-') => {
                opts.command = std::iter::once(arg).chain(rest).cloned().collect();
                break;
            }
            _ => {
                let arg = arg.to_string_lossy();
                return Err(usage(format!("unexpected argument {arg}")));
            }
        }
    }
    Ok(opts)
}

fn bind(addr: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).map_err(|e| Failure {
        code: EXIT_USAGE,
        message: format!("listening on {addr}: {e}"),
    })
}

/// Prints `listening ADDR` on stderr in one write.
fn announce(listener: &TcpListener) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure {
        code: EXIT_USAGE,
        message: format!("announcing the address: {e}"),
    };
    let addr = listener.local_addr().map_err(fail)?;
    let line = format!("listening {addr}\n");
    io::stderr().write_all(line.as_bytes()).map_err(fail)
}

fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Prints `dockhand-helper: MESSAGE` on stderr. Unlike `eprintln!`, it does not
/// panic (abort, here) when stderr is gone.
fn say(message: &str) {
    let line = format!("dockhand-helper: {message}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}
