//! Cutting text to a bound at a character boundary.

/// At most `max` bytes of `text` from its start, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// At most `max` bytes of `text` from its end, trimmed.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(super::clip("héllo", 2), "h…");
        assert_eq!(super::clip("short", 10), "short");
        assert_eq!(super::tail("abcé", 2), "é");
        assert_eq!(super::tail(" x ", 10), "x");
    }
}
