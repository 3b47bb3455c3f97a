//! The operator's policy is the ceiling: what a task or a repository may ask
//! for. A task that asks for more is refused at submission; a repository that
//! asks for more is not granted it, and a `policy` phase event says what was
//! asked and what applies.

use dockhand_sandbox::docker::DockerProvider;
use dockhand_sandbox::docker::env_cache::ENV_IMAGE_REPO;
use dockhand_sandbox::docker::env_cache::ENV_LABEL;
use dockhand_sandbox::docker::env_cache::ENV_OWNER_LABEL;
use dockhand_sandbox::docker::image::image_labels;

use crate::config::Config;

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The images tasks may name: `sandbox.allowed_images`, or the default image.
fn allowed_images(cfg: &Config) -> Vec<String> {
    if cfg.sandbox.allowed_images.is_empty() {
        vec![cfg.default_image()]
    } else {
        cfg.sandbox.allowed_images.clone()
    }
}

/// Why user `user` may not run `image`, or `Ok`. A user's own environment images
/// are always theirs to use; another user's never are, whatever the list says.
pub(crate) async fn image_allowed(
    cfg: &Config,
    docker: Option<&DockerProvider>,
    image: &str,
    user: i64,
) -> Result<(), String> {
    let labels = match docker {
        Some(d) => image_labels(d.client(), image).await.unwrap_or_default(),
        None => Default::default(),
    };
    if labels.get(ENV_LABEL).map(String::as_str) == Some("1") {
        return match labels.get(ENV_OWNER_LABEL) {
            Some(owner) if *owner == user.to_string() => Ok(()),
            _ => Err("is another user's environment image".into()),
        };
    }
    if image.starts_with(&format!("{ENV_IMAGE_REPO}:")) {
        return Err("is not one of your environment images".into());
    }
    let allowed = allowed_images(cfg);
    let tagged = format!("{image}:latest");
    let listed = |p: &String| glob(p, image) || (!image.contains([':', '@']) && glob(p, &tagged));
    if allowed.iter().any(listed) {
        Ok(())
    } else {
        Err(format!(
            "is not in sandbox.allowed_images ({})",
            allowed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob("debian:*", "debian:bookworm"));
        assert!(glob("ghcr.io/acme/*", "ghcr.io/acme/tools:1"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(glob("exact:1", "exact:1"));
        assert!(!glob("exact:1", "exact:12"));
        assert!(!glob("debian:*", "evil/debian:bookworm"));
        assert!(!glob("a*c", "ab"));
        assert!(!glob("*.io/x", "ghcr.io/x/y"));
    }
}
