use std::collections::HashMap;

use dockhand_protocol::TaskStatus;
use dockhand_testkit::Scenario;
use dockhand_testkit::Turn;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn no_more_than_the_limit_run_and_queued_tasks_start_in_order() {
    const TASKS: usize = 5;
    const LIMIT: usize = 2;
    // Every task takes one slow turn (streamed word by word), so runs overlap.
    let mut scenario = Scenario::new().token_delay_ms(60);
    for _ in 0..TASKS {
        scenario = scenario.turn(Turn::text("All done here, nothing else to change."));
    }
    let h = Harness::start_with(scenario, |c| c.scheduler.max_concurrent = LIMIT).await;
    let repo = h.repo(&[("README", "r\n")]);
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(h.submit(&repo, &format!("task {i}")).await.id.to_string());
    }
    for id in &ids {
        assert_eq!(h.wait_done(id).await.status, TaskStatus::Succeeded);
    }
    // Replay the committed status changes in global commit order.
    let db = rusqlite::Connection::open_with_flags(
        h.data_dir().join("dockhand.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare("SELECT task_id, data FROM events WHERE kind = 'status' ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut active: HashMap<String, bool> = HashMap::new();
    let mut most = 0;
    let mut started = Vec::new();
    for (task, data) in rows {
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        let status = TaskStatus::parse(v["status"].as_str().unwrap()).unwrap();
        if status == TaskStatus::Provisioning {
            started.push(task.clone());
        }
        active.insert(task, status.is_active());
        most = most.max(active.values().filter(|a| **a).count());
    }
    assert_eq!(
        most, LIMIT,
        "at most {LIMIT} at once, and the limit was reached"
    );
    assert_eq!(
        started, ids,
        "queued tasks start in the order they were created"
    );
}
