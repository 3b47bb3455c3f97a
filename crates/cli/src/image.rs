//! `dockhand image build`: the default sandbox image, built from Debian packages
//! without a registry, with progress.

use std::io::IsTerminal;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use anyhow::Result;
use dockhand_sandbox::docker::DockerConfig;
use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::docker::image::BuildOptions;
use dockhand_sandbox::docker::image::ImageBuildEvent;
use dockhand_sandbox::docker::image::build_default_image;

pub async fn build(force: bool) -> Result<ExitCode> {
    let opts = BuildOptions {
        force,
        ..BuildOptions::default()
    };
    let provider = DockerProvider::connect(DockerConfig::new("cli", opts.image())).await?;
    let mut importing_shown = 0u64;
    let tty = std::io::stdout().is_terminal();
    let outcome = build_default_image(provider.client(), &opts, |event| match event {
        ImageBuildEvent::Checking { image } => println!("checking {image}"),
        ImageBuildEvent::Current { image } => println!("{image} is current; nothing to do (--force rebuilds it)"),
        ImageBuildEvent::Bootstrapping { suite, packages } => println!(
            "bootstrapping Debian {suite} with {} packages from this machine's apt sources (about a minute)",
            packages.len()
        ),
        ImageBuildEvent::BootstrapLine(line) => println!("  │ {line}"),
        ImageBuildEvent::Bootstrapped { bytes, duration } => {
            println!("root file system ready: {} MB in {:.0} s", bytes >> 20, duration.as_secs_f64())
        }
        ImageBuildEvent::Importing { sent, total } => {
            // One line per 10 %, so logs stay short.
            let pct = (sent * 100).checked_div(total).unwrap_or(100);
            if pct >= importing_shown + 10 || sent == total {
                importing_shown = pct;
                let line = format!("importing into Docker: {pct:3}% of {} MB", total >> 20);
                if tty {
                    print!("\r{line}");
                    let _ = std::io::stdout().flush();
                    if sent == total {
                        println!();
                    }
                } else {
                    println!("{line}");
                }
            }
        }
        ImageBuildEvent::Done { image, duration } => {
            println!("built {image} in {:.0} s", duration.as_secs_f64())
        }
    })
    .await
    .context("building the sandbox image")?;
    if outcome.built {
        println!("tasks now run in {}", outcome.image);
    }
    Ok(ExitCode::SUCCESS)
}
