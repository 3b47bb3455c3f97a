//! The proxy request head: read with a size and time bound, parsed by hand,
//! and for plain HTTP rewritten into the request the origin gets.

use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;

use crate::EgressError;
use crate::Result;
use crate::rule::normalize_host;
use crate::rule::parse_port;
use crate::rule::split_host_port;

/// The largest request head read.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A request head and whatever the client sent after it in the same reads.
pub(crate) struct Received {
    /// Through the blank line that ends it.
    pub head: Vec<u8>,
    /// Pipelined bytes (a TLS ClientHello, a request body), to forward.
    pub rest: Vec<u8>,
}

/// What the client asked for; `host` is normalised, so it is what the policy sees.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub host: String,
    pub port: u16,
    pub kind: Kind,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A tunnel.
    Connect,
    /// A plain HTTP request, to send on in origin-form.
    Plain {
        method: String,
        /// Origin-form: the path and query, never empty.
        path: String,
        version: String,
        /// The header lines as sent (name, raw line without CRLF).
        headers: Vec<(String, Vec<u8>)>,
    },
}

fn bad(why: impl Into<String>) -> EgressError {
    EgressError::BadRequest(why.into())
}

/// Reads up to the blank line ending the head. `None` when the client closed
/// without sending anything.
pub(crate) async fn read<S>(client: &mut S) -> Result<Option<Received>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    let reading = async {
        loop {
            if filled == buf.len() {
                return Err(bad(format!(
                    "the request head is over {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            let n = client
                .read(&mut buf[filled..])
                .await
                .map_err(EgressError::Closed)?;
            if n == 0 {
                return match filled {
                    0 => Ok(None),
                    _ => Err(bad("the connection ended inside the request head")),
                };
            }
            // The terminator may straddle two reads.
            let from = filled.saturating_sub(3);
            filled += n;
            if let Some(at) = find(&buf[from..filled], b"\r\n\r\n") {
                let end = from + at + 4;
                return Ok(Some(Received {
                    head: buf[..end].to_vec(),
                    rest: buf[end..filled].to_vec(),
                }));
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, reading)
        .await
        .map_err(|_| {
            bad(format!(
                "no complete request head in {} s",
                HEAD_TIMEOUT.as_secs()
            ))
        })?
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a head as [`read`] returns it.
pub(crate) fn parse(head: &[u8]) -> Result<Request> {
    let head = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let first = lines.next().unwrap_or_default();
    let line = std::str::from_utf8(first)
        .ok()
        .filter(|l| l.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        .ok_or_else(|| bad("the request line is not printable ASCII"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the request line is not `METHOD TARGET VERSION`"));
    };
    if !is_token(method) {
        return Err(bad("bad method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad("only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err(bad("folded header lines are not accepted"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("a header line has no colon"))?;
        let name = std::str::from_utf8(&line[..colon])
            .ok()
            .filter(|name| is_token(name))
            .ok_or_else(|| bad("bad header name"))?;
        if line[colon..].iter().any(|&b| b == b'\r' || b == 0) {
            return Err(bad("a header value holds CR or NUL"));
        }
        headers.push((name.to_owned(), line.to_vec()));
    }

    if method == "CONNECT" {
        let (host, port) = authority(target, None)?;
        return Ok(Request {
            host,
            port,
            kind: Kind::Connect,
        });
    }
    let scheme = |s: &str| {
        target
            .get(..s.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(s))
    };
    if scheme("https://") {
        return Err(bad("https:// goes through CONNECT, not a plain request"));
    }
    if !scheme("http://") {
        return Err(bad("a plain proxy request needs an absolute http:// URI"));
    }
    let rest = &target["http://".len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, port) = authority(&rest[..end], Some(80))?;
    // The fragment is the client's own business.
    let path = rest[end..].split('#').next().unwrap_or_default();
    let path = match path.starts_with('/') {
        true => path.to_owned(),
        false => format!("/{path}"),
    };
    Ok(Request {
        host,
        port,
        kind: Kind::Plain {
            method: method.to_owned(),
            path,
            version: version.to_owned(),
            headers,
        },
    })
}

/// `host[:port]` with the host normalised; the port is required unless a default is given.
fn authority(text: &str, default_port: Option<u16>) -> Result<(String, u16)> {
    if text.contains('@') {
        return Err(bad("credentials in the URI are not accepted"));
    }
    let (host, port) = split_host_port(text).ok_or_else(|| bad("bad host"))?;
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let host = normalize_host(host).ok_or_else(|| bad("bad host"))?;
    let port = match (port, default_port) {
        (Some(port), _) => parse_port(port).ok_or_else(|| bad("bad port"))?,
        (None, Some(port)) => port,
        (None, None) => return Err(bad("missing port")),
    };
    Ok((host, port))
}

/// The head the origin gets for a plain request: origin-form, `Host` from the
/// URI, no `Proxy-*` or other hop-by-hop headers, and `Connection: close` so
/// that the one checked request is the only one the connection carries.
pub(crate) fn origin_head(request: &Request) -> Vec<u8> {
    let Kind::Plain {
        method,
        path,
        version,
        headers,
    } = &request.kind
    else {
        return Vec::new();
    };
    // Headers the client named in `Connection` are hop-by-hop too.
    let mut hop: Vec<String> = vec!["connection".into(), "keep-alive".into(), "host".into()];
    for (name, line) in headers {
        if name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(&line[name.len() + 1..]);
            hop.extend(value.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
    }
    let host = match request.port {
        80 => request.host.clone(),
        port => format!("{}:{port}", request.host),
    };
    // The Host comes from the URI, which the policy checked: a client's own
    // Host could name another site behind the same address.
    let mut out = format!("{method} {path} {version}\r\nHost: {host}\r\n").into_bytes();
    for (name, line) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("proxy-") || hop.contains(&lower) {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &str) -> Request {
        parse(head.as_bytes()).unwrap()
    }

    fn refused(head: &str) -> String {
        match parse(head.as_bytes()) {
            Err(EgressError::BadRequest(why)) => why,
            other => panic!("{head:?} gave {other:?}"),
        }
    }

    #[test]
    fn connect_takes_an_authority_with_a_port() {
        let r = request("CONNECT Crates.IO.:443 HTTP/1.1\r\nHost: crates.io:443\r\n\r\n");
        assert_eq!(
            (r.host.as_str(), r.port, r.kind),
            ("crates.io", 443, Kind::Connect)
        );
        let r = request("CONNECT [0::1]:8443 HTTP/1.0\r\n\r\n");
        assert_eq!((r.host.as_str(), r.port), ("[::1]", 8443));
        assert_eq!(
            refused("CONNECT crates.io HTTP/1.1\r\n\r\n"),
            "missing port"
        );
        assert_eq!(refused("CONNECT :443 HTTP/1.1\r\n\r\n"), "missing host");
        assert_eq!(refused("CONNECT a.test:99999 HTTP/1.1\r\n\r\n"), "bad port");
    }

    #[test]
    fn plain_requests_become_origin_form() {
        let r = request(
            "GET http://Allowed.test:8080/x?y#frag HTTP/1.1\r\nHost: evil.example\r\n\
             Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n\
             Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n\
             Accept: */*\r\n\r\n",
        );
        assert_eq!((r.host.as_str(), r.port), ("allowed.test", 8080));
        let head = String::from_utf8(origin_head(&r)).unwrap();
        assert_eq!(
            head,
            "GET /x?y HTTP/1.1\r\nHost: allowed.test:8080\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n"
        );
        let r = request("POST http://a.test?q HTTP/1.0\r\n\r\n");
        assert_eq!(r.port, 80);
        let head = String::from_utf8(origin_head(&r)).unwrap();
        assert_eq!(
            head,
            "POST /?q HTTP/1.0\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        for head in [
            "\r\n\r\n",
            "GET\r\n\r\n",
            "GET  http://a.test/ HTTP/1.1\r\n\r\n",
            "GET http://a.test/ HTTP/1.1 extra\r\n\r\n",
            "GET http://a.test/ HTTP/2\r\n\r\n",
            "GET http://a.test/ SPDY/3\r\n\r\n",
            "G(T http://a.test/ HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n",
            "GET https://a.test/ HTTP/1.1\r\n\r\n",
            "GET ftp://a.test/ HTTP/1.1\r\n\r\n",
            "GET http:///x HTTP/1.1\r\n\r\n",
            "GET http://user@a.test/ HTTP/1.1\r\n\r\n",
            "GET http://a.test:x/ HTTP/1.1\r\n\r\n",
            "GET http://a b/ HTTP/1.1\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nNo colon\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nBad Name: b\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\nA: b\rc\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\n\nA: b\r\n\r\n",
            "GET http://\u{e9}.test/ HTTP/1.1\r\n\r\n",
        ] {
            refused(head);
        }
    }
}
