//! `dockhand`: the coordinator and its command-line client.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod account;
mod client;
mod connect;
mod credentials;
mod doctor;
mod follow;
mod image;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use anyhow::Result;
use clap::Parser;
use clap::Subcommand;
use dockhand_protocol::CreateTaskParams;
use dockhand_protocol::TaskStatus;

use crate::connect::Connection;
use crate::connect::Target;

/// Dockhand: background coding agents on your own server.
#[derive(Parser)]
#[command(name = "dockhand", version, about)]
struct Cli {
    /// Coordinator URL (default: `DOCKHAND_SERVER`, else a coordinator already using
    /// the data dir, else one started in this process).
    #[arg(long, global = true, env = "DOCKHAND_SERVER")]
    server: Option<String>,
    /// API token (default: `DOCKHAND_TOKEN`, else the local admin token).
    #[arg(long, global = true, env = "DOCKHAND_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the coordinator.
    Serve {
        /// Address to listen on (overrides DOCKHAND_LISTEN and `listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Submit a task and stream its progress until it ends.
    Run {
        /// Repository: owner/name, a git URL, or a local path such as `.`.
        #[arg(long)]
        repo: String,
        /// Branch to start from (default: the repository's default branch).
        #[arg(long)]
        base: Option<String>,
        /// Model id (default: the coordinator's).
        #[arg(long)]
        model: Option<String>,
        /// Sandbox image (docker; default: the repository's, else Dockhand's own).
        #[arg(long)]
        image: Option<String>,
        /// Print one event per line as JSON.
        #[arg(long)]
        json: bool,
        /// Return once the task is queued.
        #[arg(long)]
        detach: bool,
        /// What the agent should do.
        prompt: String,
    },
    /// List tasks.
    Tasks {
        /// Only tasks with this status.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a task's events.
    Logs {
        /// Task id.
        id: String,
        /// Keep following until the task ends.
        #[arg(short, long)]
        follow: bool,
        /// Print one event per line as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task.
    Cancel {
        /// Task id.
        id: String,
    },
    /// Send a follow-up to a task; it continues on the same branch.
    Say {
        /// Task id.
        id: String,
        /// The follow-up.
        text: String,
        /// Stream the task until it ends (always on without a separate coordinator).
        #[arg(short, long)]
        follow: bool,
    },
    /// Sign in with GitHub (device flow): shows a code to enter at GitHub.
    Login,
    /// Sign out and forget the stored session.
    Logout,
    /// Personal API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check this machine and the configuration, and say how to fix what is missing.
    Doctor,
    /// Remove workspaces past retention (never one holding unpublished work),
    /// orphaned containers and stale environment images.
    Gc {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage the sandbox image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once.
    Create {
        /// A name to recognise it by.
        name: String,
    },
    /// List your tokens and when each was last used.
    List,
    /// Revoke a token.
    Revoke {
        /// The token's id (from `token list`).
        id: i64,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the default sandbox image from Debian packages (does nothing when it is current).
    Build {
        /// Rebuild even when the image exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("DOCKHAND_LOG").unwrap_or_else(|_| match cli.command {
        Command::Serve { .. } => "info".into(),
        _ => "warn".into(),
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dockhand: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dockhand: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let target = Target {
        server: cli.server,
        token: cli.token,
    };
    match cli.command {
        Command::Serve { listen } => serve(listen).await,
        Command::Doctor => doctor::run().await,
        Command::Login => account::login(&target).await,
        Command::Logout => account::logout(&target).await,
        Command::Token { command } => {
            let action = match command {
                TokenCommand::Create { name } => account::TokenAction::Create(name),
                TokenCommand::List => account::TokenAction::List,
                TokenCommand::Revoke { id } => account::TokenAction::Revoke(id),
            };
            account::token(&target, action).await
        }
        Command::Gc { dry_run } => {
            let conn = connect::connect(&target).await?;
            let report = conn.client.gc(dry_run).await?;
            render::gc_report(&report);
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image {
            command: ImageCommand::Build { force },
        } => image::build(force).await,
        Command::Run {
            repo,
            base,
            model,
            image,
            json,
            detach,
            prompt,
        } => {
            let conn = connect::connect(&target).await?;
            let params = CreateTaskParams {
                repo: repo_arg(&repo)?,
                prompt,
                base_branch: base,
                model,
                image,
            };
            let task = conn.client.create_task(&params).await?;
            if detach {
                println!("{}", task.id);
                return Ok(ExitCode::SUCCESS);
            }
            if !json {
                render::header(&task);
            }
            let end = follow::follow(&conn, &task.id, 0, json).await?;
            finish(conn, end).await
        }
        Command::Tasks {
            status,
            limit,
            json,
        } => {
            let conn = connect::connect(&target).await?;
            let tasks = conn.client.list_tasks(status.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tasks)?);
            } else {
                render::task_table(&tasks.tasks);
            }
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs {
            id,
            follow: keep,
            json,
        } => {
            let conn = connect::connect(&target).await?;
            let task = conn.client.get_task(&id).await?;
            if keep || !task.status.is_terminal() && conn.embedded() {
                let end = follow::follow(&conn, &task.id, 0, json).await?;
                return finish(conn, end).await;
            }
            let events = conn.client.events(&id, 0).await?;
            let mut r = render::Renderer::new(json);
            for e in events {
                r.event(&e);
            }
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id } => {
            let conn = connect::connect(&target).await?;
            let task = conn.client.cancel(&id).await?;
            if conn.embedded() && task.status != TaskStatus::Cancelled {
                let end = follow::follow(&conn, &task.id, task.last_seq, false).await?;
                return finish(conn, end).await;
            }
            println!("{}: {}", task.id, task.status);
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Say {
            id,
            text,
            follow: keep,
        } => {
            let conn = connect::connect(&target).await?;
            let before = conn.client.get_task(&id).await?;
            conn.client.say(&id, &text).await?;
            if keep || conn.embedded() {
                let end = follow::follow(&conn, &before.id, before.last_seq, false).await?;
                return finish(conn, end).await;
            }
            println!("follow-up accepted for {id}");
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn finish(conn: Connection, end: TaskStatus) -> Result<ExitCode> {
    conn.close().await;
    Ok(if end == TaskStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A `--repo` that is an existing directory is sent as its absolute path.
fn repo_arg(repo: &str) -> Result<String> {
    let path = PathBuf::from(repo);
    if path.is_dir() {
        let abs = std::fs::canonicalize(&path).with_context(|| format!("resolving {repo}"))?;
        return Ok(abs.to_string_lossy().into_owned());
    }
    Ok(repo.to_owned())
}

async fn serve(listen: Option<std::net::SocketAddr>) -> Result<ExitCode> {
    let mut config = connect::load_config()?;
    if let Some(l) = listen {
        config.listen = l;
    }
    let coordinator = dockhand_server::Coordinator::start(config, None).await?;
    if let Some(token) = coordinator.new_admin_token() {
        println!(
            "Admin token (shown once; also in {}):\n\n    {token}\n",
            coordinator.admin_token_path().display()
        );
    }
    println!("Dockhand is listening on {}", coordinator.base_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    eprintln!("stopping; running tasks resume at the next start");
    coordinator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
