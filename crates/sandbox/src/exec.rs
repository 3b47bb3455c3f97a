//! A one-shot command and how it ended: what every backend's [`exec`](crate::Sandbox::exec)
//! takes and returns.

use std::time::Duration;

/// A one-shot command.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// Program and arguments, run without a shell.
    pub argv: Vec<String>,
    /// Bytes fed to stdin, which is closed afterwards; stdin is empty when `None`.
    pub stdin: Option<Vec<u8>>,
    /// Working directory inside the sandbox; `/workspace` when `None`.
    pub cwd: Option<String>,
    /// Extra environment variables for this command.
    pub env: Vec<(String, String)>,
    /// Kill the command's whole process tree after this long.
    pub timeout: Duration,
    /// Keep at most this many bytes of stdout and of stderr; the rest is counted, not kept.
    pub output_cap: usize,
}

impl ExecRequest {
    /// A request for `argv` with a 60 s timeout and a 1 MiB cap.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            cwd: None,
            env: Vec::new(),
            timeout: Duration::from_secs(60),
            output_cap: 1 << 20,
        }
    }
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a one-shot command ended.
#[derive(Clone, Debug, Default)]
pub struct ExecOutput {
    /// The exit code; `None` when the command was killed (timeout, signal).
    pub exit_code: Option<i32>,
    /// Captured stdout, at most `output_cap` bytes.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most `output_cap` bytes.
    pub stderr: Vec<u8>,
    /// Bytes produced past the cap and dropped (stdout and stderr together).
    pub dropped_bytes: u64,
    /// True when the timeout killed the command.
    pub timed_out: bool,
    /// Why the command was killed, when the sandbox knows (for example
    /// "out of memory (limit 2 GiB)"), in words the model can read.
    pub killed_reason: Option<String>,
}

/// Receives output as it is produced.
pub type OutputSink<'a> = &'a mut (dyn FnMut(OutputStream, &[u8]) + Send);

/// Keeps at most `cap` bytes of each stream of a one-shot command and counts
/// the rest; the sink sees only what is kept.
pub(crate) struct Capture {
    cap: usize,
    pub(crate) out: ExecOutput,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Capture {
        Capture {
            cap,
            out: ExecOutput::default(),
        }
    }

    pub(crate) fn push(&mut self, stream: OutputStream, chunk: &[u8], sink: OutputSink<'_>) {
        let kept = match stream {
            OutputStream::Stdout => &mut self.out.stdout,
            OutputStream::Stderr => &mut self.out.stderr,
        };
        let room = self.cap.saturating_sub(kept.len()).min(chunk.len());
        let (keep, rest) = chunk.split_at(room);
        if !keep.is_empty() {
            kept.extend_from_slice(keep);
            // A runaway command cannot flood the event log.
            sink(stream, keep);
        }
        self.out.dropped_bytes += rest.len() as u64;
    }
}
