//! Printing events for people (or as JSON lines with `--json`).

use std::io::IsTerminal;
use std::io::Write;

use dockhand_protocol::AssistantDelta;
use dockhand_protocol::Event;
use dockhand_protocol::EventBody;
use dockhand_protocol::Task;
use dockhand_protocol::TaskStatus;

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

pub struct Renderer {
    json: bool,
    style: Style,
    /// Text already printed from deltas for the block being streamed.
    streamed: String,
    /// The task's token total so far.
    usage: Option<dockhand_protocol::TokenUsage>,
}

pub fn header(task: &Task) {
    println!("task {} on {} → branch {}", task.id, task.repo, task.branch);
}

pub fn task_table(tasks: &[Task]) {
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    println!(
        "{:<13} {:<12} {:<20} {:<30} PROMPT",
        "ID", "STATUS", "CREATED", "REPO"
    );
    for t in tasks {
        let repo: String = t
            .repo
            .chars()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        println!(
            "{:<13} {:<12} {:<20} {:<30} {}",
            t.id,
            t.status,
            &t.created_at[..19.min(t.created_at.len())],
            repo,
            t.title
        );
    }
}

pub fn gc_report(report: &dockhand_protocol::GcReport) {
    if report.dry_run {
        println!("dry run: nothing was removed");
    }
    for (title, items) in [
        ("workspaces", &report.workspaces),
        ("containers", &report.containers),
        ("environment images", &report.images),
    ] {
        println!("{title}: {}", if items.is_empty() { "none" } else { "" });
        for i in items {
            let task = i
                .task
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            println!("  {:<8} {}{task} — {}", i.action, i.what, i.reason);
        }
    }
}

fn short(text: &str, max: usize) -> String {
    let one: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(max)
        .collect();
    if text.lines().count() > 1 || text.chars().count() > max {
        format!("{one}…")
    } else {
        one
    }
}

impl Renderer {
    pub fn new(json: bool) -> Self {
        let on = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Renderer {
            json,
            style: Style { on },
            streamed: String::new(),
            usage: None,
        }
    }

    pub fn note(&mut self, text: &str) {
        if !self.json {
            eprintln!("{}", self.style.paint("2", text));
        }
    }

    pub fn delta(&mut self, d: &AssistantDelta) {
        if self.json {
            return;
        }
        print!("{}", d.data.text);
        self.streamed.push_str(&d.data.text);
        let _ = std::io::stdout().flush();
    }

    pub fn event(&mut self, e: &Event) {
        if let Ok(raw) = serde_json::to_string(e) {
            self.event_raw(e, &raw);
        }
    }

    pub fn event_raw(&mut self, e: &Event, raw: &str) {
        if self.json {
            println!("{raw}");
            return;
        }
        let s = &self.style;
        match &e.body {
            EventBody::Status(st) => {
                let (mark, code) = match st.status {
                    TaskStatus::Succeeded => ("✔", "32"),
                    TaskStatus::Failed => ("✘", "31"),
                    TaskStatus::Cancelled => ("■", "33"),
                    _ => ("●", "36"),
                };
                let msg = st
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                println!("{}", s.paint(code, &format!("{mark} {}{msg}", st.status)));
                if let (true, Some(u)) = (st.status.is_terminal(), self.usage) {
                    let line = format!(
                        "  tokens: {} in, {} cached, {} out",
                        u.input_tokens + u.cache_creation_input_tokens,
                        u.cache_read_input_tokens,
                        u.output_tokens
                    );
                    println!("{}", s.paint("2", &line));
                }
            }
            EventBody::Phase(p) => {
                let detail = p
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                println!(
                    "{}",
                    s.paint("2", &format!("· {} {} ms{detail}", p.phase, p.duration_ms))
                );
            }
            EventBody::UserMessage(m) => println!("{} {}", s.paint("1", "you:"), m.text),
            EventBody::AssistantText(t) => {
                // The deltas already showed this text; the committed block only ends the line.
                if self.streamed.is_empty() || !t.text.starts_with(self.streamed.trim_end()) {
                    print!("{}", t.text);
                }
                println!();
                self.streamed.clear();
            }
            EventBody::ToolCall(c) => {
                self.streamed.clear();
                let line = match (
                    c.name.as_str(),
                    c.input.get("command").and_then(|v| v.as_str()),
                ) {
                    ("bash", Some(cmd)) => format!("$ {}", short(cmd, 200)),
                    ("bash", None) => "$ (restart shell)".to_owned(),
                    (_, Some(cmd)) => {
                        let path = c.input.get("path").and_then(|v| v.as_str()).unwrap_or("");
                        format!("✎ {cmd} {path}")
                    }
                    (name, None) => format!("⚙ {name}"),
                };
                println!("{}", s.paint("36", &line));
            }
            EventBody::ToolOutput(o) => {
                print!("{}", s.paint("2", &o.text));
                let _ = std::io::stdout().flush();
            }
            EventBody::ToolResult(r) => {
                let took = format!("{:.1} s", r.duration_ms as f64 / 1000.0);
                let line = match (r.exit_code, r.is_error) {
                    (_, true) => s.paint("31", &format!("  ✘ {} ({took})", short(&r.output, 160))),
                    (Some(0), false) => s.paint("2", &format!("  exit 0 ({took})")),
                    (Some(code), false) => s.paint("33", &format!("  exit {code} ({took})")),
                    (None, false) => s.paint("2", &format!("  {} ({took})", short(&r.output, 120))),
                };
                println!("{line}");
            }
            EventBody::Retry(r) => println!(
                "{}",
                s.paint(
                    "33",
                    &format!(
                        "↻ {}; retrying in {:.1} s (attempt {})",
                        r.reason,
                        r.wait_ms as f64 / 1000.0,
                        r.attempt
                    )
                )
            ),
            EventBody::Usage(u) => self.usage = Some(u.total),
            EventBody::Diff(d) => {
                println!(
                    "{}",
                    s.paint(
                        "1",
                        &format!(
                            "diff: {} files changed, +{} -{} on {}",
                            d.files_changed, d.insertions, d.deletions, d.branch
                        )
                    )
                );
                if !d.stat.is_empty() {
                    print!("{}", d.stat);
                }
            }
            EventBody::Error(err) => {
                println!("{}", s.paint("31", &format!("error: {}", err.message)))
            }
            EventBody::PullRequest(p) => {
                println!("{}", s.paint("1", &format!("pull request: {}", p.url)))
            }
            EventBody::Checkpoint(c) => {
                if let Some(why) = &c.skipped_reason {
                    let line = format!("checkpoint after turn {} skipped: {why}", c.turn);
                    println!("{}", s.paint("33", &line));
                }
            }
        }
    }
}
