//! Bounded capture of command output, and capping what the model sees.

use std::collections::VecDeque;

/// Cuts `text` to at most `cap` characters by keeping its head and tail, with a
/// note in the middle saying how much was cut, so the model knows.
pub fn cap_text(text: &str, cap: usize) -> String {
    let total = text.chars().count();
    if total <= cap {
        return text.to_owned();
    }
    let keep = cap.saturating_sub(120) / 2;
    let head: String = text.chars().take(keep).collect();
    let tail: String = {
        let mut t: Vec<char> = text.chars().rev().take(keep).collect();
        t.reverse();
        t.into_iter().collect()
    };
    let cut = total - 2 * keep;
    format!(
        "{head}\n<response clipped: {cut} of {total} characters cut here; use head, tail, grep or a view_range to see them>\n{tail}"
    )
}

/// Keeps the first `head_cap` and the last `tail_cap` bytes of a stream and
/// counts the rest, so a command that prints gigabytes costs a bounded buffer.
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl Capture {
    /// A capture keeping `head_cap` + `tail_cap` bytes.
    pub fn new(head_cap: usize, tail_cap: usize) -> Self {
        Capture {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap,
            total: 0,
        }
    }

    /// Adds bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap.saturating_sub(self.head.len());
        let take = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Bytes seen in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The captured text (lossy UTF-8), with a note where bytes were dropped.
    pub fn text(&self) -> String {
        let kept = self.head.len() as u64 + self.tail.len() as u64;
        let head = String::from_utf8_lossy(&self.head);
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        if kept == self.total {
            format!("{head}{tail}")
        } else {
            let cut = self.total - kept;
            format!("{head}\n<response clipped: {cut} bytes of output cut here>\n{tail}")
        }
    }
}

/// Decodes a byte stream as UTF-8 chunk by chunk, carrying a character split
/// across chunks over to the next one.
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// Decodes what can be decoded; invalid bytes become U+FFFD.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid_up_to);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        text
    }

    /// Whatever is left, lossily.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_text_keeps_head_and_tail_and_says_what_was_cut() {
        let text: String = (0..10_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let out = cap_text(&text, 1_000);
        assert!(out.chars().count() <= 1_100);
        assert!(out.starts_with("abc"));
        assert!(out.ends_with(&text[text.len() - 100..]));
        assert!(out.contains("characters cut here"));
        assert_eq!(cap_text("short", 1_000), "short");
    }

    #[test]
    fn capture_is_bounded_and_marks_the_cut() {
        let mut c = Capture::new(10, 10);
        for _ in 0..1000 {
            c.push(b"0123456789");
        }
        c.push(b"END");
        assert_eq!(c.total(), 10_003);
        let t = c.text();
        assert!(t.starts_with("0123456789\n<response clipped: 9983 bytes"));
        assert!(t.ends_with("3456789END"));
        let mut small = Capture::new(10, 10);
        small.push(b"hello");
        assert_eq!(small.text(), "hello");
    }

    #[test]
    fn utf8_carry_joins_split_characters() {
        let bytes = "héllo wörld".as_bytes();
        let mut carry = Utf8Carry::default();
        let mut out = String::new();
        for b in bytes {
            out.push_str(&carry.decode(std::slice::from_ref(b)));
        }
        out.push_str(&carry.finish());
        assert_eq!(out, "héllo wörld");
        assert_eq!(Utf8Carry::default().decode(&[0xff, b'a']), "\u{fffd}a");
    }
}
