//! `dockhand login`, `logout` and `token`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use dockhand_protocol::CreateTokenParams;
use dockhand_protocol::CreatedToken;
use dockhand_protocol::DevicePollParams;
use dockhand_protocol::DevicePollResponse;
use dockhand_protocol::DeviceStart;
use dockhand_protocol::ErrorResponse;
use dockhand_protocol::LogoutParams;
use dockhand_protocol::TokenList;

use crate::connect::Target;
use crate::credentials;

/// Signs in with GitHub's device flow, through the server.
pub async fn login(target: &Target) -> Result<ExitCode> {
    let server = crate::connect::server_url(target)?;
    let http = reqwest::Client::builder()
        .user_agent(concat!("dockhand-cli/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let start = http
        .post(format!("{server}/auth/device/start"))
        .send()
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    if !start.status().is_success() {
        bail!("{server} cannot start a sign-in: {}", refusal(start).await);
    }
    let start: DeviceStart = start.json().await.context("starting a sign-in")?;
    println!(
        "To sign in, open {} and enter the code {}",
        start.verification_uri, start.user_code
    );
    let mut interval = start.interval;
    let deadline = credentials::now() + start.expires_in;
    let poll = DevicePollParams {
        handle: start.handle,
    };
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let resp = http
            .post(format!("{server}/auth/device/poll"))
            .json(&poll)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("sign-in refused: {}", refusal(resp).await);
        }
        match resp.json().await.context("polling the sign-in")? {
            DevicePollResponse::Pending => {}
            DevicePollResponse::SlowDown { interval: next } => interval = next,
            DevicePollResponse::Ok { login, tokens } => {
                let session = credentials::Session {
                    access_token: tokens.access_token,
                    refresh_token: tokens.refresh_token,
                    expires_at: credentials::now() + tokens.expires_in,
                    login: login.clone(),
                };
                credentials::put(&server, session)?;
                println!("Signed in to {server} as {login}.");
                return Ok(ExitCode::SUCCESS);
            }
            DevicePollResponse::Expired => bail!("the code expired; run dockhand login again"),
        }
        if credentials::now() > deadline {
            bail!("the code expired; run dockhand login again");
        }
    }
}

/// The server's reason for an error answer.
async fn refusal(resp: reqwest::Response) -> String {
    match resp.json::<ErrorResponse>().await {
        Ok(e) => e.error.message,
        Err(_) => "no reason given".to_owned(),
    }
}

/// Revokes the stored session and forgets it.
pub async fn logout(target: &Target) -> Result<ExitCode> {
    let server = crate::connect::server_url(target)?;
    let Some(session) = credentials::remove(&server)? else {
        println!("not signed in to {server}");
        return Ok(ExitCode::SUCCESS);
    };
    let _ = reqwest::Client::new()
        .post(format!("{server}/auth/logout"))
        .json(&LogoutParams {
            refresh_token: Some(session.refresh_token),
        })
        .send()
        .await;
    println!("signed out of {server}");
    Ok(ExitCode::SUCCESS)
}

pub enum TokenAction {
    Create(String),
    List,
    Revoke(i64),
}

pub async fn token(target: &Target, action: TokenAction) -> Result<ExitCode> {
    let conn = crate::connect::connect(target).await?;
    let c = &conn.client;
    match action {
        TokenAction::Create(name) => {
            let req = c
                .http()
                .post(format!("{}/api/v1/tokens", c.base()))
                .json(&CreateTokenParams { name });
            let t: CreatedToken = c.send("creating a token", req).await?;
            println!("{}", t.token);
            eprintln!(
                "This is the only time the token is shown. Use it as DOCKHAND_TOKEN or --token."
            );
        }
        TokenAction::List => {
            let req = c.http().get(format!("{}/api/v1/tokens", c.base()));
            let list: TokenList = c.send("listing tokens", req).await?;
            println!("{:<6} {:<24} {:<26} LAST USED", "ID", "NAME", "CREATED");
            for t in list.tokens {
                println!(
                    "{:<6} {:<24} {:<26} {}",
                    t.id,
                    t.name,
                    t.created_at,
                    t.last_used_at.as_deref().unwrap_or("never")
                );
            }
        }
        TokenAction::Revoke(id) => {
            let resp = c
                .http()
                .delete(format!("{}/api/v1/tokens/{id}", c.base()))
                .bearer_auth(c.bearer().await?)
                .send()
                .await?;
            if resp.status().as_u16() != 204 {
                bail!("revoking token {id}: the server answered {}", resp.status());
            }
            println!("revoked token {id}");
        }
    }
    conn.close().await;
    Ok(ExitCode::SUCCESS)
}
