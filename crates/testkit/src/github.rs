//! A fake GitHub on loopback: the OAuth web and device flows, the REST routes
//! Dockhand uses (sign-in, repositories, pull requests, issue comments), git
//! smart HTTP over bare repositories, and signed webhooks, with the real wire
//! shapes (PROTOCOLS.md 1c). The web pages, the API and git share one base
//! URL, so the coordinator is set up with `web_url = api_url = base_url()`.
//!
//! Sign-in is automatic: `/login/oauth/authorize` approves at once as the user
//! named by `login` (the first configured user otherwise) and the device flow
//! approves on the third poll. Every request is recorded whole, secrets
//! included, so a test can search them for leaks; git's pack bodies are the
//! one exception (see [`RecordedRequest::body`]).

mod api;
mod directory;
mod form;
mod git_http;
mod issues;
mod oauth;
mod pulls;
mod repos;
mod webhooks;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::PoisonError;
use std::time::Duration;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use rand::Rng;
use tokio::task::JoinHandle;

pub use self::webhooks::send_webhook;
pub use self::webhooks::webhook_signature;
use crate::FakeError;
use directory::Directory;
use directory::Org;

/// Request bodies above this get 413; OAuth forms are tiny.
const MAX_BODY_BYTES: usize = 1 << 20;
/// At most this many live codes of each kind, and minted tokens, before the
/// fake refuses with 503: keeps a runaway client from growing it without bound.
const MAX_GRANTS: usize = 10_000;
/// The recorded requests and device polls keep the latest this many.
const MAX_RECORDED: usize = 10_000;
/// GitHub's web-flow codes live 10 minutes.
const CODE_TTL: Duration = Duration::from_secs(600);

/// What the fake knows and how it listens.
#[derive(Clone, Debug)]
pub struct FakeGitHubOptions {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// User logins; their ids are 1001, 1002, ... in this order. At least one.
    pub users: Vec<String>,
    /// Organizations and the logins of their members (each a known user).
    pub orgs: Vec<(String, Vec<String>)>,
    /// `owner/name` repositories, visible to every user.
    pub repos: Vec<String>,
    /// When set, other client ids are refused; any is accepted otherwise.
    pub client_id: Option<String>,
    /// When set, the code exchange needs it; any is accepted otherwise.
    pub client_secret: Option<String>,
    /// The device flow's `interval`, in seconds.
    pub device_interval: u64,
    /// What `slow_down` adds to the interval, in seconds.
    pub slow_down_increment: u64,
    /// The device code's `expires_in`, in seconds; 0 makes it expire at once.
    pub device_expires_in: u64,
    /// Bare repositories at `DIR/OWNER/NAME.git`, served over git smart HTTP
    /// at `/OWNER/NAME.git` and known to the REST API as `OWNER/NAME`.
    pub repos_dir: Option<PathBuf>,
    /// Serve git to anyone, pushes included, with no credentials: a plain
    /// self-hosted git server rather than GitHub.
    pub anonymous_git: bool,
    /// Logins with read access only to every repository: their pushes are
    /// refused, and the collaborator permission API answers `read` for them.
    pub read_only: Vec<String>,
}

impl Default for FakeGitHubOptions {
    fn default() -> Self {
        FakeGitHubOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: Vec::new(),
            orgs: Vec::new(),
            repos: Vec::new(),
            client_id: None,
            client_secret: None,
            device_interval: 5,
            slow_down_increment: 5,
            device_expires_in: 900,
            repos_dir: None,
            anonymous_git: false,
            read_only: Vec::new(),
        }
    }
}

/// One request as it arrived, nothing redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded as UTF-8 (lossily); empty for git's
    /// `git-upload-pack` and `git-receive-pack` posts, which are streamed
    /// through unbuffered.
    pub body: String,
}

impl RecordedRequest {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running fake; stops when dropped.
pub struct FakeGitHub {
    addr: SocketAddr,
    state: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeGitHub {
    /// Checks the options, binds and serves.
    pub async fn start(options: FakeGitHubOptions) -> Result<Self, FakeError> {
        let directory = Directory::new(&options.users, &options.orgs, &options.repos)?;
        let (listener, addr) = crate::listen::bind(options.listen).await?;
        let state = Arc::new(Shared {
            directory,
            base_url: format!("http://{addr}"),
            client_id: options.client_id,
            client_secret: options.client_secret,
            device_interval: options.device_interval,
            slow_down_increment: options.slow_down_increment,
            device_ttl: Duration::from_secs(options.device_expires_in),
            repos_dir: options.repos_dir,
            anonymous_git: options.anonymous_git,
            read_only: options.read_only,
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new()
            .route("/login/oauth/authorize", get(oauth::authorize))
            .route("/login/oauth/access_token", post(oauth::access_token))
            .route("/login/device/code", post(oauth::device_code))
            .route("/login/device", get(oauth::device_page))
            .route("/user", get(api::user))
            .route("/user/orgs", get(api::user_orgs))
            .route("/user/repos", get(repos::user_repos))
            .route("/user/memberships/orgs/{org}", get(api::membership))
            .route("/orgs/{org}/members/{username}", get(api::org_member))
            .route("/repos/{owner}/{repo}", get(repos::get_repo))
            .route(
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                get(repos::permission),
            )
            .route(
                "/repos/{owner}/{repo}/pulls",
                get(pulls::list).post(pulls::create),
            )
            .route(
                "/repos/{owner}/{repo}/pulls/{number}",
                get(pulls::get_one).patch(pulls::update),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}",
                get(issues::get_issue),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                get(issues::list_comments).post(issues::create_comment),
            )
            .route("/_fake/state", get(issues::fake_state))
            // `{repo}` is `NAME.git`; matchit cannot split a segment, so the
            // handlers strip the suffix.
            .route("/{owner}/{repo}/info/refs", get(git_http::info_refs))
            .route(
                "/{owner}/{repo}/git-upload-pack",
                post(git_http::upload_pack),
            )
            .route(
                "/{owner}/{repo}/git-receive-pack",
                post(git_http::receive_pack),
            )
            .fallback(api::not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake GitHub server stopped");
            }
        });
        Ok(FakeGitHub {
            addr,
            state,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`: both the web and the API base URL.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every access token minted, in order, revoked ones included.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().issued.clone()
    }

    /// The recorded requests (the latest 10,000), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.iter().cloned().collect()
    }

    /// Mints a token for `login` with `scopes`, as if they had signed in; `None`
    /// for an unknown login or when the cap is reached.
    pub fn issue_token(&self, login: &str, scopes: &[&str]) -> Option<String> {
        let user = self.state.directory.user_index(login)?;
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.state.lock().mint(user, scopes)
    }

    /// Ends `login`'s membership of `org`, as an org owner removing them would.
    /// Returns whether they were a member.
    pub fn remove_org_member(&self, org: &str, login: &str) -> bool {
        let (Some(org), Some(user)) = (
            self.state.directory.org(org),
            self.state.directory.user_index(login),
        ) else {
            return false;
        };
        org.members.contains(&user) && self.state.lock().left.insert((org.id, user))
    }

    /// Makes later API calls with `token` get 401. Returns whether it was live.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.state.lock().tokens.remove(token).is_some()
    }

    /// When each device-flow poll arrived, whatever its answer, so a test can
    /// check the client kept to the interval.
    pub fn device_polls(&self) -> Vec<Instant> {
        self.state.lock().device_polls.iter().copied().collect()
    }

    /// Where the bare repositories live, when configured.
    pub fn repos_dir(&self) -> Option<&Path> {
        self.state.repos_dir.as_deref()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    directory: Directory,
    base_url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    device_interval: u64,
    slow_down_increment: u64,
    device_ttl: Duration,
    repos_dir: Option<PathBuf>,
    anonymous_git: bool,
    read_only: Vec<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Web-flow codes not yet exchanged.
    codes: HashMap<String, CodeGrant>,
    /// Device codes not yet approved (expired ones stay, to say so).
    devices: HashMap<String, DeviceGrant>,
    /// Live access tokens.
    tokens: HashMap<String, TokenGrant>,
    issued: Vec<String>,
    requests: VecDeque<RecordedRequest>,
    device_polls: VecDeque<Instant>,
    /// For `x-github-request-id`.
    counter: u64,
    /// Issues and pull requests of every repository, in creation order.
    issues: Vec<issues::Issue>,
    /// Issue and pull request comments, in creation order.
    comments: Vec<issues::Comment>,
    /// The last issue or pull request number per lowercased `owner/name`.
    numbers: HashMap<String, u64>,
    /// Ids of the repositories found in `repos_dir`, by lowercased
    /// `owner/name`, assigned on first sight so they stay stable.
    repo_ids: HashMap<String, u64>,
    /// Comment ids handed out, webhook payloads' included.
    comment_ids: u64,
    /// `(org id, user)` memberships ended by [`FakeGitHub::remove_org_member`].
    left: std::collections::HashSet<(u64, usize)>,
}

struct CodeGrant {
    user: usize,
    redirect_uri: String,
    scopes: Vec<String>,
    expires: Instant,
}

struct DeviceGrant {
    client_id: Option<String>,
    scopes: Vec<String>,
    polls: u32,
    interval: u64,
    expires: Instant,
}

struct TokenGrant {
    user: usize,
    scopes: Vec<String>,
    /// API calls made with it, for the rate-limit headers.
    used: u64,
}

impl Shared {
    /// Whether user `user` is (still) a member of `org`.
    fn is_member(&self, org: &Org, user: usize) -> bool {
        org.members.contains(&user) && !self.lock().left.contains(&(org.id, user))
    }

    /// Whether `login` may only read repositories.
    fn is_read_only(&self, login: &str) -> bool {
        self.read_only.iter().any(|l| l.eq_ignore_ascii_case(login))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// A new `gho_fake_` token for `user`, or `None` when the cap is reached.
    fn mint(&mut self, user: usize, scopes: Vec<String>) -> Option<String> {
        if self.issued.len() >= MAX_GRANTS {
            return None;
        }
        let token = format!("gho_fake_{}", random_alnum(36));
        self.issued.push(token.clone());
        self.tokens.insert(
            token.clone(),
            TokenGrant {
                user,
                scopes,
                used: 0,
            },
        );
        Some(token)
    }

    /// Whether another code fits, after dropping expired web-flow codes.
    /// Expired device codes are dropped only under pressure, because they
    /// answer `expired_token` rather than `incorrect_device_code`.
    fn room_for_code(&mut self, now: Instant) -> bool {
        if self.codes.len() + self.devices.len() < MAX_GRANTS {
            return true;
        }
        self.codes.retain(|_, grant| grant.expires > now);
        self.devices.retain(|_, grant| grant.expires > now);
        self.codes.len() + self.devices.len() < MAX_GRANTS
    }

    fn next_request_id(&mut self) -> String {
        self.counter += 1;
        format!(
            "FAKE:{:04X}:{:06X}",
            std::process::id() & 0xFFFF,
            self.counter
        )
    }
}

/// Now in UTC, as GitHub writes times: `2020-01-01T00:00:00Z`.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| api::CREATED_AT.to_owned())
}

/// Scopes as GitHub reads them: space- or comma-separated, deduplicated.
fn parse_scopes(scope: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.split([' ', ',']).filter(|s| !s.is_empty()) {
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

fn random_alnum(len: usize) -> String {
    random_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        len,
    )
}

fn random_hex(len: usize) -> String {
    random_from(b"0123456789abcdef", len)
}

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Records every request whole, then passes it on.
async fn record(State(state): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // Packs can be large and are not where secrets leak: they pass through
    // unbuffered, with their own bound.
    let path = parts.uri.path();
    let streamed = path.ends_with("/git-upload-pack") || path.ends_with("/git-receive-pack");
    let (bytes, body) = if streamed {
        (axum::body::Bytes::new(), body)
    } else {
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => (bytes.clone(), Body::from(bytes)),
            Err(_) => {
                return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
            }
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    {
        let mut inner = state.lock();
        if inner.requests.len() >= MAX_RECORDED {
            inner.requests.pop_front();
        }
        inner.requests.push_back(recorded);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// 503 when a cap is reached: a plain refusal the client cannot mistake for
/// a GitHub answer.
fn over_capacity() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the fake GitHub holds too many codes or tokens",
    )
        .into_response()
}

#[cfg(test)]
#[path = "github_tests.rs"]
mod tests;
