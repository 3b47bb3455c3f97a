//! The sandbox helper, run on the host (it is an ordinary static Linux program):
//! `mux` against the host side's `demux`, `relay` and `run` against a Unix echo
//! server, and `demux` against a fake helper that breaks the protocol.
//!
//! `demux` is crate-private, so this target compiles `src/mux.rs` (and the wire
//! format it uses) in itself. Every
//! wait is bounded by [`WAIT`], so a bug fails a test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/mux.rs"]
mod mux;
#[path = "../src/mux_wire.rs"]
mod mux_wire;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Duration;

use dockhand_sandbox::helper::HELPER;
use dockhand_sandbox::helper::write_helper;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::io::BufReader;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;
use tokio::net::UnixListener;
use tokio::process::Child;
use tokio::process::Command;
use tokio::sync::mpsc;

/// Bounds every wait.
const WAIT: Duration = Duration::from_secs(30);

const OPEN: u8 = 1;
const DATA: u8 = 2;
const EOF: u8 = 3;
const CLOSE: u8 = 4;

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no result within {WAIT:?}"),
    }
}

/// The helper, written once per test run under the target dir. Every test gets it
/// from here before starting any process, so no child can inherit the file while it
/// is open for writing (which would make running it fail with "text file busy").
fn helper() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dockhand-helper");
        write_helper(&path).unwrap();
        path
    })
}

/// Starts the helper with `args`, all three streams piped.
fn start(args: &[&str]) -> Child {
    Command::new(helper())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Reads the helper's `listening ADDR` line, then keeps draining its stderr.
async fn listening(child: &mut Child) -> SocketAddr {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = within("the listening line", lines.next_line())
        .await
        .unwrap();
    let line = line.expect("the helper's stderr ended");
    let addr = line
        .strip_prefix("listening ")
        .expect(&line)
        .parse()
        .unwrap();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(std::io::stderr(), "helper: {line}");
        }
    });
    addr
}

/// Echoes a stream upper-cased, so an answer proves it went through the echo;
/// shuts down writing when the stream ends.
async fn upper_echo(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = vec![0; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf[..n].make_ascii_uppercase();
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = stream.shutdown().await;
}

/// A Unix socket in `dir` served by [`upper_echo`].
fn unix_echo(dir: &Path) -> PathBuf {
    let path = dir.join("egress.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(upper_echo(stream));
        }
    });
    path
}

/// Pseudo-random bytes, lowercase letters among them.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Sends `data` while reading the answer, then half-closes; returns everything read
/// up to end-of-file.
async fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let send = tokio::spawn(async move {
        writer.write_all(&data).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    send.await.unwrap();
    got
}

/// Writes a line, reads its echo, writes another and half-closes before reading: the
/// rest of the echo still arrives, then end-of-file.
async fn half_close(addr: SocketAddr, n: usize) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let first = format!("client {n}, first line\n");
    stream.write_all(first.as_bytes()).await.unwrap();
    let mut echo = vec![0; first.len()];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, first.to_uppercase().as_bytes());
    let second = format!("client {n}, after the first echo\n");
    stream.write_all(second.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, second.to_uppercase().as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mux_carries_concurrent_connections_each_on_its_own_stream() {
    let mut child = start(&["mux", "--listen", "127.0.0.1:0"]);
    let addr = listening(&mut child).await;
    let to_helper = child.stdin.take().unwrap();
    let from_helper = child.stdout.take().unwrap();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ids);
    let demux = tokio::spawn(mux::demux(from_helper, to_helper, move |id, stream| {
        seen.lock().unwrap().push(id);
        tokio::spawn(upper_echo(stream));
    }));

    let big = noise(4 << 20);
    let big_echo = tokio::spawn(round_trip(addr, big.clone()));
    let small: Vec<_> = (0..8)
        .map(|n| tokio::spawn(round_trip(addr, format!("client {n} says hi").into_bytes())))
        .collect();
    let halves: Vec<_> = (0..4).map(|n| tokio::spawn(half_close(addr, n))).collect();

    let got = within("the 4 MiB echo", big_echo).await.unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got == big.to_ascii_uppercase(), "the 4 MiB echo differs");
    for (n, client) in small.into_iter().enumerate() {
        let got = within("a small echo", client).await.unwrap();
        assert_eq!(got, format!("CLIENT {n} SAYS HI").as_bytes());
    }
    for client in halves {
        within("a half-closing client", client).await.unwrap();
    }
    let mut ids = ids.lock().unwrap().clone();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 13, "one fresh id per connection");

    // The host goes away: the helper's stdin ends and it exits 0.
    demux.abort();
    let _ = within("demux to end", demux).await;
    let status = within("the helper to exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_copies_both_ways_to_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_echo(dir.path());
    let socket = socket.to_str().unwrap();
    let mut child = start(&["relay", "--listen", "127.0.0.1:0", "--unix", socket]);
    let addr = listening(&mut child).await;

    let big = noise(1 << 20);
    let big_echo = tokio::spawn(round_trip(addr, big.clone()));
    within("a half-closing client", half_close(addr, 0)).await;
    let got = within("the 1 MiB echo", big_echo).await.unwrap();
    assert!(got == big.to_ascii_uppercase(), "the 1 MiB echo differs");
}

/// Runs the helper to its end and returns its exit code, stdout and stderr.
async fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(helper())
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = within("the helper's run", output).await.unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[tokio::test]
async fn run_exits_with_the_program_status() {
    let (code, _, _) = run(&["run", "--", "sh", "-c", "exit 7"]).await;
    assert_eq!(code, Some(7));
    let (code, _, _) = run(&["run", "--", "sh", "-c", "kill -9 $$"]).await;
    assert_eq!(code, Some(128 + 9));
    let (code, out, _) = run(&["run", "--", "sh", "-c", "echo \"$0 $1\"", "a", "b c"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "a b c\n"));

    let (code, _, err) = run(&["run", "--", "/nonexistent/program"]).await;
    assert_eq!(code, Some(127));
    assert!(
        err.starts_with("dockhand-helper: /nonexistent/program"),
        "{err}"
    );
    let (code, _, err) = run(&["run", "--listen", "127.0.0.1:0", "--", "true"]).await;
    assert_eq!(code, Some(125));
    assert!(err.starts_with("dockhand-helper: "), "{err}");
    let (code, _, _) = run(&["fly"]).await;
    assert_eq!(code, Some(125));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_relays_for_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_echo(dir.path());
    // `run` does not print its address: take a free port and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; echo 'hello through the relay' >&3; \
         read -r line <&3; echo \"got $line\""
    );
    let args = [
        "run",
        "--listen",
        &listen,
        "--unix",
        socket.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        &script,
    ];
    let (code, out, err) = run(&args).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "got HELLO THROUGH THE RELAY\n");
}

/// A fake helper: `demux` runs on one end of two in-memory pipes, the test speaks
/// frames on the other.
struct FakeHelper {
    /// Frames for demux.
    to_demux: DuplexStream,
    /// Frames from demux.
    from_demux: DuplexStream,
    /// The streams demux handed out, with their ids.
    streams: mpsc::UnboundedReceiver<(u32, DuplexStream)>,
    demux: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl FakeHelper {
    fn start() -> FakeHelper {
        let (to_demux, from_helper) = tokio::io::duplex(1 << 20);
        let (to_helper, from_demux) = tokio::io::duplex(1 << 20);
        let (streams_tx, streams) = mpsc::unbounded_channel();
        let demux = tokio::spawn(mux::demux(from_helper, to_helper, move |id, stream| {
            streams_tx.send((id, stream)).unwrap();
        }));
        FakeHelper {
            to_demux,
            from_demux,
            streams,
            demux,
        }
    }

    async fn send(&mut self, id: u32, kind: u8, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap();
        self.send_header(id, kind, len).await;
        self.to_demux.write_all(payload).await.unwrap();
    }

    async fn send_header(&mut self, id: u32, kind: u8, len: u32) {
        let mut header = id.to_be_bytes().to_vec();
        header.push(kind);
        header.extend_from_slice(&len.to_be_bytes());
        self.to_demux.write_all(&header).await.unwrap();
    }

    /// Opens connection `id` and returns demux's stream for it.
    async fn open(&mut self, id: u32) -> DuplexStream {
        self.send(id, OPEN, &[]).await;
        let (got, stream) = within("on_conn", self.streams.recv()).await.unwrap();
        assert_eq!(got, id);
        stream
    }

    /// The next frame demux wrote.
    async fn frame(&mut self) -> (u32, u8, Vec<u8>) {
        within("a frame from demux", async {
            let mut header = [0; 9];
            self.from_demux.read_exact(&mut header).await.unwrap();
            let id = u32::from_be_bytes(header[..4].try_into().unwrap());
            let len = u32::from_be_bytes(header[5..].try_into().unwrap()) as usize;
            let mut payload = vec![0; len];
            self.from_demux.read_exact(&mut payload).await.unwrap();
            (id, header[4], payload)
        })
        .await
    }
}

#[tokio::test]
async fn demux_stops_on_an_oversized_frame_and_closes_its_streams() {
    let mut helper = FakeHelper::start();
    let mut stream = helper.open(7).await;
    helper.send(7, DATA, b"to the handler").await;
    let mut got = [0; 14];
    within("DATA", stream.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"to the handler");
    stream.write_all(b"to the helper").await.unwrap();
    assert_eq!(helper.frame().await, (7, DATA, b"to the helper".to_vec()));

    // Refused on its header, before any payload.
    helper.send_header(7, DATA, 65537).await;
    let err = within("demux to stop", helper.demux)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("protocol error"), "{err}");
    assert!(err.to_string().contains("65537"), "{err}");

    let mut rest = Vec::new();
    within("the stream's end", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    // Writes fail once nobody can read them (after filling the buffer, at most).
    let write = stream.write_all(&[0; 256 * 1024]);
    assert!(within("a write to fail", write).await.is_err());
}

#[tokio::test]
async fn demux_refuses_connections_past_256_and_frees_finished_ones() {
    let mut helper = FakeHelper::start();
    let mut streams = Vec::new();
    for id in 0..256 {
        streams.push(helper.open(id).await);
    }
    helper.send(256, OPEN, &[]).await;
    assert_eq!(helper.frame().await, (256, CLOSE, Vec::new()));

    // Connection 0 ends both ways (handler first, then the helper): its slot frees.
    streams[0].shutdown().await.unwrap();
    assert_eq!(helper.frame().await, (0, EOF, Vec::new()));
    helper.send(0, EOF, &[]).await;
    let mut rest = Vec::new();
    within(
        "EOF to reach the handler",
        streams[0].read_to_end(&mut rest),
    )
    .await
    .unwrap();
    let mut late = helper.open(300).await;
    late.write_all(b"x").await.unwrap();
    // Had 300 been refused, its CLOSE would come first.
    assert_eq!(helper.frame().await, (300, DATA, b"x".to_vec()));
    // A frame for an unknown id is ignored.
    helper.send(999, DATA, b"nobody").await;

    // The helper's output ends: demux returns and closes every stream.
    drop(helper.to_demux);
    within("demux to return", helper.demux)
        .await
        .unwrap()
        .unwrap();
    for mut stream in streams.into_iter().skip(1).chain([late]) {
        let mut rest = Vec::new();
        within("a stream's end", stream.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
    }
}

#[test]
fn write_helper_writes_an_executable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("helper");
    write_helper(&path).unwrap();
    // Again over the first, as a backend does on every start.
    write_helper(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), HELPER);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    // Only the helper is left: no temporary file.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
