//! The `str_replace_based_edit_tool`: view, create, str_replace and insert, with
//! the reference tool's messages. Every file access is an exec inside the
//! sandbox, so symlinks resolve there and never reach host files.

use std::fmt::Write as _;

use dockhand_sandbox::ExecRequest;
use dockhand_sandbox::FileKind;
use dockhand_sandbox::Sandbox;
use dockhand_sandbox::SandboxError;
use serde_json::Value;

use super::ToolLimits;
use super::ToolOutcome;
use crate::output::cap_text;

/// Lines of context shown around an edit.
const SNIPPET_LINES: usize = 4;

/// The editor.
pub struct EditorTool {
    limits: ToolLimits,
}

impl EditorTool {
    /// An editor with these limits.
    pub fn new(limits: ToolLimits) -> Self {
        EditorTool { limits }
    }

    /// Most characters a result holds.
    pub fn result_cap(&self) -> usize {
        self.limits.result_cap
    }

    /// Runs one editor command.
    pub async fn call(&self, sb: &dyn Sandbox, input: &Value) -> ToolOutcome {
        let command = input.get("command").and_then(Value::as_str).unwrap_or("");
        let Some(path) = input.get("path").and_then(Value::as_str) else {
            return ToolOutcome::error("Parameter `path` is required.");
        };
        if !path.starts_with('/') {
            return ToolOutcome::error(format!(
                "The path {path} is not an absolute path, it should start with `/`. Maybe you meant /workspace/{path}?"
            ));
        }
        let result = match command {
            "view" => self.view(sb, path, input).await,
            "create" => self.create(sb, path, input).await,
            "str_replace" => self.str_replace(sb, path, input).await,
            "insert" => self.insert(sb, path, input).await,
            other => Err(format!(
                "Unrecognized command {other}. The allowed commands for the str_replace_based_edit_tool tool are: view, create, str_replace, insert"
            )),
        };
        match result {
            Ok(text) => ToolOutcome::ok(cap_text(&text, self.limits.result_cap)),
            Err(text) => ToolOutcome::error(cap_text(&text, self.limits.result_cap)),
        }
    }

    async fn kind(&self, sb: &dyn Sandbox, path: &str) -> Result<FileKind, String> {
        sb.file_kind(path).await.map_err(|e| e.to_string())
    }

    async fn read(&self, sb: &dyn Sandbox, path: &str) -> Result<String, String> {
        match self.kind(sb, path).await? {
            FileKind::Missing => return Err(missing(path)),
            FileKind::Directory => return Err(is_dir(path)),
            FileKind::Other => return Err(format!("The path {path} is not a regular file.")),
            FileKind::File => {}
        }
        let bytes = sb
            .read_file(path, self.limits.max_file_bytes)
            .await
            .map_err(|e| match e {
                SandboxError::NotFound { .. } => missing(path),
                SandboxError::IsDirectory { .. } => is_dir(path),
                SandboxError::TooLarge { .. } => format!(
                    "The file {path} is larger than {} bytes; use bash (head, sed -n, grep) to read parts of it.",
                    self.limits.max_file_bytes
                ),
                other => other.to_string(),
            })?;
        String::from_utf8(bytes).map_err(|_| {
            format!("The file {path} is not UTF-8 text; use bash (xxd, file) to inspect it.")
        })
    }

    async fn write(&self, sb: &dyn Sandbox, path: &str, text: &str) -> Result<(), String> {
        sb.write_file(path, text.as_bytes())
            .await
            .map_err(|e| format!("Writing {path} failed: {e}"))
    }

    async fn view(&self, sb: &dyn Sandbox, path: &str, input: &Value) -> Result<String, String> {
        let range = input.get("view_range");
        if self.kind(sb, path).await? == FileKind::Directory {
            if range.is_some_and(|r| !r.is_null()) {
                return Err(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                        .into(),
                );
            }
            let mut req =
                ExecRequest::new(["find", path, "-maxdepth", "2", "-not", "-path", "*/.*"]);
            req.output_cap = self.limits.result_cap * 4;
            let out = sb
                .exec(req, &mut |_, _| {})
                .await
                .map_err(|e| e.to_string())?;
            let listing = String::from_utf8_lossy(&out.stdout);
            return Ok(format!(
                "Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{listing}"
            ));
        }
        let text = self.read(sb, path).await?;
        let lines: Vec<&str> = text.split('\n').collect();
        let n = lines.len();
        let (start, end) = match range.filter(|r| !r.is_null()) {
            None => (1, n),
            Some(r) => parse_range(r, n)?,
        };
        let shown = lines[start - 1..end].join("\n");
        Ok(numbered(&shown, path, start))
    }

    async fn create(&self, sb: &dyn Sandbox, path: &str, input: &Value) -> Result<String, String> {
        let Some(text) = input.get("file_text").and_then(Value::as_str) else {
            return Err("Parameter `file_text` is required for command: create".into());
        };
        if self.kind(sb, path).await? != FileKind::Missing {
            return Err(format!(
                "File already exists at: {path}. Cannot overwrite files using command `create`."
            ));
        }
        self.write(sb, path, text).await?;
        Ok(format!("File created successfully at: {path}"))
    }

    async fn str_replace(
        &self,
        sb: &dyn Sandbox,
        path: &str,
        input: &Value,
    ) -> Result<String, String> {
        let Some(old) = input.get("old_str").and_then(Value::as_str) else {
            return Err("Parameter `old_str` is required for command: str_replace".into());
        };
        if old.is_empty() {
            return Err(
                "Parameter `old_str` must not be empty; use `insert` or `create` to add text."
                    .into(),
            );
        }
        let new = input.get("new_str").and_then(Value::as_str).unwrap_or("");
        let text = self.read(sb, path).await?;
        let starts: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
        match starts.len() {
            0 => {
                return Err(format!(
                    "No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
                ));
            }
            1 => {}
            _ => {
                let lines: Vec<usize> = starts
                    .iter()
                    .map(|&i| text[..i].matches('\n').count() + 1)
                    .collect();
                return Err(format!(
                    "No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines:?}. Please ensure it is unique"
                ));
            }
        }
        let at = starts[0];
        let updated = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
        self.write(sb, path, &updated).await?;
        let line = text[..at].matches('\n').count();
        let snippet = snippet(&updated, line, new.matches('\n').count());
        Ok(format!(
            "The file {path} has been edited. {}Review the changes and make sure they are as expected. Edit the file again if necessary.",
            numbered(&snippet.0, &format!("a snippet of {path}"), snippet.1)
        ))
    }

    async fn insert(&self, sb: &dyn Sandbox, path: &str, input: &Value) -> Result<String, String> {
        let Some(new) = input.get("new_str").and_then(Value::as_str) else {
            return Err("Parameter `new_str` is required for command: insert".into());
        };
        let Some(at) = input.get("insert_line").and_then(Value::as_i64) else {
            return Err("Parameter `insert_line` is required for command: insert".into());
        };
        let text = self.read(sb, path).await?;
        let mut lines: Vec<&str> = text.split('\n').collect();
        let n = lines.len();
        if at < 0 || at as usize > n {
            return Err(format!(
                "Invalid `insert_line` parameter: {at}. It should be within the range of lines of the file: [0, {n}]"
            ));
        }
        let at = at as usize;
        let new_lines: Vec<&str> = new.split('\n').collect();
        let added = new_lines.len();
        lines.splice(at..at, new_lines);
        let updated = lines.join("\n");
        self.write(sb, path, &updated).await?;
        let snippet = snippet(&updated, at, added.saturating_sub(1));
        Ok(format!(
            "The file {path} has been edited. {}Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
            numbered(&snippet.0, "a snippet of the edited file", snippet.1)
        ))
    }
}

fn missing(path: &str) -> String {
    format!("The path {path} does not exist. Please provide a valid path.")
}

fn is_dir(path: &str) -> String {
    format!("The path {path} is a directory and only the `view` command can be used on directories")
}

fn parse_range(r: &Value, n: usize) -> Result<(usize, usize), String> {
    let bad = || "Invalid `view_range`. It should be a list of two integers.".to_owned();
    let arr = r.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let start = arr[0].as_i64().ok_or_else(bad)?;
    let end = arr[1].as_i64().ok_or_else(bad)?;
    if start < 1 || start as usize > n {
        return Err(format!(
            "Invalid `view_range`: {r}. Its first element `{start}` should be within the range of lines of the file: [1, {n}]"
        ));
    }
    let end = if end == -1 { n as i64 } else { end };
    if end < start || end as usize > n {
        return Err(format!(
            "Invalid `view_range`: {r}. Its second element should be -1 or between {start} and {n}"
        ));
    }
    Ok((start as usize, end as usize))
}

/// `cat -n` style, as the reference tool prints it.
fn numbered(text: &str, desc: &str, first_line: usize) -> String {
    let mut out = format!("Here's the result of running `cat -n` on {desc}:\n");
    for (i, line) in text.split('\n').enumerate() {
        let _ = writeln!(out, "{:6}\t{line}", first_line + i);
    }
    out
}

/// Lines around an edit at 0-based `line` spanning `extra` more lines: (text, first line number).
fn snippet(text: &str, line: usize, extra: usize) -> (String, usize) {
    let lines: Vec<&str> = text.split('\n').collect();
    let start = line.saturating_sub(SNIPPET_LINES);
    let end = (line + extra + SNIPPET_LINES + 1).min(lines.len());
    (lines[start..end].join("\n"), start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_and_snippets_match_the_reference_format() {
        assert_eq!(
            numbered("a\nb", "/x", 3),
            "Here's the result of running `cat -n` on /x:\n     3\ta\n     4\tb\n"
        );
        let text = (1..=20)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let (s, first) = snippet(&text, 9, 0);
        assert_eq!(first, 6);
        assert_eq!(s, "6\n7\n8\n9\n10\n11\n12\n13\n14");
    }

    #[test]
    fn view_ranges_are_checked() {
        assert_eq!(parse_range(&serde_json::json!([2, -1]), 5), Ok((2, 5)));
        assert!(parse_range(&serde_json::json!([0, 2]), 5).is_err());
        assert!(parse_range(&serde_json::json!([3, 2]), 5).is_err());
        assert!(parse_range(&serde_json::json!([1, 9]), 5).is_err());
        assert!(parse_range(&serde_json::json!("x"), 5).is_err());
    }
}
