//! `relay` and `run`: each connection copied to a Unix socket.

use std::ffi::OsString;
use std::io;
use std::io::Read;
use std::io::Write;
use std::net::Shutdown;
use std::net::TcpListener;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::thread;

use crate::ACCEPT_PAUSE;
use crate::EXIT_NOT_FOUND;
use crate::EXIT_USAGE;
use crate::Failure;
use crate::MAX_CONNS;
use crate::announce;
use crate::bind;
use crate::parse;
use crate::say;
use crate::spawn;
use crate::usage;

pub(crate) fn main(args: &[OsString]) -> Result<i32, Failure> {
    let opts = parse(args, /*with_command*/ false)?;
    let (Some(listen), Some(unix)) = (opts.listen, opts.unix) else {
        return Err(usage("relay needs --listen ADDR and --unix PATH"));
    };
    let listener = bind(&listen)?;
    announce(&listener)?;
    serve_relay(listener, unix, /*log*/ true);
    Ok(0)
}

pub(crate) fn run(args: &[OsString]) -> Result<i32, Failure> {
    let opts = parse(args, /*with_command*/ true)?;
    let Some((program, program_args)) = opts.command.split_first() else {
        return Err(usage("run needs -- PROGRAM"));
    };
    match (opts.listen, opts.unix) {
        (Some(listen), Some(unix)) => {
            let listener = bind(&listen)?;
            // Quiet: stderr belongs to the program.
            spawn(move || serve_relay(listener, unix, /*log*/ false)).map_err(|e| Failure {
                code: EXIT_USAGE,
                message: format!("starting a thread: {e}"),
            })?;
        }
        (None, None) => {}
        _ => return Err(usage("run needs both --listen and --unix, or neither")),
    }
    let name = program.to_string_lossy();
    let status = Command::new(program)
        .args(program_args)
        .status()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Failure {
                code: EXIT_NOT_FOUND,
                message: format!("{name}: not found"),
            },
            _ => Failure {
                code: EXIT_USAGE,
                message: format!("starting {name}: {e}"),
            },
        })?;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
    Ok(code.unwrap_or(EXIT_USAGE))
}

/// Relays each connection to the Unix socket `unix`. Runs forever.
fn serve_relay(listener: TcpListener, unix: PathBuf, log: bool) {
    let active = Arc::new(AtomicUsize::new(0));
    for incoming in listener.incoming() {
        let Ok(tcp) = incoming else {
            thread::sleep(ACCEPT_PAUSE);
            continue;
        };
        let Some(slot) = Slot::take(&active) else {
            continue;
        };
        let unix = unix.clone();
        // On failure the closure is dropped: the socket closes, the slot frees.
        let _ = spawn(move || relay_conn(tcp, &unix, slot, log));
    }
}

/// One of the [`MAX_CONNS`] connections a relay serves; freed on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Option<Slot> {
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
            active.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(Arc::clone(active)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Copies both ways between `tcp` and a new connection to `unix_path`, one thread
/// per direction.
fn relay_conn(tcp: TcpStream, unix_path: &Path, slot: Slot, log: bool) {
    let unix = match UnixStream::connect(unix_path) {
        Ok(unix) => unix,
        Err(e) => {
            if log {
                say(&format!("connecting to {}: {e}", unix_path.display()));
            }
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let tcp = Arc::new(tcp);
    let unix = Arc::new(unix);
    let slot = Arc::new(slot);
    let (back_tcp, back_unix, back_slot) = (Arc::clone(&tcp), Arc::clone(&unix), Arc::clone(&slot));
    let back = spawn(move || {
        let _slot = back_slot;
        copy_half(&*back_unix, &*back_tcp);
    });
    if back.is_err() {
        let _ = tcp.shutdown(Shutdown::Both);
        let _ = unix.shutdown(Shutdown::Both);
        return;
    }
    copy_half(&*tcp, &*unix);
}

/// A socket whose directions can be shut down.
trait Socket {
    fn shut(&self, how: Shutdown);
}

impl Socket for TcpStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

impl Socket for UnixStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

/// Copies `from` to `to` until `from` ends, then shuts down writing on `to` (a
/// half-close). On an error both sockets are shut, which also ends the other direction.
fn copy_half<A, B>(from: &A, to: &B)
where
    A: Socket,
    B: Socket,
    for<'a> &'a A: Read,
    for<'a> &'a B: Write,
{
    let (mut reader, mut writer) = (from, to);
    match io::copy(&mut reader, &mut writer) {
        Ok(_) => to.shut(Shutdown::Write),
        Err(_) => {
            from.shut(Shutdown::Both);
            to.shut(Shutdown::Both);
        }
    }
}
