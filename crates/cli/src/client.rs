//! A small client of the HTTP API.

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::CreateTaskParams;
use dockhand_protocol::ErrorResponse;
use dockhand_protocol::Event;
use dockhand_protocol::EventsResponse;
use dockhand_protocol::FollowUpParams;
use dockhand_protocol::Task;
use dockhand_protocol::TaskListResponse;
use reqwest::Method;
use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: tokio::sync::Mutex<Credential>,
}

/// What the client signs requests with.
enum Credential {
    /// An API token or the admin token.
    Static(String),
    /// A `dockhand login` session, refreshed before it expires.
    Session(crate::credentials::Session),
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Client> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("the server must be an http:// or https:// URL, got {base:?}");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("dockhand-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base,
            token: tokio::sync::Mutex::new(Credential::Static(token.to_owned())),
        })
    }

    /// A client signing in with a stored session.
    pub fn with_session(base: &str, session: crate::credentials::Session) -> Result<Client> {
        let client = Client::new(base, "")?;
        *client
            .token
            .try_lock()
            .map_err(|_| anyhow::anyhow!("credential busy"))? = Credential::Session(session);
        Ok(client)
    }

    /// The bearer token, refreshed first when a session's access token is about to expire.
    pub async fn bearer(&self) -> Result<String> {
        let mut cred = self.token.lock().await;
        let session = match &mut *cred {
            Credential::Static(t) => return Ok(t.clone()),
            Credential::Session(s) => s,
        };
        if session.expires_at > crate::credentials::now() + 60 {
            return Ok(session.access_token.clone());
        }
        let resp = self
            .http
            .post(format!("{}/auth/refresh", self.base))
            .json(&dockhand_protocol::RefreshParams {
                refresh_token: session.refresh_token.clone(),
            })
            .send()
            .await
            .with_context(|| format!("refreshing the session: cannot reach {}", self.base))?;
        if !resp.status().is_success() {
            bail!(
                "the session with {} ended; run dockhand login again",
                self.base
            );
        }
        let pair: dockhand_protocol::TokenPair =
            resp.json().await.context("refreshing the session")?;
        session.access_token = pair.access_token;
        session.refresh_token = pair.refresh_token;
        session.expires_at = crate::credentials::now() + pair.expires_in;
        crate::credentials::put(&self.base, session.clone())?;
        Ok(session.access_token.clone())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn send<T: DeserializeOwned>(&self, what: &str, req: RequestBuilder) -> Result<T> {
        let resp = req
            .bearer_auth(self.bearer().await?)
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach {}", self.base))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{what}: reading the response"))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            bail!("{what}: the server answered {status}: {message}");
        }
        serde_json::from_slice(&body).with_context(|| format!("{what}: unexpected response"))
    }

    pub async fn create_task(&self, p: &CreateTaskParams) -> Result<Task> {
        self.send(
            "creating the task",
            self.req(Method::POST, "/api/v1/tasks").json(p),
        )
        .await
    }

    pub async fn get_task(&self, id: &str) -> Result<Task> {
        self.send(
            &format!("reading task {id}"),
            self.req(Method::GET, &format!("/api/v1/tasks/{id}")),
        )
        .await
    }

    pub async fn list_tasks(&self, status: Option<&str>, limit: usize) -> Result<TaskListResponse> {
        let mut path = format!("/api/v1/tasks?limit={limit}");
        if let Some(s) = status {
            if !s.chars().all(|c| c.is_ascii_lowercase()) {
                bail!("unknown status {s:?}");
            }
            path.push_str(&format!("&status={s}"));
        }
        self.send("listing tasks", self.req(Method::GET, &path))
            .await
    }

    pub async fn events(&self, id: &str, after: u64) -> Result<Vec<Event>> {
        let req = self.req(
            Method::GET,
            &format!("/api/v1/tasks/{id}/events?after={after}"),
        );
        let r: EventsResponse = self
            .send(&format!("reading the events of {id}"), req)
            .await?;
        Ok(r.events)
    }

    pub async fn cancel(&self, id: &str) -> Result<Task> {
        self.send(
            &format!("cancelling {id}"),
            self.req(Method::POST, &format!("/api/v1/tasks/{id}/cancel")),
        )
        .await
    }

    pub async fn gc(&self, dry_run: bool) -> Result<dockhand_protocol::GcReport> {
        let body = dockhand_protocol::GcParams { dry_run };
        self.send(
            "collecting garbage",
            self.req(Method::POST, "/api/v1/gc").json(&body),
        )
        .await
    }

    pub async fn say(&self, id: &str, text: &str) -> Result<Task> {
        let body = FollowUpParams {
            text: text.to_owned(),
        };
        self.send(
            &format!("sending the follow-up to {id}"),
            self.req(Method::POST, &format!("/api/v1/tasks/{id}/messages"))
                .json(&body),
        )
        .await
    }
}
