use dockhand_model::ContentBlock;
use dockhand_model::Message;
use dockhand_protocol::EventBody;
use dockhand_protocol::TaskId;
use dockhand_protocol::TaskStatus;
use dockhand_store::ToolCallState;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;
use serde_json::Value;
use serde_json::json;

use crate::common::*;

fn editor(input: Value) -> Turn {
    Turn::tool("str_replace_based_edit_tool", input)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_views_edits_runs_commands_and_lands_on_its_branch() {
    let scenario = Scenario::new()
        .turn(Turn::text("Let me look.").tool_use("str_replace_based_edit_tool", json!({"command": "view", "path": "/workspace/app.txt"})))
        .turn(editor(json!({"command": "str_replace", "path": "/workspace/app.txt", "old_str": "world", "new_str": "dockhand"})))
        .turn(
            Turn::text("Checking.")
                .tool_use("bash", json!({"command": "ls /no/such/dir"}))
                .tool_use("bash", json!({"command": "grep -c dockhand app.txt"})),
        )
        .text("I replaced world with dockhand.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("app.txt", "hello world\n")]);
    let task = h.submit(&repo, "Say hello to dockhand").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);

    // The change is committed on the task branch, and the branch is in the source repository.
    assert!(done.branch.starts_with(&format!("dockhand/{}-", task.id)));
    assert_eq!(
        git(&repo, &["show", &format!("{}:app.txt", done.branch)]),
        "hello dockhand"
    );
    let log = git(&repo, &["log", "--format=%an|%s", "-1", &done.branch]);
    assert_eq!(log, "Dockhand|Say hello to dockhand");
    assert_eq!(
        git(&repo, &["show", "main:app.txt"]),
        "hello world",
        "main is untouched"
    );

    // Events: seq 1..N with no gaps, and the expected story.
    let events = h.events(task.id.as_str()).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(done.last_seq, events.len() as u64);
    let k = kinds(&events);
    assert_eq!(k.iter().filter(|k| **k == "tool_call").count(), 4);
    assert_eq!(k.iter().filter(|k| **k == "tool_result").count(), 4);
    assert!(k.contains(&"diff") && k.contains(&"usage") && k.contains(&"phase"));
    let diff = events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Diff(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (diff.files_changed, diff.insertions, diff.deletions),
        (1, 1, 1)
    );

    // tool_calls hold each input, output and exit code.
    let store = &h.coord().services().store;
    let id = TaskId::parse(task.id.as_str()).unwrap();
    let calls = store.tool_calls(&id).unwrap();
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|c| c.state == ToolCallState::Done));
    assert_eq!(calls[0].input["command"], "view");
    assert!(
        calls[0]
            .output
            .as_deref()
            .unwrap()
            .contains("     1\thello world")
    );
    assert!(
        calls[1]
            .output
            .as_deref()
            .unwrap()
            .contains("has been edited")
    );
    assert_eq!(calls[2].input["command"], "ls /no/such/dir");
    assert_eq!(calls[2].exit_code, Some(2));
    assert!(
        calls[2]
            .output
            .as_deref()
            .unwrap()
            .contains("No such file or directory")
    );
    assert!(
        calls[2]
            .output
            .as_deref()
            .unwrap()
            .ends_with("[exit code: 2]")
    );
    assert_eq!(calls[3].exit_code, Some(0));
    assert_eq!(calls[3].output.as_deref(), Some("1"));

    // Both tool calls of one turn were answered together, in one user message.
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 4);
    let last_user = requests[3]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let results: Vec<&Value> = last_user["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 2);

    // The conversation reloads from `messages`: exactly what the model was last sent, plus its answer.
    let stored: Vec<Message> = store
        .messages(&id)
        .unwrap()
        .into_iter()
        .map(|m| serde_json::from_value(json!({"role": m.role, "content": serde_json::from_str::<Value>(&m.content).unwrap()})).unwrap())
        .collect();
    assert_eq!(stored.len(), 8);
    let mut sent: Vec<Message> = requests[3]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            for b in m["content"].as_array_mut().unwrap() {
                b.as_object_mut().unwrap().remove("cache_control");
            }
            serde_json::from_value(m).unwrap()
        })
        .collect();
    assert_eq!(&stored[..7], &sent[..]);
    sent.clear();
    assert!(
        matches!(&stored[7].content[0], ContentBlock::Text { text } if text == "I replaced world with dockhand.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_continues_the_conversation_on_the_same_branch() {
    let scenario = Scenario::new()
        .turn(editor(
            json!({"command": "create", "path": "/workspace/one.txt", "file_text": "1\n"}),
        ))
        .text("Made one.")
        .turn(editor(
            json!({"command": "create", "path": "/workspace/two.txt", "file_text": "2\n"}),
        ))
        .text("Made two.");
    let h = Harness::start(scenario).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "make one").await;
    let first = h.wait_done(task.id.as_str()).await;
    assert_eq!(first.status, TaskStatus::Succeeded, "{:?}", first.error);
    let first_head = git(&repo, &["rev-parse", &first.branch]);

    let (status, v) = h
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{}/messages", task.id),
            Some(json!({"text": "now make two"})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let second = h.wait_done(task.id.as_str()).await;
    assert_eq!(second.status, TaskStatus::Succeeded, "{:?}", second.error);
    assert_eq!(second.branch, first.branch);
    // The new commit sits on top of the first one, and both files are there.
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{}~1", second.branch)]),
        first_head
    );
    assert_eq!(
        git(&repo, &["show", &format!("{}:one.txt", second.branch)]),
        "1"
    );
    assert_eq!(
        git(&repo, &["show", &format!("{}:two.txt", second.branch)]),
        "2"
    );
    // The model saw the whole earlier conversation, then the follow-up.
    let requests = h.fake.requests();
    let msgs = requests[2]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[0]["content"][0]["text"], "make one");
    assert_eq!(msgs[3]["content"][0]["text"], "Made one.");
    assert_eq!(msgs[4]["content"][0]["text"], "now make two");
    let events = h.events(task.id.as_str()).await;
    let statuses: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Status(s) => Some(s.status.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "queued",
            "provisioning",
            "running",
            "publishing",
            "succeeded",
            "queued",
            "provisioning",
            "running",
            "publishing",
            "succeeded"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_without_changes_succeeds_and_creates_no_branch() {
    let h = Harness::start(Scenario::new().text("Nothing to do here.")).await;
    let repo = h.repo(&[("README", "r\n")]);
    let task = h.submit(&repo, "look around").await;
    let done = h.wait_done(task.id.as_str()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let branches = git(&repo, &["branch", "--list", "dockhand/*"]);
    assert!(branches.is_empty(), "{branches}");
    let events = h.events(task.id.as_str()).await;
    let last = events.last().unwrap();
    match &last.body {
        EventBody::Status(s) => assert_eq!(s.message.as_deref(), Some("no changes to hand back")),
        other => panic!("{other:?}"),
    }
}
