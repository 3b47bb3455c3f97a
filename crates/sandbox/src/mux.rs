//! The host side of the mux protocol that the sandbox helper's `mux` mode speaks over
//! its stdin and stdout (the docker backend runs it as one long-lived exec).
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
//! There is no flow control, and no unbounded buffer either: a DATA payload is written
//! into its connection's stream before the next frame is read, so a stream nobody
//! reads stalls every connection (head-of-line blocking), and a connection's bytes
//! reach the helper through one bounded queue. The helper mirrors this, and its stdin
//! reader never waits on its stdout, so the two never wait on each other in a cycle.
//! The helper's side is `helper/mux.rs`.

use std::collections::HashMap;
use std::io;

use bytes::Buf;
use bytes::Bytes;
use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::io::BufWriter;
use tokio::io::DuplexStream;
use tokio::io::ReadHalf;
use tokio::io::WriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::mux_wire::CLOSE;
use super::mux_wire::DATA;
use super::mux_wire::EOF;
use super::mux_wire::HEADER;
use super::mux_wire::Header;
use super::mux_wire::MAX_PAYLOAD;
use super::mux_wire::OPEN;

/// Connections live at once; an OPEN beyond them is answered with CLOSE.
const MAX_CONNS: usize = 256;

/// Each direction of a connection's stream buffers this much.
const STREAM_BUFFER: usize = 64 * 1024;
/// What a connection reads from its stream for one DATA frame.
const READ_CHUNK: usize = 16 * 1024;
/// Frames queued for the helper before connections wait.
const QUEUED_FRAMES: usize = 32;

/// A frame for the helper.
struct Frame {
    id: u32,
    kind: u8,
    payload: Bytes,
}

impl Frame {
    fn control(id: u32, kind: u8) -> Frame {
        Frame {
            id,
            kind,
            payload: Bytes::new(),
        }
    }
}

/// One connection.
struct Conn {
    /// Tells this connection's upload apart from an earlier one with the same id.
    serial: u64,
    /// Where the helper's DATA goes; `None` once the helper sent EOF.
    to_handler: Option<WriteHalf<DuplexStream>>,
    /// Copies the handler's bytes to the helper; held to abort it on drop.
    _upload: Upload,
    /// The upload has ended and its EOF (or CLOSE) is queued for the helper.
    upload_done: bool,
}

impl Conn {
    /// Ends the connection: the handler reads end-of-file, and its writes fail once
    /// the upload task is gone.
    async fn close(mut self) {
        if let Some(mut to_handler) = self.to_handler.take() {
            let _ = to_handler.shutdown().await;
        }
    }
}

/// An upload task, aborted on drop, so a dropped `demux` leaves no task behind.
struct Upload(JoinHandle<()>);

impl Drop for Upload {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How an upload ended: its connection's serial and the frame to send, EOF when the
/// handler finished writing, CLOSE on an error.
struct UploadEnd {
    id: u32,
    serial: u64,
    kind: u8,
}

/// Reads frames from `from_helper`, writes frames to `to_helper`; for every OPEN calls
/// `on_conn` with a stream for that connection, pumping DATA, EOF and CLOSE between the
/// streams and the frames. Returns when `from_helper` ends (`Ok`), or with an error
/// saying what went wrong (a protocol error, reading from or writing to the helper),
/// after closing every connection.
pub(crate) async fn demux<R, W>(
    from_helper: R,
    to_helper: W,
    mut on_conn: impl FnMut(u32, DuplexStream) + Send,
) -> io::Result<()>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (frames_tx, frames_rx) = mpsc::channel(QUEUED_FRAMES);
    let mut conns = HashMap::new();
    let result = tokio::select! {
        read = read_frames(from_helper, &frames_tx, &mut conns, &mut on_conn) => read,
        written = write_frames(to_helper, frames_rx) => written,
    };
    for (_, conn) in conns.drain() {
        conn.close().await;
    }
    result
}

/// Handles the helper's frames, and the ends of uploads, until the helper's output
/// ends or breaks the protocol.
async fn read_frames<R>(
    from_helper: R,
    frames: &mpsc::Sender<Frame>,
    conns: &mut HashMap<u32, Conn>,
    on_conn: &mut (impl FnMut(u32, DuplexStream) + Send),
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
{
    let mut input = FrameReader {
        input: from_helper,
        buf: BytesMut::new(),
    };
    // Unbounded, but each upload sends at most one message, and an upload is aborted
    // when its connection closes.
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let mut serial = 0;
    loop {
        let (id, kind, payload) = tokio::select! {
            biased;
            Some(end) = ended_rx.recv() => {
                upload_ended(end, frames, conns).await;
                continue;
            }
            frame = input.next() => match frame? {
                Some(frame) => frame,
                None => return Ok(()),
            },
        };
        match kind {
            OPEN => {
                // The helper never reuses a live id; if we still hold it, it is over.
                if let Some(old) = conns.remove(&id) {
                    old.close().await;
                }
                if conns.len() >= MAX_CONNS {
                    let _ = frames.send(Frame::control(id, CLOSE)).await;
                    continue;
                }
                serial += 1;
                let (ours, theirs) = tokio::io::duplex(STREAM_BUFFER);
                let (from_handler, to_handler) = tokio::io::split(ours);
                let task = upload(id, serial, from_handler, frames.clone(), ended_tx.clone());
                let conn = Conn {
                    serial,
                    to_handler: Some(to_handler),
                    _upload: Upload(tokio::spawn(task)),
                    upload_done: false,
                };
                conns.insert(id, conn);
                on_conn(id, theirs);
            }
            DATA => {
                let Some(to_handler) = conns.get_mut(&id).and_then(|c| c.to_handler.as_mut())
                else {
                    continue;
                };
                // Waits while the handler is slow to read: head-of-line blocking.
                if to_handler.write_all(&payload).await.is_err() {
                    // The handler dropped its stream.
                    if let Some(conn) = conns.remove(&id) {
                        conn.close().await;
                    }
                    let _ = frames.send(Frame::control(id, CLOSE)).await;
                }
            }
            EOF => {
                let Some(conn) = conns.get_mut(&id) else {
                    continue;
                };
                if let Some(mut to_handler) = conn.to_handler.take() {
                    let _ = to_handler.shutdown().await;
                }
                if conn.upload_done {
                    conns.remove(&id);
                }
            }
            CLOSE => {
                if let Some(conn) = conns.remove(&id) {
                    conn.close().await;
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

/// Queues an ended upload's EOF or CLOSE for the helper, after its last DATA, and
/// forgets the connection once both directions are over. Doing this here rather than
/// in the upload task means a connection is never forgotten with its EOF unsent, and
/// the helper never sees the EOF before the connection counts as done here.
async fn upload_ended(
    end: UploadEnd,
    frames: &mpsc::Sender<Frame>,
    conns: &mut HashMap<u32, Conn>,
) {
    let UploadEnd { id, serial, kind } = end;
    let Some(conn) = conns.get_mut(&id).filter(|c| c.serial == serial) else {
        return;
    };
    conn.upload_done = true;
    let over = kind == CLOSE || conn.to_handler.is_none();
    let _ = frames.send(Frame::control(id, kind)).await;
    if over && let Some(conn) = conns.remove(&id) {
        conn.close().await;
    }
}

/// Copies what the handler writes to the helper as DATA, then reports how it ended.
async fn upload(
    id: u32,
    serial: u64,
    mut from_handler: ReadHalf<DuplexStream>,
    frames: mpsc::Sender<Frame>,
    ended: mpsc::UnboundedSender<UploadEnd>,
) {
    let mut buf = vec![0; READ_CHUNK];
    let kind = loop {
        let n = match from_handler.read(&mut buf).await {
            Ok(0) => break EOF,
            Ok(n) => n,
            Err(_) => break CLOSE,
        };
        let payload = Bytes::copy_from_slice(&buf[..n]);
        let frame = Frame {
            id,
            kind: DATA,
            payload,
        };
        if frames.send(frame).await.is_err() {
            // demux has returned.
            return;
        }
    };
    let _ = ended.send(UploadEnd { id, serial, kind });
}

/// Writes queued frames to the helper, flushing whenever the queue runs empty.
async fn write_frames<W>(to_helper: W, mut frames: mpsc::Receiver<Frame>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut output = BufWriter::with_capacity(HEADER + MAX_PAYLOAD, to_helper);
    while let Some(frame) = frames.recv().await {
        write_frame(&mut output, &frame).await.map_err(writing)?;
        while let Ok(frame) = frames.try_recv() {
            write_frame(&mut output, &frame).await.map_err(writing)?;
        }
        output.flush().await.map_err(writing)?;
    }
    Ok(())
}

async fn write_frame<W>(output: &mut W, frame: &Frame) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    // At most READ_CHUNK bytes.
    let header = Header::encode(frame.id, frame.kind, frame.payload.len());
    output.write_all(&header).await?;
    output.write_all(&frame.payload).await
}

/// Splits the helper's output into frames.
struct FrameReader<R> {
    input: R,
    /// Bytes read and not yet returned: at most one frame and one read's worth.
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame as (id, kind, payload); `None` when the input ends between
    /// frames. Cancel-safe: what was read stays in the buffer. A bad header is
    /// refused as soon as it arrives, before its payload.
    async fn next(&mut self) -> io::Result<Option<(u32, u8, Bytes)>> {
        loop {
            if let Some(bytes) = self.buf.first_chunk::<HEADER>() {
                let Header { id, kind, len } = Header::parse(bytes).map_err(protocol_error)?;
                if self.buf.len() >= HEADER + len {
                    let mut frame = self.buf.split_to(HEADER + len);
                    frame.advance(HEADER);
                    return Ok(Some((id, kind, frame.freeze())));
                }
            }
            self.buf.reserve(HEADER + MAX_PAYLOAD);
            if self.input.read_buf(&mut self.buf).await.map_err(reading)? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let message = "reading from the helper: its output ended inside a frame";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, message));
            }
        }
    }
}

fn protocol_error(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("mux protocol error: {message}"),
    )
}

fn reading(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("reading from the helper: {e}"))
}

fn writing(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("writing to the helper: {e}"))
}
