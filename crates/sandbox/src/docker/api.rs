//! Engine API failures in the words the rest of the backend reports them in, and
//! container ids as operators see them.

use bollard::errors::Error as DockerError;

use crate::SandboxError;

/// The first 12 characters of a container id, as `docker ps` shows them.
pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The daemon's own message for an API error, else the client's description.
pub(crate) fn message(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        other => other.to_string(),
    }
}

/// A `Failed` error for an Engine API call.
pub(crate) fn api_error(what: impl Into<String>, err: DockerError) -> SandboxError {
    SandboxError::Failed {
        what: what.into(),
        message: message(&err),
    }
}
