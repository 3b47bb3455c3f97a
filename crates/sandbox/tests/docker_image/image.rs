//! The sandbox image builder: mmdebstrap's arguments and failures, the tar streamed
//! into the engine, and a real build.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Instant;

use dockhand_sandbox::SandboxError;
use dockhand_sandbox::docker::image::BuildOptions;
use dockhand_sandbox::docker::image::ImageBuildEvent;
use dockhand_sandbox::docker::image::ImageError;
use dockhand_sandbox::docker::image::build_default_image;
use dockhand_sandbox::docker::image::default_image;
use dockhand_sandbox::docker::image::image_exists;

use crate::harness::Cleanup;
use crate::harness::docker;
use crate::harness::run_in;
use crate::harness::unique;

/// Writes an executable stand-in for mmdebstrap into `dir`.
fn fake_mmdebstrap(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-mmdebstrap");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Build options into a unique repository, with the tar and scratch in `work`.
fn test_build(work: &Path, mmdebstrap: PathBuf) -> BuildOptions {
    BuildOptions {
        repo: unique("dockhand-sandbox-test"),
        work_dir: work.to_owned(),
        mmdebstrap,
        ..BuildOptions::default()
    }
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn the_default_image_tag_follows_the_recipe_and_the_version() {
    let base = BuildOptions::default();
    let tag = base.tag();
    assert!(tag.starts_with(concat!(env!("CARGO_PKG_VERSION"), "-")));
    assert_eq!(tag.len(), env!("CARGO_PKG_VERSION").len() + 1 + 8);
    assert_eq!(default_image(), format!("dockhand-sandbox:{tag}"));
    let mut reordered = base.clone();
    reordered.packages.reverse();
    assert_eq!(
        reordered.tag(),
        tag,
        "package order is not part of the recipe"
    );
    let mut more = base.clone();
    more.packages.push("jq".into());
    assert_ne!(more.tag(), tag);
    let other_suite = BuildOptions {
        suite: "trixie".into(),
        ..base
    };
    assert_ne!(other_suite.tag(), tag);
}

#[test]
fn mmdebstrap_args_name_suite_packages_hooks_and_target_and_refuse_options() {
    let args: Vec<String> = BuildOptions::default()
        .mmdebstrap_args(Path::new("/w/r.tar"))
        .unwrap()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(args[0], "--variant=apt");
    assert_eq!(
        args[1],
        "--include=bash,coreutils,git,curl,ca-certificates,build-essential,python3,procps"
    );
    assert!(
        args.iter()
            .any(|a| a.starts_with("--customize-hook=") && a.contains("useradd"))
    );
    assert_eq!(args[args.len() - 2..], ["bookworm", "/w/r.tar"]);

    for bad in ["--foreign", "git,evil", ""] {
        let mut opts = BuildOptions::default();
        opts.packages.push(bad.into());
        let err = opts.mmdebstrap_args(Path::new("/t")).unwrap_err();
        assert!(matches!(err, ImageError::Invalid(_)), "{bad:?}: {err:?}");
    }
    let opts = BuildOptions {
        suite: "--aptopt=x".into(),
        ..BuildOptions::default()
    };
    assert!(opts.mmdebstrap_args(Path::new("/t")).is_err());
}

#[tokio::test]
async fn image_build_without_mmdebstrap_says_how_to_install_it() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let opts = test_build(work.path(), work.path().join("no-such-mmdebstrap"));
    let err = build_default_image(&docker, &opts, |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mmdebstrap is not installed; apt-get install mmdebstrap"
    );
    assert!(matches!(
        SandboxError::from(err),
        SandboxError::Unavailable { .. }
    ));
}

#[tokio::test]
async fn image_build_failing_mmdebstrap_quotes_its_last_lines_and_leaves_no_tar() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let script = fake_mmdebstrap(
        work.path(),
        "for last; do :; done\necho partial > \"$last\"\necho 'I: downloading' >&2\n\
         echo 'E: cannot reach the mirror' >&2\nexit 1",
    );
    let scratch = work.path().join("scratch");
    let opts = test_build(&scratch, script);
    let mut lines = Vec::new();
    let err = build_default_image(&docker, &opts, |event| {
        if let ImageBuildEvent::BootstrapLine(line) = event {
            lines.push(line);
        }
    })
    .await
    .unwrap_err();
    assert_eq!(lines, ["I: downloading", "E: cannot reach the mirror"]);
    assert_eq!(
        err.to_string(),
        "building the sandbox image: mmdebstrap failed (exit 1): \
         I: downloading\nE: cannot reach the mirror"
    );
    assert_eq!(leftovers(&scratch), Vec::<PathBuf>::new());
    assert!(!image_exists(&docker, &opts.image()).await.unwrap());
}

#[tokio::test]
async fn image_build_streams_the_tar_into_the_engine_and_then_is_current() {
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    // A stand-in that writes a one-file root file system to its last argument.
    let script = fake_mmdebstrap(
        work.path(),
        "for last; do :; done\necho \"I: fake $*\" >&2\nd=$(mktemp -d)\n\
         echo hello > \"$d/hello\"\ntar -C \"$d\" -cf \"$last\" .\nrm -rf \"$d\"",
    );
    let scratch = work.path().join("scratch");
    let opts = test_build(&scratch, script);
    let mut cleanup = Cleanup::new();
    cleanup.images = vec![opts.image(), format!("{}:latest", opts.repo)];

    let mut events = Vec::new();
    let first = build_default_image(&docker, &opts, |e| events.push(e))
        .await
        .unwrap();
    assert_eq!(
        (first.image.as_str(), first.built),
        (opts.image().as_str(), true)
    );
    assert!(matches!(&events[0], ImageBuildEvent::Checking { image } if *image == first.image));
    assert!(
        matches!(&events[1], ImageBuildEvent::Bootstrapping { suite, .. } if suite == "bookworm")
    );
    assert!(matches!(&events[2], ImageBuildEvent::BootstrapLine(l) if l.contains("--variant=apt")));
    let Some(ImageBuildEvent::Importing { sent, total }) = events
        .iter()
        .rev()
        .find(|e| matches!(e, ImageBuildEvent::Importing { .. }))
    else {
        panic!("no import progress in {events:?}");
    };
    assert!(*total > 0 && sent == total, "{sent} of {total}");
    assert!(
        matches!(events.last(), Some(ImageBuildEvent::Done { .. })),
        "{events:?}"
    );
    assert_eq!(
        leftovers(&scratch),
        Vec::<PathBuf>::new(),
        "the tar is removed"
    );

    let inspect = docker.inspect_image(&first.image).await.unwrap();
    let config = inspect.config.unwrap();
    assert_eq!(config.cmd.unwrap(), ["sleep", "infinity"]);
    assert_eq!(config.working_dir.unwrap(), "/workspace");
    assert!(
        config
            .env
            .unwrap()
            .iter()
            .any(|e| e.starts_with("PATH=/usr/local/sbin:"))
    );
    let latest = docker
        .inspect_image(&format!("{}:latest", opts.repo))
        .await
        .unwrap();
    assert_eq!(latest.id, inspect.id);

    events.clear();
    let second = build_default_image(&docker, &opts, |e| events.push(e))
        .await
        .unwrap();
    assert!(!second.built);
    assert_eq!(
        events,
        [
            ImageBuildEvent::Checking {
                image: first.image.clone()
            },
            ImageBuildEvent::Current {
                image: first.image.clone()
            },
        ]
    );

    let forced = BuildOptions {
        force: true,
        ..opts.clone()
    };
    let third = build_default_image(&docker, &forced, |_| {}).await.unwrap();
    assert!(third.built);
    let rebuilt = docker.inspect_image(&first.image).await.unwrap();
    assert_ne!(rebuilt.id, inspect.id, "force imports a new image");
    cleanup.images.push(inspect.id.unwrap());
}

/// The real thing: mmdebstrap bootstraps Debian (about a minute), the engine
/// imports it, and the result runs as the `agent` user with the promised tools.
#[tokio::test]
async fn default_image_real_mmdebstrap_build_takes_about_a_minute() {
    let docker = docker().await;
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = test_build(work.path(), "mmdebstrap".into());
    let mut cleanup = Cleanup::new();
    cleanup.images = vec![opts.image(), format!("{}:latest", opts.repo)];

    let mut events = Vec::new();
    let mut import_started = None;
    let built = build_default_image(&docker, &opts, |e| {
        if matches!(e, ImageBuildEvent::Importing { .. }) && import_started.is_none() {
            import_started = Some(Instant::now());
        }
        events.push(e);
    })
    .await
    .unwrap();
    assert!(built.built);
    let bootstrapped = events.iter().find_map(|e| match e {
        ImageBuildEvent::Bootstrapped { bytes, duration } => Some((*bytes, *duration)),
        _ => None,
    });
    let (bytes, mmdebstrap_took) = bootstrapped.expect("a Bootstrapped event");
    eprintln!(
        "mmdebstrap: {mmdebstrap_took:?} for {} MB; import: {:?}; total: {:?}",
        bytes / 1_000_000,
        import_started.unwrap().elapsed(),
        built.duration
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ImageBuildEvent::BootstrapLine(l) if l.contains("useradd")))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ImageBuildEvent::Importing { sent, total } if sent == total))
    );

    let (code, out) = run_in(
        &docker,
        &cleanup,
        &built.image,
        "1000",
        "id -un; echo $HOME; pwd",
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "agent\n/home/agent\n/workspace\n")
    );
    let (code, out) = run_in(
        &docker,
        &cleanup,
        &built.image,
        "1000",
        "for t in git python3 curl gcc make ps; do command -v $t >/dev/null || echo missing $t; done",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, ""));

    let again = build_default_image(&docker, &opts, |_| {}).await.unwrap();
    eprintln!("second build (current): {:?}", again.duration);
    assert!(!again.built);
}
