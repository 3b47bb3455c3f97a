//! The default sandbox image, built without a registry.
//!
//! Many self-hosted boxes cannot pull images, so Dockhand makes its own: `mmdebstrap`
//! writes a Debian root file system to a tar in a work directory, and the Docker API
//! imports that tar as an image (PROTOCOLS.md 1d, "Images without a registry").
//! The tag is a hash of the recipe plus the Dockhand version, so an unchanged recipe
//! means there is nothing to do and a changed one means a new image.
//! `docker/Dockerfile` at the repository root describes the same image for users who
//! have a registry.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use bollard::Docker;
use bollard::models::ImageInspect;
use bollard::query_parameters::CreateImageOptions;
use bollard::query_parameters::TagImageOptions;
use bytes::BytesMut;
use futures_util::StreamExt;
use sha2::Digest;
use sha2::Sha256;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncReadExt;
use tokio::io::BufReader;
use tokio::process::Command;

use crate::SandboxError;

/// The repository of the default sandbox image.
pub const DEFAULT_IMAGE_REPO: &str = "dockhand-sandbox";

/// The Debian release the default image is made from. Fixed rather than read from
/// the host, so every host computes the same tag for the same Dockhand version.
pub const DEFAULT_SUITE: &str = "bookworm";

/// What an agent needs to work on most repositories: a shell, git, a compiler and
/// Python. Anything more belongs in a repository's `.dockhand/environment.toml`.
pub const DEFAULT_PACKAGES: &[&str] = &[
    "bash",
    "coreutils",
    "git",
    "curl",
    "ca-certificates",
    "build-essential",
    "python3",
    "procps",
];

/// Bump when the recipe changes in a way the constants below do not show.
const RECIPE_VERSION: u32 = 1;

/// The sandbox runs as uid 1000; git, ssh and shells look the user up, so it needs
/// a name and a home. `/workspace` exists (and is its) even before a bind mount.
const CUSTOMIZE_HOOKS: &[&str] = &[
    r#"chroot "$1" useradd --create-home --uid 1000 --user-group --shell /bin/bash agent"#,
    r#"mkdir -p "$1/workspace" && chown 1000:1000 "$1/workspace""#,
];

/// Documentation is about 90 MB nobody reads in a sandbox (copyright files stay).
/// mmdebstrap already removes apt's package lists and cache by itself.
const DPKG_OPTS: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
];

/// Dockerfile-style settings applied on import. No `USER`: the backend picks the
/// user per container, and environment setup (env_cache.rs) runs as root.
const IMAGE_CHANGES: &[&str] = &[
    r#"CMD ["sleep", "infinity"]"#,
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "WORKDIR /workspace",
];

/// How many of mmdebstrap's last lines an error quotes.
const ERROR_TAIL_LINES: usize = 15;

const STEP_PREFIX: &str = "building the sandbox image: ";

/// Why building the sandbox image failed. Every message names the step and the cause.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The `mmdebstrap` program is not on this host.
    #[error("mmdebstrap is not installed; apt-get install mmdebstrap")]
    MmdebstrapMissing,

    /// mmdebstrap ran and failed; `tail` is its last lines of output.
    #[error("building the sandbox image: mmdebstrap failed ({status}): {tail}")]
    Mmdebstrap {
        /// How it ended, such as "exit 1".
        status: String,
        /// Its last lines of output.
        tail: String,
    },

    /// The options cannot make a valid mmdebstrap command line.
    #[error("building the sandbox image: {0}")]
    Invalid(String),

    /// Host I/O failed (the work directory, the tar).
    #[error("building the sandbox image: {step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The Docker engine refused or failed a request.
    #[error("building the sandbox image: {step}: {source}")]
    Docker {
        /// What was being done, such as "importing the root file system".
        step: &'static str,
        /// bollard's error, which carries the engine's message.
        #[source]
        source: bollard::errors::Error,
    },
}

impl From<ImageError> for SandboxError {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::MmdebstrapMissing => SandboxError::Unavailable {
                what: "mmdebstrap".into(),
                reason: "it is not installed".into(),
                fix: "apt-get install mmdebstrap".into(),
            },
            other => {
                let text = other.to_string();
                SandboxError::Failed {
                    what: "building the sandbox image".into(),
                    message: text.strip_prefix(STEP_PREFIX).unwrap_or(&text).to_owned(),
                }
            }
        }
    }
}

fn docker_error(step: &'static str) -> impl FnOnce(bollard::errors::Error) -> ImageError {
    move |source| ImageError::Docker { step, source }
}

fn io_error(step: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    move |source| ImageError::Io {
        step: step.into(),
        source,
    }
}

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Image repository; the tag comes from the recipe. Tests use a repository of their own.
    pub repo: String,
    /// Debian release to bootstrap.
    pub suite: String,
    /// Packages to install on top of the `apt` variant's essentials.
    pub packages: Vec<String>,
    /// Rebuild even when the image exists.
    pub force: bool,
    /// Holds the root file system tar (about 450 MB) and mmdebstrap's scratch
    /// directory while building; both are removed afterwards.
    pub work_dir: PathBuf,
    /// The mmdebstrap program to run.
    pub mmdebstrap: PathBuf,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            repo: DEFAULT_IMAGE_REPO.into(),
            suite: DEFAULT_SUITE.into(),
            packages: DEFAULT_PACKAGES.iter().map(|p| (*p).to_owned()).collect(),
            force: false,
            work_dir: std::env::temp_dir(),
            mmdebstrap: "mmdebstrap".into(),
        }
    }
}

impl BuildOptions {
    /// The tag these options build: `<dockhand version>-<8 hex of the recipe hash>`.
    pub fn tag(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let mut recipe = format!(
            "recipe {RECIPE_VERSION}\nsuite {}\npackages {}\n",
            self.suite,
            packages.join(",")
        );
        for line in CUSTOMIZE_HOOKS.iter().chain(DPKG_OPTS).chain(IMAGE_CHANGES) {
            recipe.push_str(line);
            recipe.push('\n');
        }
        let digest = hex::encode(Sha256::digest(recipe.as_bytes()));
        format!("{}-{}", env!("CARGO_PKG_VERSION"), &digest[..8])
    }

    /// The full image name, `repo:tag`.
    pub fn image(&self) -> String {
        format!("{}:{}", self.repo, self.tag())
    }

    /// The mmdebstrap arguments that write the root file system to `tar`. No mirror
    /// is named, so mmdebstrap's default applies and no mirror host is hard-coded.
    pub fn mmdebstrap_args(&self, tar: &Path) -> Result<Vec<OsString>, ImageError> {
        // Both end up on mmdebstrap's command line; refuse anything that could be
        // read as an option or split into several packages.
        let is_name = |s: &str, extra: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
        };
        if !is_name(&self.suite, "-") {
            return Err(ImageError::Invalid(format!(
                "{:?} is not a Debian suite name",
                self.suite
            )));
        }
        if let Some(bad) = self.packages.iter().find(|p| !is_name(p, "+-.")) {
            return Err(ImageError::Invalid(format!(
                "{bad:?} is not a Debian package name"
            )));
        }
        let mut args: Vec<OsString> = vec!["--variant=apt".into()];
        if !self.packages.is_empty() {
            args.push(format!("--include={}", self.packages.join(",")).into());
        }
        args.extend(DPKG_OPTS.iter().map(|o| format!("--dpkgopt={o}").into()));
        args.extend(
            CUSTOMIZE_HOOKS
                .iter()
                .map(|h| format!("--customize-hook={h}").into()),
        );
        args.push(self.suite.clone().into());
        args.push(tar.into());
        Ok(args)
    }
}

/// The default sandbox image for this Dockhand version.
pub fn default_image() -> String {
    BuildOptions::default().image()
}

/// A step of [`build_default_image`], for `dockhand image build` to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageBuildEvent {
    /// Looking for the image in the engine.
    Checking {
        /// `repo:tag`.
        image: String,
    },
    /// The image exists and `force` is off: nothing to do.
    Current {
        /// `repo:tag`.
        image: String,
    },
    /// mmdebstrap is starting.
    Bootstrapping {
        /// The Debian release.
        suite: String,
        /// The packages it installs.
        packages: Vec<String>,
    },
    /// One line of mmdebstrap's progress output.
    BootstrapLine(String),
    /// mmdebstrap wrote the root file system.
    Bootstrapped {
        /// Size of the tar.
        bytes: u64,
        /// How long mmdebstrap took.
        duration: Duration,
    },
    /// The tar is being sent to the engine; repeated while it goes.
    Importing {
        /// Bytes sent so far.
        sent: u64,
        /// Size of the tar.
        total: u64,
    },
    /// The image was imported and tagged (also as `latest`).
    Done {
        /// `repo:tag`.
        image: String,
        /// How long the whole build took.
        duration: Duration,
    },
}

/// What [`build_default_image`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOutcome {
    /// `repo:tag`.
    pub image: String,
    /// False when the image was already current.
    pub built: bool,
    /// How long the call took.
    pub duration: Duration,
}

/// Whether the engine has image `name` (a name or an ID).
pub async fn image_exists(docker: &Docker, name: &str) -> Result<bool, ImageError> {
    let found = inspect_if_present(docker, name)
        .await
        .map_err(docker_error("checking for the image"))?;
    Ok(found.is_some())
}

/// The labels of image `name`; `None` when the engine does not have it or
/// cannot say.
pub async fn image_labels(docker: &Docker, name: &str) -> Option<HashMap<String, String>> {
    let found = inspect_if_present(docker, name).await.ok()??;
    Some(found.config?.labels.unwrap_or_default())
}

/// Inspects image `name`; `None` when the engine does not have it.
pub(crate) async fn inspect_if_present(
    docker: &Docker,
    name: &str,
) -> Result<Option<ImageInspect>, bollard::errors::Error> {
    match docker.inspect_image(name).await {
        Ok(found) => Ok(Some(found)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Builds the sandbox image described by `opts` unless it already exists (and
/// `force` is off), reporting each step to `progress`. Needs mmdebstrap and root
/// (or a user mmdebstrap can run unshared as).
pub async fn build_default_image(
    docker: &Docker,
    opts: &BuildOptions,
    mut progress: impl FnMut(ImageBuildEvent) + Send,
) -> Result<BuildOutcome, ImageError> {
    let started = Instant::now();
    let image = opts.image();
    progress(ImageBuildEvent::Checking {
        image: image.clone(),
    });
    if !opts.force && image_exists(docker, &image).await? {
        progress(ImageBuildEvent::Current {
            image: image.clone(),
        });
        return Ok(BuildOutcome {
            image,
            built: false,
            duration: started.elapsed(),
        });
    }

    tokio::fs::create_dir_all(&opts.work_dir)
        .await
        .map_err(io_error(format!("creating {}", opts.work_dir.display())))?;
    let tar = ScratchFile::new(&opts.work_dir);
    run_mmdebstrap(opts, &tar.0, &mut progress).await?;
    import(docker, opts, &tar.0, &mut progress).await?;
    drop(tar);

    // `latest` lets people (and `docker run`) find the current build by a stable name.
    let latest = TagImageOptions {
        repo: Some(opts.repo.clone()),
        tag: Some("latest".into()),
    };
    docker
        .tag_image(&image, Some(latest))
        .await
        .map_err(docker_error("tagging the image as latest"))?;
    progress(ImageBuildEvent::Done {
        image: image.clone(),
        duration: started.elapsed(),
    });
    Ok(BuildOutcome {
        image,
        built: true,
        duration: started.elapsed(),
    })
}

/// A path in the work directory that is removed when dropped, whatever happened.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(dir: &Path) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        ScratchFile(dir.join(format!("dockhand-rootfs-{}-{n}.tar", std::process::id())))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn run_mmdebstrap(
    opts: &BuildOptions,
    tar: &Path,
    progress: &mut (impl FnMut(ImageBuildEvent) + Send),
) -> Result<(), ImageError> {
    let args = opts.mmdebstrap_args(tar)?;
    let started = Instant::now();
    progress(ImageBuildEvent::Bootstrapping {
        suite: opts.suite.clone(),
        packages: opts.packages.clone(),
    });
    let mut child = Command::new(&opts.mmdebstrap)
        .args(&args)
        // Its scratch chroot (about as large as the tar) goes beside the tar.
        .env("TMPDIR", &opts.work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::MmdebstrapMissing,
            _ => ImageError::Io {
                step: "starting mmdebstrap".into(),
                source: e,
            },
        })?;

    let mut tail = VecDeque::with_capacity(ERROR_TAIL_LINES);
    if let Some(stderr) = child.stderr.take() {
        let mut stderr = BufReader::new(stderr);
        let mut raw = Vec::new();
        // Byte lines, not `lines()`: a hook may print something that is not UTF-8.
        while stderr
            .read_until(b'\n', &mut raw)
            .await
            .map_err(io_error("reading mmdebstrap's output"))?
            > 0
        {
            let line = String::from_utf8_lossy(raw.trim_ascii_end()).into_owned();
            raw.clear();
            if tail.len() == ERROR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
            progress(ImageBuildEvent::BootstrapLine(line));
        }
    }
    let status = child
        .wait()
        .await
        .map_err(io_error("waiting for mmdebstrap"))?;
    if !status.success() {
        return Err(ImageError::Mmdebstrap {
            status: describe(status),
            tail: Vec::from(tail).join("\n"),
        });
    }
    let bytes = tokio::fs::metadata(tar)
        .await
        .map_err(io_error(format!(
            "mmdebstrap succeeded but wrote no {}",
            tar.display()
        )))?
        .len();
    progress(ImageBuildEvent::Bootstrapped {
        bytes,
        duration: started.elapsed(),
    });
    Ok(())
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Streams the tar to `POST /images/create?fromSrc=-` from disk, in chunks, so a
/// 450 MB root file system never sits in memory.
async fn import(
    docker: &Docker,
    opts: &BuildOptions,
    tar: &Path,
    progress: &mut (impl FnMut(ImageBuildEvent) + Send),
) -> Result<(), ImageError> {
    const CHUNK: usize = 256 * 1024;
    let file = tokio::fs::File::open(tar)
        .await
        .map_err(io_error(format!("opening {}", tar.display())))?;
    let total = file
        .metadata()
        .await
        .map_err(io_error(format!("reading the size of {}", tar.display())))?
        .len();
    let sent = Arc::new(AtomicU64::new(0));
    let body = futures_util::stream::try_unfold(
        (file, Arc::clone(&sent)),
        |(mut file, sent)| async move {
            let mut chunk = BytesMut::with_capacity(CHUNK);
            if file.read_buf(&mut chunk).await? == 0 {
                return Ok(None);
            }
            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Ok(Some((chunk.freeze(), (file, sent))))
        },
    );
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(opts.repo.clone()),
        tag: Some(opts.tag()),
        message: Some(format!(
            "dockhand {} sandbox image ({})",
            env!("CARGO_PKG_VERSION"),
            opts.suite
        )),
        changes: IMAGE_CHANGES.iter().map(|c| (*c).to_owned()).collect(),
        ..Default::default()
    };
    let mut replies = docker.create_image(
        Some(options),
        Some(bollard::body_try_stream(body)),
        /*credentials*/ None,
    );
    // The engine says nothing until the upload ends, so progress comes from our
    // own byte count on a ticker.
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            reply = replies.next() => match reply {
                None => break,
                // Failures arrive inside the 200 stream; bollard turns an
                // `errorDetail` with a message into an error, this catches the rest.
                Some(Ok(info)) => {
                    if let Some(detail) = info.error_detail {
                        return Err(ImageError::Docker {
                            step: "importing the root file system",
                            source: bollard::errors::Error::DockerStreamError {
                                error: detail.message.unwrap_or_else(|| {
                                    format!("error code {:?}", detail.code)
                                }),
                            },
                        });
                    }
                }
                Some(Err(e)) => return Err(docker_error("importing the root file system")(e)),
            },
            _ = ticker.tick() => progress(ImageBuildEvent::Importing {
                sent: sent.load(Ordering::Relaxed),
                total,
            }),
        }
    }
    progress(ImageBuildEvent::Importing {
        sent: sent.load(Ordering::Relaxed),
        total,
    });
    Ok(())
}
