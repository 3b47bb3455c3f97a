//! Sign-in with GitHub: the web flow's authorize URL and code exchange, and the
//! device flow. GitHub's token endpoint answers errors with HTTP 200 and an
//! `error` field, so every reply is checked for one.

use serde::Deserialize;
use serde::Serialize;

use super::GitHubClient;
use super::GitHubError;
use super::enc;
use super::transport;
use super::without_url;

/// Scopes asked for: the profile, organisation membership, and private repositories.
pub const SCOPES: &str = "read:user read:org repo";

/// The device flow's `grant_type`.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An access token GitHub granted.
#[derive(Clone)]
pub struct Grant {
    /// The token.
    pub token: String,
    /// Granted scopes, comma-separated.
    pub scopes: String,
}

/// A device-flow code to show the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceCode {
    /// Secret handle for polling.
    pub device_code: String,
    /// What the user types.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// One device-flow poll.
pub enum DevicePoll {
    /// Not yet approved.
    Pending,
    /// Polling too fast: wait this many seconds between polls from now on.
    SlowDown(u64),
    /// The code expired; start again.
    Expired,
    /// Approved.
    Granted(Grant),
}

/// The form exchanging a web-flow code for a token.
#[derive(Serialize)]
struct CodeExchange<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    code: &'a str,
    redirect_uri: &'a str,
}

/// The form starting the device flow.
#[derive(Serialize)]
struct DeviceCodeRequest<'a> {
    client_id: &'a str,
    scope: &'a str,
}

/// The form polling the device flow.
#[derive(Serialize)]
struct DevicePollRequest<'a> {
    client_id: &'a str,
    device_code: &'a str,
    grant_type: &'a str,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    interval: Option<u64>,
}

impl GitHubClient {
    /// Where to send a browser to sign in.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, login: Option<&str>) -> String {
        let mut url = format!(
            "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={}&state={}",
            self.web_url,
            enc(&self.client_id),
            enc(redirect_uri),
            enc(SCOPES),
            enc(state)
        );
        if let Some(l) = login {
            url.push_str(&format!("&login={}", enc(l)));
        }
        url
    }

    async fn token_request(
        &self,
        what: &str,
        form: &impl Serialize,
    ) -> Result<TokenReply, GitHubError> {
        let resp = self
            .http
            .post(format!("{}/login/oauth/access_token", self.web_url))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        if !status.is_success() {
            return Err(GitHubError::Refused {
                what: what.to_owned(),
                code: status.as_u16().to_string(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| transport(what, e))
    }

    /// Exchanges a web-flow `code` for a token.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Grant, GitHubError> {
        let what = "the sign-in code";
        let form = CodeExchange {
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            code,
            redirect_uri,
        };
        let reply = self.token_request(what, &form).await?;
        grant(what, reply)
    }

    /// Starts the device flow.
    pub async fn device_code(&self) -> Result<DeviceCode, GitHubError> {
        let what = "a device code";
        let form = DeviceCodeRequest {
            client_id: &self.client_id,
            scope: SCOPES,
        };
        let resp = self
            .http
            .post(format!("{}/login/device/code", self.web_url))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(what, without_url(e)))?;
        if let Ok(TokenReply {
            error: Some(code),
            error_description,
            ..
        }) = serde_json::from_slice(&body)
        {
            return Err(GitHubError::Refused {
                what: what.into(),
                code,
                message: error_description.unwrap_or_default(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| transport(what, e))
    }

    /// Polls the device flow once.
    pub async fn poll_device(&self, device_code: &str) -> Result<DevicePoll, GitHubError> {
        let what = "the device sign-in";
        let form = DevicePollRequest {
            client_id: &self.client_id,
            device_code,
            grant_type: DEVICE_GRANT,
        };
        let reply = self.token_request(what, &form).await?;
        match reply.error.as_deref() {
            Some("authorization_pending") => Ok(DevicePoll::Pending),
            Some("slow_down") => Ok(DevicePoll::SlowDown(reply.interval.unwrap_or(10))),
            Some("expired_token") => Ok(DevicePoll::Expired),
            _ => grant(what, reply).map(DevicePoll::Granted),
        }
    }
}

fn grant(what: &str, reply: TokenReply) -> Result<Grant, GitHubError> {
    match (reply.access_token, reply.error) {
        (Some(token), None) => Ok(Grant {
            token,
            scopes: reply.scope.unwrap_or_default(),
        }),
        (_, Some(code)) => Err(GitHubError::Refused {
            what: what.into(),
            code,
            message: reply.error_description.unwrap_or_default(),
        }),
        (None, None) => Err(transport(what, "no token in GitHub's reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_urls_carry_state_scopes_and_login() {
        let c = GitHubClient::new(
            "https://gh.example/",
            "https://api.gh.example",
            "cid",
            "sec",
        )
        .unwrap();
        let url = c.authorize_url(
            "https://dock.example/auth/github/callback",
            "st&1",
            Some("alice"),
        );
        assert_eq!(
            url,
            "https://gh.example/login/oauth/authorize?client_id=cid&redirect_uri=https%3A%2F%2Fdock.example%2Fauth%2Fgithub%2Fcallback&scope=read%3Auser%20read%3Aorg%20repo&state=st%261&login=alice"
        );
    }
}
