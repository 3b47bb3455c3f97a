//! The proxy end to end: a client on one side of a duplex stream, real
//! upstream servers on loopback, and a resolver that maps `*.test` names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

use dockhand_egress::DomainRule;
use dockhand_egress::EgressPolicy;
use dockhand_egress::Proxy;
use dockhand_egress::Refusal;
use dockhand_egress::RefusalKind;
use dockhand_net::Resolver;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::io::DuplexStream;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `own.test` is the host's public address, `nowhere.test` has none, and
/// every other `.test` name is loopback.
fn resolver() -> Resolver {
    Resolver::with_lookup(Arc::new(|host: String, _port| {
        Box::pin(async move {
            match host.as_str() {
                "own.test" => Ok(vec!["203.0.113.7".parse().unwrap()]),
                "mapped-own.test" => Ok(vec!["::ffff:203.0.113.7".parse().unwrap()]),
                "nowhere.test" => Ok(Vec::new()),
                _ if host.ends_with(".test") => Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]),
                _ => Err(std::io::Error::other("no such host")),
            }
        })
    }))
}

fn proxy(domains: &[String], allow: &[&str], own: &[&str]) -> Arc<Proxy> {
    let policy = EgressPolicy {
        domains: domains
            .iter()
            .map(|d| DomainRule::parse(d).unwrap())
            .collect(),
        allow_addresses: allow
            .iter()
            .map(|a| dockhand_net::parse_net(a).unwrap())
            .collect(),
    };
    let own = own.iter().map(|a| a.parse().unwrap()).collect();
    Arc::new(Proxy::with(policy, resolver(), own))
}

/// A proxy allowing `domains` with loopback allowed and no own addresses.
fn loopback_proxy(domains: &[String]) -> Arc<Proxy> {
    proxy(domains, &["127.0.0.0/8"], &[])
}

/// Bounds a step, so a broken proxy fails a test instead of hanging it.
async fn within<T>(step: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(10), step)
        .await
        .expect("the proxy stalled")
}

/// Starts serving one client; the handle gives the refusals once the proxy is done.
fn client(proxy: Arc<Proxy>) -> (DuplexStream, JoinHandle<Vec<Refusal>>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let served = tokio::spawn(async move {
        let mut refusals = Vec::new();
        proxy.serve(theirs, &mut |r| refusals.push(r)).await;
        refusals
    });
    (ours, served)
}

/// Sends `request` as a whole client connection (then half-closes, so a
/// tunnel ends too); the answer and the refusals.
async fn exchange(proxy: Arc<Proxy>, request: &[u8]) -> (String, Vec<Refusal>) {
    let (mut stream, served) = client(proxy);
    stream.write_all(request).await.unwrap();
    // The proxy may have answered and gone already.
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    within(stream.read_to_end(&mut answer)).await.unwrap();
    drop(stream);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        within(served).await.unwrap(),
    )
}

/// An echo server on loopback; its port.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    port
}

/// An HTTP server that answers one request `hello` and reports the head it got.
async fn http_server() -> (u16, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let _ = tx.send(String::from_utf8(head).unwrap());
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        stream.write_all(answer.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    (port, rx)
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn connect(authority: &str) -> Vec<u8> {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes()
}

fn assert_refused(answer: &str, refusals: &[Refusal], kind: RefusalKind, text: &str) {
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(answer.contains("Content-Type: text/plain\r\n"), "{answer}");
    assert!(answer.ends_with(&format!("\r\n\r\n{text}\n")), "{answer}");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].kind, kind);
    assert_eq!(refusals[0].to_string(), text);
}

#[tokio::test]
async fn connect_tunnels_bytes_both_ways_including_pipelined_ones() {
    let port = echo_server().await;
    let (mut stream, served) = client(loopback_proxy(&[format!("allowed.test:{port}")]));
    let mut request = connect(&format!("Allowed.Test.:{port}"));
    request.extend_from_slice(b"hello");
    stream.write_all(&request).await.unwrap();
    let expected = b"HTTP/1.1 200 Connection established\r\n\r\nhello";
    let mut got = vec![0u8; expected.len()];
    within(stream.read_exact(&mut got)).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    stream.write_all(b"world").await.unwrap();
    let mut got = [0u8; 5];
    within(stream.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"world");
    stream.shutdown().await.unwrap();
    let mut tail = Vec::new();
    within(stream.read_to_end(&mut tail)).await.unwrap();
    assert!(tail.is_empty());
    drop(stream);
    assert!(within(served).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_name_off_the_list_is_refused_with_403() {
    let p = loopback_proxy(&["allowed.test".into()]);
    let (answer, refusals) = exchange(p.clone(), &connect("evil.test:443")).await;
    let text = "egress refused: evil.test:443 (not on the allowlist)";
    assert_refused(&answer, &refusals, RefusalKind::NotAllowed, text);
    let (answer, refusals) = exchange(p, b"GET http://EVIL.test./ HTTP/1.1\r\n\r\n").await;
    let text = "egress refused: evil.test:80 (not on the allowlist)";
    assert_refused(&answer, &refusals, RefusalKind::NotAllowed, text);
}

#[tokio::test]
async fn address_literals_pass_only_when_listed_literally() {
    let port = echo_server().await;
    let p = loopback_proxy(&["allowed.test".into()]);
    let (answer, refusals) = exchange(p, &connect(&format!("127.0.0.1:{port}"))).await;
    let text = format!("egress refused: 127.0.0.1:{port} (not on the allowlist)");
    assert_refused(&answer, &refusals, RefusalKind::NotAllowed, &text);
    let p = loopback_proxy(&[format!("127.0.0.1:{port}")]);
    let (answer, refusals) = exchange(p, &connect(&format!("127.0.0.1:{port}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(refusals.is_empty());
}

#[tokio::test]
async fn loopback_answers_are_refused_without_allow_addresses() {
    let port = echo_server().await;
    let p = proxy(&[format!("allowed.test:{port}")], &[], &[]);
    let (answer, refusals) = exchange(p, &connect(&format!("allowed.test:{port}"))).await;
    let text =
        format!("egress refused: allowed.test:{port} (resolves to 127.0.0.1, a loopback address)");
    assert_refused(&answer, &refusals, RefusalKind::PrivateAddress, &text);
}

#[tokio::test]
async fn names_without_addresses_are_refused_as_unresolved() {
    let p = loopback_proxy(&["nowhere.test".into()]);
    let (answer, refusals) = exchange(p, &connect("nowhere.test:443")).await;
    let text = "egress refused: nowhere.test:443 (does not resolve: no addresses)";
    assert_refused(&answer, &refusals, RefusalKind::Unresolved, text);
    assert_eq!(refusals[0].kind.label(), "unresolved");
}

#[tokio::test]
async fn the_hosts_own_addresses_are_refused_unless_allowed() {
    let rules = ["own.test".into(), "mapped-own.test".into()];
    let p = proxy(&rules, &["127.0.0.0/8"], &["203.0.113.7"]);
    for (host, addr) in [
        ("own.test", "203.0.113.7"),
        ("mapped-own.test", "::ffff:203.0.113.7"),
    ] {
        let (answer, refusals) = exchange(p.clone(), &connect(&format!("{host}:443"))).await;
        let text = format!(
            "egress refused: {host}:443 (resolves to {addr}, an address of the coordinator's host)"
        );
        assert_refused(&answer, &refusals, RefusalKind::PrivateAddress, &text);
    }
    // Loopback is the host's own too, and allow_addresses lets it through.
    let port = echo_server().await;
    let p = proxy(
        &[format!("allowed.test:{port}")],
        &["127.0.0.0/8"],
        &["127.0.0.1"],
    );
    let (answer, refusals) = exchange(p, &connect(&format!("allowed.test:{port}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(refusals.is_empty());
}

#[tokio::test]
async fn a_bare_name_allows_80_and_443_and_a_port_rule_only_its_port() {
    let port = echo_server().await;
    let bare = loopback_proxy(&["allowed.test".into()]);
    let (answer, refusals) =
        exchange(bare.clone(), &connect(&format!("allowed.test:{port}"))).await;
    let text = format!("egress refused: allowed.test:{port} (not on the allowlist)");
    assert_refused(&answer, &refusals, RefusalKind::NotAllowed, &text);
    // 443 passes the policy; whether anything listens there is not its business.
    let (answer, refusals) = exchange(bare, &connect("allowed.test:443")).await;
    assert!(!answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(refusals.is_empty(), "{refusals:?}");
    let ported = loopback_proxy(&[format!("allowed.test:{port}")]);
    let (answer, refusals) =
        exchange(ported.clone(), &connect(&format!("allowed.test:{port}"))).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(refusals.is_empty());
    let (answer, refusals) = exchange(ported, &connect("allowed.test:443")).await;
    let text = "egress refused: allowed.test:443 (not on the allowlist)";
    assert_refused(&answer, &refusals, RefusalKind::NotAllowed, text);
}

#[tokio::test]
async fn wildcards_allow_subdomains_but_not_the_name_itself() {
    let port = echo_server().await;
    let p = loopback_proxy(&[format!("*.wild.test:{port}")]);
    for host in ["a.wild.test", "a.b.WILD.test"] {
        let (answer, refusals) = exchange(p.clone(), &connect(&format!("{host}:{port}"))).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{host}: {answer}");
        assert!(refusals.is_empty());
    }
    for host in ["wild.test", "notwild.test"] {
        let (answer, refusals) = exchange(p.clone(), &connect(&format!("{host}:{port}"))).await;
        let text = format!("egress refused: {host}:{port} (not on the allowlist)");
        assert_refused(&answer, &refusals, RefusalKind::NotAllowed, &text);
    }
}

#[tokio::test]
async fn plain_http_reaches_the_origin_in_origin_form_without_proxy_headers() {
    let (port, head) = http_server().await;
    let p = loopback_proxy(&[format!("allowed.test:{port}")]);
    let request = format!(
        "GET http://allowed.test:{port}/x?y HTTP/1.1\r\nHost: elsewhere.test\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic c2VjcmV0\r\n\
         Connection: keep-alive\r\nUser-Agent: test/1\r\n\r\n"
    );
    let (answer, refusals) = exchange(p, request.as_bytes()).await;
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    assert!(refusals.is_empty());
    assert_eq!(
        within(head).await.unwrap(),
        format!(
            "GET /x?y HTTP/1.1\r\nHost: allowed.test:{port}\r\nUser-Agent: test/1\r\n\
             Connection: close\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn malformed_heads_get_400_and_no_refusal() {
    let p = loopback_proxy(&["allowed.test".into()]);
    for request in [
        "GET /relative HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
        "GET https://allowed.test/ HTTP/1.1\r\n\r\n",
        "CONNECT allowed.test HTTP/1.1\r\n\r\n",
        "CONNECT allowed.test:99999 HTTP/1.1\r\n\r\n",
        "GET http://allowed.test/ HTTP/2.0\r\n\r\n",
        "nonsense\r\n\r\n",
        "GET http://allowed.test/ HTTP/1.1\r\nHost allowed.test\r\n\r\n",
        "GET http://allowed.test/",
    ] {
        let (answer, refusals) = exchange(p.clone(), request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}: {answer}"
        );
        assert!(answer.contains("\r\n\r\nbad request: "), "{answer}");
        assert!(refusals.is_empty(), "{request:?}");
    }
}

#[tokio::test]
async fn a_head_over_16_kib_gets_400() {
    let p = loopback_proxy(&["allowed.test".into()]);
    let mut request = b"GET http://allowed.test/ HTTP/1.1\r\n".to_vec();
    while request.len() <= 16 * 1024 {
        request.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let (answer, refusals) = exchange(p, &request).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("over 16 KiB"), "{answer}");
    assert!(refusals.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_head_slower_than_30_s_gets_400() {
    let (mut stream, served) = client(loopback_proxy(&["allowed.test".into()]));
    stream
        .write_all(b"GET http://allowed.test/ HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    // With the clock paused, time jumps to the proxy's deadline once all is idle.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(started.elapsed().as_secs(), 30);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("no complete request head in 30 s"),
        "{answer}"
    );
    drop(stream);
    assert!(served.await.unwrap().is_empty());
}

#[tokio::test]
async fn a_connect_failure_is_502_and_no_refusal() {
    let port = closed_port().await;
    let p = loopback_proxy(&[format!("allowed.test:{port}")]);
    let (answer, refusals) = exchange(p, &connect(&format!("allowed.test:{port}"))).await;
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!(
            "cannot connect to allowed.test:{port} (127.0.0.1:{port}: "
        )),
        "{answer}"
    );
    assert!(refusals.is_empty());
}

#[tokio::test]
async fn a_client_that_closes_at_once_gets_nothing() {
    let (answer, refusals) = exchange(loopback_proxy(&[]), b"").await;
    assert_eq!(answer, "");
    assert!(refusals.is_empty());
}
