//! Validated input: each value is checked once, when it is parsed, and carried
//! as its own type from then on.

use dockhand_forge::RepoSource;

use super::TaskError;
use crate::config::Config;

/// A repository named by a task: its text as given, and where it resolves to.
#[derive(Clone, Debug)]
pub struct RepoRef {
    text: String,
    source: RepoSource,
}

impl RepoRef {
    /// `owner/name`, an `http(s)` git URL, or (where allowed) a local path.
    pub fn parse(text: &str, config: &Config) -> Result<RepoRef, TaskError> {
        let text = text.trim().to_owned();
        let source = dockhand_forge::resolve_repo(
            &text,
            config.local_repos_allowed(),
            &config.github.web_url,
        )
        .map_err(|e| TaskError::invalid("repo", e.to_string()))?;
        Ok(RepoRef { text, source })
    }

    /// The text as stored with the task.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where it resolves to.
    pub fn source(&self) -> &RepoSource {
        &self.source
    }
}

/// A prompt or follow-up: not blank, and within `limits.max_prompt_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt(String);

impl Prompt {
    /// Checks `text` as the field `field`.
    pub fn parse(field: &'static str, text: String, max: usize) -> Result<Prompt, TaskError> {
        if text.trim().is_empty() {
            return Err(TaskError::invalid(field, "must not be empty"));
        }
        if text.len() > max {
            return Err(TaskError::TooLarge {
                field,
                message: format!(
                    "is {} bytes; the limit is {max} (limits.max_prompt_bytes)",
                    text.len()
                ),
            });
        }
        Ok(Prompt(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first line, at most 80 characters: the task's title.
    pub fn title(&self) -> String {
        let line = self.0.trim().lines().next().unwrap_or("").trim();
        if line.chars().count() <= 80 {
            line.to_owned()
        } else {
            let mut t: String = line.chars().take(79).collect();
            t.push('…');
            t
        }
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A git branch name that is safe to pass to git as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchName(String);

impl BranchName {
    /// Checks a base branch name.
    pub fn parse(name: String) -> Result<BranchName, TaskError> {
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with(['-', '/', '.'])
            && !name.ends_with(['/', '.'])
            && !name.contains("..")
            && !name.contains("//")
            && !name.ends_with(".lock")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c));
        if ok {
            Ok(BranchName(name))
        } else {
            Err(TaskError::invalid(
                "base_branch",
                "is not a valid branch name",
            ))
        }
    }

    /// The name.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A model id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelId(String);

impl ModelId {
    /// Checks a model id.
    pub fn parse(id: String) -> Result<ModelId, TaskError> {
        let ok = !id.is_empty()
            && id.len() <= 100
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:@/".contains(c));
        if ok {
            Ok(ModelId(id))
        } else {
            Err(TaskError::invalid("model", "is not a valid model id"))
        }
    }

    /// The id.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An image reference, syntactically; whether the actor may use it is policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef(String);

impl ImageRef {
    /// Checks an image reference.
    pub fn parse(image: String) -> Result<ImageRef, TaskError> {
        let ok = !image.is_empty()
            && image.len() <= 255
            && !image.starts_with('-')
            && image
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if ok {
            Ok(ImageRef(image))
        } else {
            Err(TaskError::invalid("image", "is not an image reference"))
        }
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reference, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::BranchName;
    use super::ImageRef;
    use super::ModelId;
    use super::Prompt;
    use super::TaskError;

    #[test]
    fn prompts_are_not_blank_and_bounded() {
        assert!(matches!(
            Prompt::parse("prompt", "  \n".into(), 10),
            Err(TaskError::Invalid {
                field: "prompt",
                ..
            })
        ));
        let err = Prompt::parse("text", "x".repeat(11), 10).unwrap_err();
        assert!(matches!(err, TaskError::TooLarge { field: "text", .. }));
        assert_eq!(
            err.to_string(),
            "text: is 11 bytes; the limit is 10 (limits.max_prompt_bytes)"
        );
        let p = Prompt::parse("prompt", "Fix the bug\nin detail".into(), 100).unwrap();
        assert_eq!(p.title(), "Fix the bug");
        let long = Prompt::parse("prompt", "y".repeat(90), 100).unwrap();
        assert_eq!(long.title().chars().count(), 80);
        assert!(long.title().ends_with('…'));
    }

    #[test]
    fn names_that_git_or_docker_would_misread_are_refused() {
        for bad in [
            "", "-x", "/a", ".a", "a/", "a.", "a..b", "a//b", "a.lock", "a b", "a~1",
        ] {
            assert!(BranchName::parse(bad.into()).is_err(), "{bad:?}");
        }
        for good in ["main", "release/1.2", "feat_x+y"] {
            assert!(BranchName::parse(good.into()).is_ok(), "{good:?}");
        }
        assert!(ModelId::parse("claude-sonnet-4-5@2025".into()).is_ok());
        assert!(ModelId::parse("a b".into()).is_err());
        assert!(ModelId::parse("m".repeat(101)).is_err());
        assert!(ImageRef::parse("ghcr.io/o/i:1@sha256:ab".into()).is_ok());
        assert!(ImageRef::parse("--privileged".into()).is_err());
        assert!(ImageRef::parse("a;b".into()).is_err());
    }
}
