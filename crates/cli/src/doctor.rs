//! `dockhand doctor`: checks what Dockhand needs and says how to fix what is missing.

use std::process::ExitCode;

use anyhow::Result;
use dockhand_server::config::default_data_dir;

struct Report {
    failed: bool,
}

impl Report {
    fn ok(&self, what: &str, detail: &str) {
        println!("✔ {what}: {detail}");
    }

    fn warn(&self, what: &str, detail: &str, fix: &str) {
        println!("! {what}: {detail}\n    fix: {fix}");
    }

    fn fail(&mut self, what: &str, detail: &str, fix: &str) {
        self.failed = true;
        println!("✘ {what}: {detail}\n    fix: {fix}");
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn docker(r: &mut Report, config: &dockhand_server::Config) {
    use dockhand_server::config::Backend;
    let wanted = config.sandbox.backend == Some(Backend::Docker);
    let dconf = dockhand_server::sandboxes::docker_config(config, "doctor");
    let provider = match dockhand_sandbox::docker::DockerProvider::connect(dconf).await {
        Ok(p) => p,
        Err(e) if wanted => {
            return r.fail(
                "docker",
                &e.to_string(),
                "start the Docker engine, or set DOCKHAND_SANDBOX=local",
            );
        }
        Err(e) if config.sandbox.backend == Some(Backend::Local) => {
            return r.ok(
                "docker",
                &format!("not used (sandbox.backend = local): {e}"),
            );
        }
        Err(e) => {
            return r.warn(
                "docker",
                &dockhand_server::sandboxes::fallback_warning(&e),
                "start the Docker engine for container sandboxes, or set sandbox.backend",
            );
        }
    };
    match provider.check().await {
        Ok(check) => {
            r.ok("docker", &format!("engine {}", check.engine));
            let fix =
                |f: &Option<String>| f.clone().unwrap_or_else(|| "see the detail above".into());
            if check.image.ok {
                r.ok("sandbox image", &check.image.detail);
            } else {
                r.fail("sandbox image", &check.image.detail, &fix(&check.image.fix));
            }
            if let Some(rt) = check.runtime {
                if rt.ok {
                    r.ok("runtime", &rt.detail);
                } else {
                    r.fail("runtime", &rt.detail, &fix(&rt.fix));
                }
            }
        }
        Err(e) => r.fail(
            "docker",
            &e.to_string(),
            "check that the engine is healthy (docker info)",
        ),
    }
}

/// The local backend as the configuration has it: bubblewrap, and its limits.
async fn local(r: &mut Report, config: Option<&dockhand_server::Config>) {
    use dockhand_sandbox::SandboxError;
    let state = std::env::temp_dir().join(format!("dockhand-doctor-{}", std::process::id()));
    let mut lconf = match config {
        Some(c) => dockhand_server::sandboxes::local_config(c, None),
        None => dockhand_sandbox::local::LocalConfig::new(&state),
    };
    lconf.state_dir = state.clone();
    let report = |r: &mut Report, e: SandboxError| match e {
        SandboxError::Unavailable { what, reason, fix } => {
            r.fail("sandbox (local)", &format!("{what}: {reason}"), &fix)
        }
        other => r.fail(
            "sandbox (local)",
            &other.to_string(),
            "apt-get install bubblewrap",
        ),
    };
    match dockhand_sandbox::local::LocalProvider::new(lconf) {
        Ok(p) => match p.check().await {
            Ok(version) => {
                r.ok(
                    "sandbox (local)",
                    &format!("{version} can create sandboxes"),
                );
                match p.limits_kind() {
                    Some(kind) => r.ok("local limits", &format!("memory, processes and CPU per sandbox ({kind})")),
                    None => r.warn(
                        "local limits",
                        "none (sandbox.local_limits = \"none\"): a local sandbox may use the whole machine",
                        "set sandbox.local_limits = \"cgroup\" on a host with cgroups",
                    ),
                }
            }
            Err(e) => report(r, e),
        },
        Err(e) => report(r, e),
    }
    let _ = std::fs::remove_dir_all(&state);
}

/// The network level tasks get, and what `open` exposes.
fn network(r: &mut Report, config: &dockhand_server::Config) {
    use dockhand_protocol::NetworkLevel;
    let level = config.sandbox.network.level;
    match level {
        NetworkLevel::Open => r.warn(
            "network",
            "sandbox.network = \"open\": sandboxes reach the whole network, the LAN, the cloud \
             metadata address and the host's ports included",
            "use \"allowlist\" (the default), or add the host firewall rules the README shows",
        ),
        _ => r.ok("network", &format!("sandbox.network = \"{level}\"")),
    }
    for w in &config.warnings {
        r.warn("configuration", w, "update dockhand.toml");
    }
}

pub async fn run() -> Result<ExitCode> {
    let mut r = Report { failed: false };
    let data_dir = default_data_dir(&env);
    let config = match dockhand_server::Config::load(&data_dir, &env) {
        Ok(c) => {
            r.ok(
                "configuration",
                &format!("{}/dockhand.toml and the environment", data_dir.display()),
            );
            Some(c)
        }
        Err(e) => {
            r.fail(
                "configuration",
                &e.to_string(),
                "correct the file or variable named above",
            );
            None
        }
    };

    match tokio::process::Command::new("git")
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => r.ok("git", String::from_utf8_lossy(&out.stdout).trim()),
        _ => r.fail(
            "git",
            "not found on PATH",
            "install git (Debian: apt-get install git)",
        ),
    }

    std::fs::create_dir_all(&data_dir).ok();
    match rustix::fs::statvfs(&data_dir) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let gib = free as f64 / (1u64 << 30) as f64;
            let detail = format!("{} ({gib:.1} GiB free)", data_dir.display());
            if free < 2 << 30 {
                r.warn(
                    "data dir",
                    &detail,
                    "free some disk space: workspaces need room to clone and build",
                );
            } else {
                r.ok("data dir", &detail);
            }
        }
        Err(e) => r.fail(
            "data dir",
            &format!("{}: {e}", data_dir.display()),
            "set DOCKHAND_DATA_DIR to a writable directory",
        ),
    }

    if let Some(c) = &config {
        docker(&mut r, c).await;
    }

    local(&mut r, config.as_ref()).await;
    if let Some(c) = &config {
        network(&mut r, c);
    }

    if let Some(c) = &config {
        match &c.model.api_key {
            Some(_) => r.ok("model", &format!("{} at {} (key set)", c.model.name, c.model.base_url)),
            None => r.fail(
                "model",
                "ANTHROPIC_API_KEY is not set",
                "export ANTHROPIC_API_KEY=... (or, to try Dockhand without a key, run dockhand-fake-anthropic \
                 --scenario examples/scenarios/hello.json and set ANTHROPIC_BASE_URL to the URL it prints and \
                 ANTHROPIC_API_KEY to any value)",
            ),
        }
    }
    if r.failed {
        println!("\nSome checks failed; fix them and run `dockhand doctor` again.");
        Ok(ExitCode::FAILURE)
    } else {
        println!("\nAll checks passed.");
        Ok(ExitCode::SUCCESS)
    }
}
