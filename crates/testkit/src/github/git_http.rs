//! Git smart HTTP: clone, fetch and push of the bare repositories under
//! `repos_dir`, served by git's own `git http-backend` run as CGI once per
//! request, behind GitHub's token checks, so clients go through the same
//! credential path as against github.com.

use std::io;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Path;
use axum::extract::Request;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::HeaderName;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use bytes::BytesMut;
use futures_util::StreamExt;
use rustix::process::Pid;
use rustix::process::Signal;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::process::ChildStdin;
use tokio::process::ChildStdout;
use tokio::task::JoinHandle;

use super::Shared;
use super::form;
use super::repos::git_command;

/// Pushes and fetch negotiations above this are refused.
const MAX_GIT_BODY: u64 = 512 << 20;
/// The CGI header block is a few lines; more means something is wrong.
const MAX_CGI_HEAD: usize = 64 << 10;
/// How much of `git http-backend`'s stderr is kept for the log.
const MAX_STDERR: u64 = 16 << 10;
const TEXT: &str = "text/plain; charset=UTF-8";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

/// `GET /{owner}/{name}.git/info/refs?service=...`: the ref advertisement.
pub(super) async fn info_refs(
    State(state): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((owner, repo)): Path<(String, String)>,
    request: Request,
) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let service = match form::get(&form::parse(query), "service") {
        Some("git-upload-pack") => Service::UploadPack,
        Some("git-receive-pack") => Service::ReceivePack,
        // GitHub dropped the dumb protocol, which is what no `service` asks for.
        _ => {
            return text(
                StatusCode::FORBIDDEN,
                "Please upgrade your git client.\n\
                 GitHub.com no longer supports git over dumb-http.\n",
            );
        }
    };
    serve(&state, peer, &owner, &repo, service, "/info/refs", request).await
}

/// `POST /{owner}/{name}.git/git-upload-pack`: clone and fetch.
pub(super) async fn upload_pack(
    State(state): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((owner, repo)): Path<(String, String)>,
    request: Request,
) -> Response {
    let path = "/git-upload-pack";
    serve(
        &state,
        peer,
        &owner,
        &repo,
        Service::UploadPack,
        path,
        request,
    )
    .await
}

/// `POST /{owner}/{name}.git/git-receive-pack`: push.
pub(super) async fn receive_pack(
    State(state): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((owner, repo)): Path<(String, String)>,
    request: Request,
) -> Response {
    let path = "/git-receive-pack";
    serve(
        &state,
        peer,
        &owner,
        &repo,
        Service::ReceivePack,
        path,
        request,
    )
    .await
}

/// GitHub's order: credentials, then the repository, then push rights.
async fn serve(
    state: &Shared,
    peer: SocketAddr,
    owner: &str,
    repo: &str,
    service: Service,
    suffix: &str,
    request: Request,
) -> Response {
    let Some(name) = repo.strip_suffix(".git") else {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    };
    let (login, may_push) = match git_credentials(state, request.headers()) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let (Some(root), Some(_)) = (&state.repos_dir, state.bare_path(owner, name)) else {
        return text(StatusCode::NOT_FOUND, "Repository not found.\n");
    };
    if service == Service::ReceivePack && !may_push {
        // Git shows a text/plain body as `remote: ...` lines.
        let message = format!("Permission to {owner}/{name}.git denied to {login}.\n");
        return text(StatusCode::FORBIDDEN, &message);
    }
    let cgi = Cgi {
        root: root.to_string_lossy().into_owned(),
        path_info: format!("/{owner}/{name}.git{suffix}"),
        login,
        peer,
    };
    match run_backend(cgi, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "git http-backend failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git http-backend failed\n",
            )
        }
    }
}

/// The caller's login and whether the token may push (`repo` scope), from
/// HTTP Basic with the token as password (or as user, with no password), or
/// from a bearer token. The refusal is boxed because a `Response` is large.
fn git_credentials(state: &Shared, headers: &HeaderMap) -> Result<(String, bool), Box<Response>> {
    let unauthorized = |message: &str| {
        let mut response = text(StatusCode::UNAUTHORIZED, message);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"GitHub\""),
        );
        Box::new(response)
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        if state.anonymous_git {
            return Ok(("anonymous".to_owned(), true));
        }
        return Err(unauthorized("Authentication required.\n"));
    };
    let token = value.split_once(' ').and_then(|(scheme, rest)| {
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            Some(if password.is_empty() { user } else { password }.to_owned())
        } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            Some(rest.to_owned())
        } else {
            None
        }
    });
    let inner = state.lock();
    let Some(grant) = token.and_then(|t| inner.tokens.get(&t)) else {
        return Err(unauthorized(
            "Invalid username or token. Password authentication is not supported for Git operations.\n",
        ));
    };
    let login = state.directory.users[grant.user].login.clone();
    let may_push = grant.scopes.iter().any(|s| s == "repo") && !state.is_read_only(&login);
    Ok((login, may_push))
}

/// What `git http-backend` is told about the request beyond its headers.
struct Cgi {
    root: String,
    path_info: String,
    login: String,
    peer: SocketAddr,
}

/// Runs `git http-backend` for one request: the body goes to its stdin while
/// its CGI header block is read, then its stdout streams back as the body.
async fn run_backend(cgi: Cgi, request: Request) -> io::Result<Response> {
    let (parts, body) = request.into_parts();
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_length = header(header::CONTENT_LENGTH);
    if content_length
        .as_deref()
        .and_then(|l| l.parse::<u64>().ok())
        .is_some_and(|l| l > MAX_GIT_BODY)
    {
        return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "Request too large.\n"));
    }
    let mut command = git_command();
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &cgi.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_COUNT", "2")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        // The repositories may belong to another user, in a container.
        .env("GIT_CONFIG_KEY_1", "safe.directory")
        .env("GIT_CONFIG_VALUE_1", "*")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", &cgi.path_info)
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REMOTE_USER", &cgi.login)
        .env("REMOTE_ADDR", cgi.peer.ip().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so killing it ends the git processes it starts too.
        .process_group(0);
    // Without CONTENT_LENGTH (a chunked body) http-backend reads to EOF.
    let passed = [
        ("CONTENT_TYPE", header(header::CONTENT_TYPE)),
        ("CONTENT_LENGTH", content_length),
        // http-backend inflates gzip bodies itself when told.
        ("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING)),
        (
            "HTTP_GIT_PROTOCOL",
            header(HeaderName::from_static("git-protocol")),
        ),
    ];
    for (name, value) in passed {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    let mut child = ChildGroup::new(command.spawn()?);
    let (Some(stdin), Some(mut stdout), Some(stderr)) = (
        child.child.stdin.take(),
        child.child.stdout.take(),
        child.child.stderr.take(),
    ) else {
        return Err(io::Error::other("git http-backend has no pipes"));
    };
    tokio::spawn(async move {
        let mut stderr = stderr;
        let mut log = Vec::new();
        let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut log).await;
        // Drained to the end, so a chatty child never meets a closed pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        let log = String::from_utf8_lossy(&log);
        if !log.trim().is_empty() {
            tracing::debug!(stderr = %log.trim(), "git http-backend");
        }
    });
    let mut pump = Some(AbortOnDrop(tokio::spawn(pump_body(body, stdin))));
    let head = {
        let read = read_cgi_head(&mut stdout);
        tokio::pin!(read);
        loop {
            tokio::select! {
                head = &mut read => break head?,
                pumped = join(&mut pump) => {
                    if pumped.is_err() {
                        // Dropping `child` kills its group.
                        return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "Request too large.\n"));
                    }
                }
            }
        }
    };
    let output = Output {
        child,
        stdout,
        pump,
        first: Some(head.rest),
        done: false,
    };
    let mut response = Response::new(Body::from_stream(futures_util::stream::unfold(
        output,
        Output::next,
    )));
    *response.status_mut() = head.status;
    for (name, value) in head.headers {
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

/// Waits for the pump to end, once; pending forever after, so `select!`
/// keeps waiting on the other branch.
async fn join(pump: &mut Option<AbortOnDrop>) -> Result<(), TooLarge> {
    let Some(handle) = pump.as_mut() else {
        return std::future::pending().await;
    };
    let result = (&mut handle.0).await;
    *pump = None;
    result.unwrap_or(Ok(()))
}

/// The request body was over [`MAX_GIT_BODY`].
struct TooLarge;

/// Copies the request body into the child's stdin, then closes it so the
/// child sees the end. A client that goes away or a child that stops
/// reading just ends the copy; both show up on the response side.
async fn pump_body(body: Body, mut stdin: ChildStdin) -> Result<(), TooLarge> {
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(Ok(chunk)) = stream.next().await {
        total += chunk.len() as u64;
        if total > MAX_GIT_BODY {
            return Err(TooLarge);
        }
        if stdin.write_all(&chunk).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Aborts the task when dropped, so a request's pump ends with it.
struct AbortOnDrop(JoinHandle<Result<(), TooLarge>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct CgiHead {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Body bytes read along with the header block.
    rest: Bytes,
}

/// Reads the CGI header block: `Name: value` lines, `Status: 404 Not Found`
/// among them, up to a blank line.
async fn read_cgi_head(stdout: &mut ChildStdout) -> io::Result<CgiHead> {
    let mut buffer = BytesMut::with_capacity(4096);
    let (end, separator) = loop {
        let crlf = find(&buffer, b"\r\n\r\n").map(|i| (i, 4));
        let lf = find(&buffer, b"\n\n").map(|i| (i, 2));
        if let Some(found) = [crlf, lf].into_iter().flatten().min_by_key(|(i, _)| *i) {
            break found;
        }
        if buffer.len() > MAX_CGI_HEAD {
            return Err(io::Error::other("git http-backend sent no header block"));
        }
        if stdout.read_buf(&mut buffer).await? == 0 {
            return Err(io::Error::other(format!(
                "git http-backend ended before its headers: {:?}",
                String::from_utf8_lossy(&buffer)
            )));
        }
    };
    let block = buffer.split_to(end + separator);
    let mut head = CgiHead {
        status: StatusCode::OK,
        headers: Vec::new(),
        rest: buffer.freeze(),
    };
    for line in String::from_utf8_lossy(&block[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            head.status = code
                .and_then(|c: u16| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            head.headers.push((name, value));
        }
    }
    Ok(head)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `git http-backend` and everything it starts, killed together when
/// dropped unless already reaped.
struct ChildGroup {
    child: Child,
    group: Option<Pid>,
}

impl ChildGroup {
    fn new(child: Child) -> Self {
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .filter(|&id| id > 1)
            .and_then(Pid::from_raw);
        ChildGroup { child, group }
    }

    /// Waits for the child; its group id may be reused after that, so it is
    /// not signalled any more.
    async fn reap(&mut self) {
        let _ = self.child.wait().await;
        self.group = None;
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
    }
}

/// The response body: the child's stdout after the header block. It owns
/// the child, so a client that goes away drops it and kills the child.
struct Output {
    child: ChildGroup,
    stdout: ChildStdout,
    pump: Option<AbortOnDrop>,
    first: Option<Bytes>,
    done: bool,
}

impl Output {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take().filter(|b| !b.is_empty()) {
            return Some((Ok(first), self));
        }
        let mut buffer = BytesMut::with_capacity(64 << 10);
        loop {
            tokio::select! {
                read = self.stdout.read_buf(&mut buffer) => {
                    return match read {
                        Ok(0) => {
                            // Reap the child; its exit status adds nothing
                            // to what it already wrote.
                            self.child.reap().await;
                            None
                        }
                        Ok(_) => Some((Ok(buffer.freeze()), self)),
                        Err(e) => {
                            self.done = true;
                            Some((Err(e), self))
                        }
                    };
                }
                pumped = join(&mut self.pump) => {
                    if pumped.is_err() {
                        self.done = true;
                        let error = io::Error::other("request body too large");
                        return Some((Err(error), self));
                    }
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body.to_owned()).into_response()
}
