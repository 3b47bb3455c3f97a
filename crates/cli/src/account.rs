//! `dockhand login`, `logout` and `token`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use anyhow::Result;
use anyhow::bail;
use serde_json::Value;
use serde_json::json;

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
        let body: Value = start.json().await.unwrap_or_default();
        bail!(
            "{server} cannot start a sign-in: {}",
            body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let start: Value = start.json().await?;
    println!(
        "To sign in, open {} and enter the code {}",
        start["verification_uri"].as_str().unwrap_or("?"),
        start["user_code"].as_str().unwrap_or("?")
    );
    let mut interval = start["interval"].as_u64().unwrap_or(5);
    let deadline = credentials::now() + start["expires_in"].as_u64().unwrap_or(900);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let resp = http
            .post(format!("{server}/auth/device/poll"))
            .json(&json!({"handle": start["handle"]}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "sign-in refused: {}",
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("no reason given")
            );
        }
        match body["status"].as_str() {
            Some("pending") => {}
            Some("slow_down") => interval = body["interval"].as_u64().unwrap_or(interval + 5),
            Some("ok") => {
                let t = &body["tokens"];
                let login = body["login"].as_str().unwrap_or("?").to_owned();
                credentials::put(
                    &server,
                    credentials::Session {
                        access_token: t["access_token"].as_str().unwrap_or_default().to_owned(),
                        refresh_token: t["refresh_token"].as_str().unwrap_or_default().to_owned(),
                        expires_at: credentials::now() + t["expires_in"].as_u64().unwrap_or(0),
                        login: login.clone(),
                    },
                )?;
                println!("Signed in to {server} as {login}.");
                return Ok(ExitCode::SUCCESS);
            }
            _ => bail!("the code expired; run dockhand login again"),
        }
        if credentials::now() > deadline {
            bail!("the code expired; run dockhand login again");
        }
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
        .json(&json!({"refresh_token": session.refresh_token}))
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
                .json(&json!({"name": name}));
            let t: Value = c.send("creating a token", req).await?;
            println!("{}", t["token"].as_str().unwrap_or_default());
            eprintln!(
                "This is the only time the token is shown. Use it as DOCKHAND_TOKEN or --token."
            );
        }
        TokenAction::List => {
            let req = c.http().get(format!("{}/api/v1/tokens", c.base()));
            let list: Value = c.send("listing tokens", req).await?;
            println!("{:<6} {:<24} {:<26} LAST USED", "ID", "NAME", "CREATED");
            for t in list["tokens"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                println!(
                    "{:<6} {:<24} {:<26} {}",
                    t["id"],
                    t["name"].as_str().unwrap_or(""),
                    t["created_at"].as_str().unwrap_or(""),
                    t["last_used_at"].as_str().unwrap_or("never")
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
