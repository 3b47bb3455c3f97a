//! A small server-sent-events parser (the WHATWG event-stream format): `event:`
//! and `data:` fields, multi-line data, comments, and LF, CRLF or CR line ends,
//! fed with chunks that may split lines anywhere.

use crate::ModelError;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` name; `message` when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental parser; feed it chunks as they arrive.
pub(crate) struct SseParser {
    /// Bytes not yet split into lines.
    buf: Vec<u8>,
    /// How far `buf` has been searched for a line end, so a long line arriving
    /// in small chunks is not rescanned from the start each time.
    scanned: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser that refuses events (and lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            event: None,
            data: String::new(),
            has_data: false,
            max_event_bytes,
        }
    }

    /// Consumes a chunk and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, ModelError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.buf.len() {
            let end_len = match self.buf[i] {
                b'\n' => 1,
                // A CR at the end of the buffer may be the first half of a CRLF.
                b'\r' if i + 1 == self.buf.len() => break,
                b'\r' if self.buf[i + 1] == b'\n' => 2,
                b'\r' => 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let line = std::str::from_utf8(&self.buf[start..i])
                .map_err(|_| ModelError::Protocol("the event stream is not UTF-8".into()))?
                .to_owned();
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
            i += end_len;
            start = i;
        }
        self.buf.drain(..start);
        self.scanned = i - start;
        if self.buf.len() + self.data.len() > self.max_event_bytes {
            return Err(self.too_large());
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, ModelError> {
        if line.is_empty() {
            let name = self.event.take();
            if !self.has_data {
                return Ok(None);
            }
            self.has_data = false;
            return Ok(Some(SseEvent {
                event: name.unwrap_or_else(|| "message".to_owned()),
                data: std::mem::take(&mut self.data),
            }));
        }
        if line.starts_with(':') {
            return Ok(None); // a comment, e.g. a keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max_event_bytes {
                    return Err(self.too_large());
                }
            }
            _ => {} // `id`, `retry` and unknown fields mean nothing to us
        }
        Ok(None)
    }

    fn too_large(&self) -> ModelError {
        let max = self.max_event_bytes;
        let limit = if max >= 1 << 20 {
            format!("{} MiB", max >> 20)
        } else {
            format!("{max} bytes")
        };
        ModelError::Protocol(format!("an event in the stream is larger than {limit}"))
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
