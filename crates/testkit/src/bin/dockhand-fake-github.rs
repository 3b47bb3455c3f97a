//! `dockhand-fake-github --listen ADDR --user LOGIN [--user LOGIN ...]
//! [--org ORG:LOGIN,LOGIN]... [--repo OWNER/NAME]... [--client-id X]
//! [--client-secret Y] [--device-interval SECS] [--repos DIR]`: serves a fake
//! GitHub (web, API and git on one base URL) until interrupted, so Dockhand's
//! sign-in and publishing can be tried without a real OAuth app or GitHub.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dockhand_testkit::FakeGitHub;
use dockhand_testkit::FakeGitHubOptions;

/// A fake GitHub that approves every sign-in.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A user login (ids 1001, 1002, ... in order); the first signs in by default.
    #[arg(long = "user", value_name = "LOGIN", required = true)]
    users: Vec<String>,
    /// An organization and its members: ORG:LOGIN,LOGIN.
    #[arg(long = "org", value_name = "ORG:LOGIN,LOGIN", value_parser = parse_org)]
    orgs: Vec<OrgArg>,
    /// A repository visible to every user: OWNER/NAME.
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    repos: Vec<String>,
    /// Accept only this OAuth client id.
    #[arg(long)]
    client_id: Option<String>,
    /// Require this client secret on the code exchange.
    #[arg(long)]
    client_secret: Option<String>,
    /// The device flow's polling interval, in seconds.
    #[arg(long, default_value_t = 5)]
    device_interval: u64,
    /// What `slow_down` adds to the interval, in seconds.
    #[arg(long, default_value_t = 5)]
    slow_down_increment: u64,
    /// Serve the bare repositories DIR/OWNER/NAME.git at /OWNER/NAME.git
    /// over git smart HTTP, and through the REST API as OWNER/NAME.
    #[arg(long = "repos", value_name = "DIR")]
    repos_dir: Option<PathBuf>,
}

#[derive(Clone)]
struct OrgArg {
    name: String,
    members: Vec<String>,
}

fn parse_org(value: &str) -> Result<OrgArg, String> {
    let (name, members) = value.split_once(':').unwrap_or((value, ""));
    if name.is_empty() {
        return Err("expected ORG:LOGIN,LOGIN".into());
    }
    Ok(OrgArg {
        name: name.to_owned(),
        members: members
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = FakeGitHubOptions {
        listen: args.listen,
        users: args.users,
        orgs: args
            .orgs
            .into_iter()
            .map(|org| (org.name, org.members))
            .collect(),
        repos: args.repos,
        client_id: args.client_id,
        client_secret: args.client_secret,
        device_interval: args.device_interval,
        slow_down_increment: args.slow_down_increment,
        repos_dir: args.repos_dir,
        ..FakeGitHubOptions::default()
    };
    let fake = FakeGitHub::start(options).await?;
    println!("listening on {}", fake.base_url());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
