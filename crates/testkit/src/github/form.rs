//! `application/x-www-form-urlencoded`, both ways: GitHub takes OAuth
//! parameters in that form and answers in it without `Accept: application/json`.
//! Hand-rolled because it is a few lines and keeps the crate's deps lean.

/// Decoded `key=value` pairs, in order; a key without `=` gets an empty value.
pub(super) fn parse(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The first value of `key`, if any.
pub(super) fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Encodes pairs, in order.
pub(super) fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_component(key.as_ref(), &mut out);
        out.push('=');
        encode_component(value.as_ref(), &mut out);
    }
    out
}

/// `url` with the encoded pairs added to its query, keeping any query it has.
pub(super) fn append_query<K: AsRef<str>, V: AsRef<str>>(url: &str, pairs: &[(K, V)]) -> String {
    let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
    let separator = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{separator}{}", encode(pairs));
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    // A stray `%` stays as it is, as browsers do.
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode_component(input: &str, out: &mut String) {
    for byte in input.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_appends() {
        let pairs = parse("a=1&scope=repo+read%3Aorg&empty&x=%zz");
        assert_eq!(get(&pairs, "scope"), Some("repo read:org"));
        assert_eq!(get(&pairs, "empty"), Some(""));
        assert_eq!(get(&pairs, "x"), Some("%zz"));
        assert_eq!(encode(&[("s", "a b,c/d")]), "s=a+b%2Cc%2Fd");
        assert_eq!(
            append_query("http://h/cb", &[("code", "1")]),
            "http://h/cb?code=1"
        );
        assert_eq!(
            append_query("http://h/cb?x=y#frag", &[("code", "1")]),
            "http://h/cb?x=y&code=1#frag"
        );
        assert_eq!(
            append_query("http://h/cb?", &[("code", "1")]),
            "http://h/cb?code=1"
        );
    }
}
