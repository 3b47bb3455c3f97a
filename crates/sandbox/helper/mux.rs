//! `mux`: every connection multiplexed over stdin (host to helper) and stdout (helper
//! to host).
//!
//! Both directions carry frames `[conn id: u32 BE][kind: u8][len: u32 BE][payload]`,
//! with `len` at most 65536; a larger one is a protocol error and the receiver stops.
//!
//! - 1 OPEN (helper to host only, no payload): a new connection with a fresh id.
//! - 2 DATA: payload bytes for that connection.
//! - 3 EOF (no payload): the sender sends no more DATA on that id (a half-close); the
//!   receiver shuts down writing on its side.
//! - 4 CLOSE (no payload): the sender dropped the connection (an error, a refusal, too
//!   many connections); the receiver drops it too.
//!
//! A connection also ends, without CLOSE, once each side has sent EOF and received
//! one; each side then forgets its id. The helper picks ids and never reuses one while
//! it is live. Frames for unknown ids are ignored. Any other kind, an OPEN from the
//! host, or a payload on OPEN, EOF or CLOSE is a protocol error.
//!
//! There is no flow control: the helper writes each DATA payload to its socket before
//! reading the next frame, so a client that does not read stalls the other
//! connections (head-of-line blocking) rather than growing a buffer. The host does the
//! same. The helper's stdin reader never waits on stdout (frames it must send go to
//! an unbounded queue, at most one CLOSE per connection), so the helper and the host
//! never wait on each other in a cycle: a stall always ends at a reader that does
//! not read.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::net::Shutdown;
use std::net::TcpListener;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::PoisonError;
use std::thread;

use crate::ACCEPT_PAUSE;
use crate::EXIT_USAGE;
use crate::Failure;
use crate::MAX_CONNS;
use crate::announce;
use crate::bind;
use crate::parse;
use crate::say;
use crate::spawn;
use crate::usage;
use crate::wire::CLOSE;
use crate::wire::DATA;
use crate::wire::EOF;
use crate::wire::HEADER;
use crate::wire::Header;
use crate::wire::MAX_PAYLOAD;
use crate::wire::OPEN;


/// Bytes of frames queued for stdout before connection readers wait for the host.
const OUTBOX_LIMIT: usize = 1 << 20;

/// Exit code on a protocol error or when the host cannot be read or written.
const EXIT_PROTOCOL: i32 = 1;

pub(crate) fn main(args: &[OsString]) -> Result<i32, Failure> {
    let opts = parse(args, /*with_command*/ false)?;
    let (Some(listen), None) = (opts.listen, opts.unix) else {
        return Err(usage("mux needs --listen ADDR and no --unix"));
    };
    let listener = bind(&listen)?;
    // Connections wait in the backlog until the accept thread starts.
    announce(&listener)?;
    let input = dup(io::stdin().as_fd(), "stdin")?;
    let output = dup(io::stdout().as_fd(), "stdout")?;
    let mux = Arc::new(Mux::default());
    let writer = Arc::clone(&mux);
    let acceptor = Arc::clone(&mux);
    let started = spawn(move || writer.write_host(output))
        .and_then(|()| spawn(move || acceptor.accept_loop(listener)));
    started.map_err(|e| Failure {
        code: EXIT_USAGE,
        message: format!("starting a thread: {e}"),
    })?;
    let result = mux.read_host(input);
    mux.close_all();
    result
}

fn protocol_error(message: String) -> Failure {
    Failure {
        code: EXIT_PROTOCOL,
        message: format!("mux protocol error: {message}"),
    }
}

/// A private copy of stdin or stdout, read and written without std's buffering.
fn dup(fd: BorrowedFd<'_>, what: &str) -> Result<File, Failure> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Failure {
            code: EXIT_USAGE,
            message: format!("duplicating {what}: {e}"),
        })
}

#[derive(Default)]
struct Mux {
    conns: Mutex<Conns>,
    outbox: Outbox,
}

#[derive(Default)]
struct Conns {
    live: HashMap<u32, Conn>,
    next_id: u32,
}

struct Conn {
    stream: Arc<TcpStream>,
    /// EOF was sent to the host.
    read_done: bool,
    /// EOF came from the host and the socket's writing side is shut.
    write_done: bool,
}

/// One direction of a connection.
enum Side {
    /// Client to host.
    Read,
    /// Host to client.
    Write,
}

impl Conns {
    fn fresh_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.live.contains_key(&id) {
                return id;
            }
        }
    }
}

impl Mux {
    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for incoming in listener.incoming() {
            let Ok(stream) = incoming else {
                thread::sleep(ACCEPT_PAUSE);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let stream = Arc::new(stream);
            let id = {
                let mut conns = lock(&self.conns);
                if conns.live.len() >= MAX_CONNS {
                    // Dropping the only reference closes it.
                    continue;
                }
                let id = conns.fresh_id();
                let conn = Conn {
                    stream: Arc::clone(&stream),
                    read_done: false,
                    write_done: false,
                };
                conns.live.insert(id, conn);
                id
            };
            self.outbox.push(frame(id, OPEN, &[]));
            let mux = Arc::clone(&self);
            let reader = Arc::clone(&stream);
            if spawn(move || mux.pump(id, reader)).is_err() {
                self.abort(id, &stream);
            }
        }
    }

    /// Copies the client's bytes to the host as DATA, then EOF; CLOSE on an error.
    fn pump(&self, id: u32, stream: Arc<TcpStream>) {
        let mut buf = vec![0; MAX_PAYLOAD];
        loop {
            match (&*stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.outbox.push(frame(id, DATA, &buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.abort(id, &stream),
            }
        }
        // Either the client half-closed, or the host's CLOSE shut the socket down.
        if self.stream(id).is_some_and(|s| Arc::ptr_eq(&s, &stream)) {
            self.outbox.push(frame(id, EOF, &[]));
            self.finish(id, &stream, Side::Read);
        }
    }

    fn stream(&self, id: u32) -> Option<Arc<TcpStream>> {
        lock(&self.conns)
            .live
            .get(&id)
            .map(|c| Arc::clone(&c.stream))
    }

    /// Marks one direction done; forgets the connection once both are.
    fn finish(&self, id: u32, stream: &Arc<TcpStream>, side: Side) {
        let mut conns = lock(&self.conns);
        let Some(conn) = conns.live.get_mut(&id) else {
            return;
        };
        if !Arc::ptr_eq(&conn.stream, stream) {
            return;
        }
        match side {
            Side::Read => conn.read_done = true,
            Side::Write => conn.write_done = true,
        }
        if conn.read_done && conn.write_done {
            conns.live.remove(&id);
        }
    }

    /// Drops a connection on our side's error and tells the host with CLOSE.
    fn abort(&self, id: u32, stream: &Arc<TcpStream>) {
        let removed = {
            let mut conns = lock(&self.conns);
            match conns.live.get(&id) {
                Some(conn) if Arc::ptr_eq(&conn.stream, stream) => conns.live.remove(&id).is_some(),
                _ => false,
            }
        };
        let _ = stream.shutdown(Shutdown::Both);
        if removed {
            self.outbox.push_now(frame(id, CLOSE, &[]));
        }
    }

    fn close_all(&self) {
        let mut conns = lock(&self.conns);
        for conn in conns.live.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        conns.live.clear();
    }

    /// Reads the host's frames until stdin ends (exit code 0) or a protocol error.
    fn read_host(&self, input: File) -> Result<i32, Failure> {
        let mut input = BufReader::with_capacity(HEADER + MAX_PAYLOAD, input);
        let mut payload = vec![0; MAX_PAYLOAD];
        let read_error = |e: io::Error| Failure {
            code: EXIT_PROTOCOL,
            message: format!("reading from the host: {e}"),
        };
        loop {
            let Some(header) = read_header(&mut input).map_err(read_error)? else {
                return Ok(0);
            };
            let Header { id, kind, len } = Header::parse(&header).map_err(protocol_error)?;
            let payload = &mut payload[..len];
            input.read_exact(payload).map_err(read_error)?;
            match kind {
                DATA => {
                    // Waits while the client is slow to read: head-of-line blocking.
                    if let Some(stream) = self.stream(id) {
                        if (&*stream).write_all(payload).is_err() {
                            self.abort(id, &stream);
                        }
                    }
                }
                EOF => {
                    if let Some(stream) = self.stream(id) {
                        let _ = stream.shutdown(Shutdown::Write);
                        self.finish(id, &stream, Side::Write);
                    }
                }
                CLOSE => {
                    let removed = lock(&self.conns).live.remove(&id);
                    if let Some(conn) = removed {
                        // Also ends its pump's read, which then sends nothing.
                        let _ = conn.stream.shutdown(Shutdown::Both);
                    }
                }
                _ => {
                    return Err(protocol_error(format!(
                        "unexpected frame kind {kind} for connection {id}"
                    )));
                }
            }
        }
    }

    /// Writes queued frames to stdout; exits the helper when the host cannot take them.
    fn write_host(&self, output: File) {
        let mut output = BufWriter::with_capacity(HEADER + MAX_PAYLOAD, output);
        loop {
            let batch = self.outbox.take();
            let bytes = batch.iter().map(Vec::len).sum();
            let written = batch
                .iter()
                .try_for_each(|frame| output.write_all(frame))
                .and_then(|()| output.flush());
            if let Err(e) = written {
                say(&format!("writing to the host: {e}"));
                std::process::exit(EXIT_PROTOCOL);
            }
            self.outbox.written(bytes);
        }
    }
}

/// Reads a frame header; `None` when the input ends between frames.
fn read_header(input: &mut impl Read) -> io::Result<Option<[u8; HEADER]>> {
    let mut header = [0; HEADER];
    let mut filled = 0;
    while filled < HEADER {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                let message = "the input ended inside a frame";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, message));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(header))
}

fn frame(id: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&Header::encode(id, kind, payload.len()));
    frame.extend_from_slice(payload);
    frame
}

/// Frames waiting for stdout, in order, bounded by [`OUTBOX_LIMIT`] bytes for the
/// connection readers.
#[derive(Default)]
struct Outbox {
    queue: Mutex<Queue>,
    filled: Condvar,
    drained: Condvar,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    /// Queued and being written.
    bytes: usize,
}

impl Outbox {
    /// Queues a frame once fewer than [`OUTBOX_LIMIT`] bytes are waiting.
    fn push(&self, frame: Vec<u8>) {
        let mut queue = lock(&self.queue);
        while queue.bytes >= OUTBOX_LIMIT {
            queue = wait(&self.drained, queue);
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        self.filled.notify_one();
    }

    /// Queues a frame without waiting, for the stdin reader, which must keep reading
    /// whatever the host does. It queues at most one CLOSE per connection.
    fn push_now(&self, frame: Vec<u8>) {
        let mut queue = lock(&self.queue);
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        self.filled.notify_one();
    }

    /// Waits for frames and takes them all.
    fn take(&self) -> VecDeque<Vec<u8>> {
        let mut queue = lock(&self.queue);
        while queue.frames.is_empty() {
            queue = wait(&self.filled, queue);
        }
        std::mem::take(&mut queue.frames)
    }

    /// Frees room once taken frames of `bytes` bytes are written.
    fn written(&self, bytes: usize) {
        let mut queue = lock(&self.queue);
        queue.bytes = queue.bytes.saturating_sub(bytes);
        self.drained.notify_all();
    }
}

/// Locks, ignoring poison: with `panic=abort` no thread can die holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}
