//! Files in and out of a container through the Engine API's archive endpoints,
//! so nothing of the host is mounted for it: bundles going in, bundles coming back.

use bollard::errors::Error as DockerError;
use bollard::query_parameters::DownloadFromContainerOptions;
use bollard::query_parameters::UploadToContainerOptions;
use futures_util::StreamExt;

use super::api::api_error;
use super::archive;
use super::archive::NotAFile;
use super::container::Container;
use crate::Result;
use crate::SandboxError;

/// Room for the tar headers around the file a download carries.
const TAR_OVERHEAD: usize = 64 * 1024;

/// Puts `data` as `dir/name` (mode 0644, owned by root, readable by the sandbox user).
pub(crate) async fn upload(
    container: &Container,
    dir: &str,
    name: &str,
    data: &[u8],
) -> Result<()> {
    crate::files::check_name(name)?;
    let tar = archive::tar(&[archive::Entry::File {
        path: name,
        mode: 0o644,
        data,
    }]);
    let options = UploadToContainerOptions {
        path: dir.to_owned(),
        ..Default::default()
    };
    let body = bollard::body_full(tar.into());
    container
        .docker
        .upload_to_container(&container.id(), Some(options), body)
        .await
        .map_err(|e| api_error(format!("copying {name} into {dir}"), e))
}

/// The regular file at `path`, at most `max` bytes; a symlink is refused, not followed.
pub(crate) async fn download(container: &Container, path: &str, max: usize) -> Result<Vec<u8>> {
    let too_large = || SandboxError::TooLarge {
        path: path.to_owned(),
        limit: max,
    };
    let options = DownloadFromContainerOptions {
        path: path.to_owned(),
    };
    let id = container.id();
    let mut stream = container.docker.download_from_container(&id, Some(options));
    let limit = max.saturating_add(TAR_OVERHEAD);
    let mut archive = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match e {
            DockerError::DockerResponseServerError {
                status_code: 404, ..
            } => SandboxError::NotFound {
                path: path.to_owned(),
            },
            e => api_error(format!("copying {path} out of the container"), e),
        })?;
        if archive.len() + chunk.len() > limit {
            return Err(too_large());
        }
        archive.extend_from_slice(&chunk);
        // Decide from the first header, before reading a directory or a big file.
        match archive::first_entry(&archive) {
            Ok(Some((_, size))) if size > max => return Err(too_large()),
            Err(e) => return Err(refused(path, e)),
            Ok(_) => {}
        }
    }
    archive::only_file(&archive)
        .map(<[u8]>::to_vec)
        .map_err(|e| refused(path, e))
}

fn refused(path: &str, why: NotAFile) -> SandboxError {
    let failed = |message: &str| SandboxError::Failed {
        what: format!("reading {path}"),
        message: message.to_owned(),
    };
    match why {
        NotAFile::Directory => SandboxError::IsDirectory {
            path: path.to_owned(),
        },
        NotAFile::Symlink | NotAFile::Other => failed("not a regular file"),
        NotAFile::Truncated => failed("the engine's archive was cut short"),
    }
}
