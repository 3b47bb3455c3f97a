//! `dockhand-fake-anthropic --scenario FILE --listen ADDR [--api-key KEY]`:
//! serves a scenario as a fake Anthropic API until interrupted, so Dockhand can
//! be tried without an API key (`ANTHROPIC_BASE_URL=http://ADDR`).
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dockhand_testkit::FakeAnthropic;
use dockhand_testkit::FakeOptions;
use dockhand_testkit::Scenario;

/// A fake Anthropic Messages API that plays a scripted scenario.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The scenario file (JSON: {"turns": [...], "token_delay_ms": N, "counting":
    /// "per_conversation" or "global"}).
    #[arg(long)]
    scenario: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Accept only this key (in x-api-key or Authorization: Bearer); any key otherwise.
    #[arg(long)]
    api_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("cannot read the scenario {}", args.scenario.display()))?;
    let scenario = Scenario::from_json_str(&text)
        .with_context(|| format!("in {}", args.scenario.display()))?;
    let options = FakeOptions {
        listen: args.listen,
        api_key: args.api_key,
    };
    let fake = FakeAnthropic::start_with(scenario, options).await?;
    println!("listening on {}", fake.base_url());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
